package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/s3gw"
)

// s3BaseFlags defines the flags of 's3 serve' that schedule the bases of
// the buckets' key tables (FORMAT.md §22.5).
func s3BaseFlags(fs *pflag.FlagSet, o *s3gw.Options) {
	fs.IntVar(&o.BaseEvery, "base-every", s3gw.DefaultBaseEvery, "write a base of a bucket's key table every `N` events (negative: never by count)")
	fs.DurationVar(&o.BaseInterval, "base-interval", s3gw.DefaultBaseInterval, "write a base of a changed bucket once this `duration` has passed since its last (negative: never by time)")
}

// s3ReportUnavailable prints the buckets a point-in-time view leaves out
// because retention removed what showed them then.
func s3ReportUnavailable(env *environment, g *s3gw.Gateway) {
	u := g.Unavailable()
	for _, name := range slices.Sorted(maps.Keys(u)) {
		fmt.Fprintf(env.stderr, "bucket %s is not shown: %v\n", name, u[name])
	}
}
