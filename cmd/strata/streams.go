package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source"
)

// streamJSON is one element of streams --json.
type streamJSON struct {
	Stream    string        `json:"stream"`
	Snapshots int           `json:"snapshots"`
	Segments  int           `json:"segments"`
	Newest    *snapshotJSON `json:"newest_snapshot"`
	// Window is the newest restorable window, null when nothing is restorable.
	Window *wire.Window `json:"window"`
}

// loadCatalog loads the whole catalog for streams and stats: a partial one
// is a warning, since both only report.
func loadCatalog(ctx context.Context, env *environment, location string) (*repo.Repository, *index.Catalog, error) {
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return nil, nil, err
	}
	cat, err := index.LoadCatalog(ctx, r)
	if cat == nil {
		return nil, nil, err
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "warning: %v\n", err)
	}
	return r, cat, nil
}

// catalogStreams lists the streams with a snapshot or a log, sorted.
func catalogStreams(cat *index.Catalog) []string {
	var names []string
	for _, s := range cat.Snapshots {
		names = append(names, s.Stream)
	}
	for name := range cat.Logs {
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func cmdStreams(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--json]")
	location := repoFlag(fs, env)
	asJSON := jsonFlag(fs, `print a JSON array of {"stream","snapshots","segments","newest_snapshot","window"}; newest_snapshot as in snapshots --json, window as in coverage --json (null when none)`)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		_, cat, err := loadCatalog(ctx, env, *location)
		if err != nil {
			return err
		}
		now := time.Now()
		out := []streamJSON{}
		for _, name := range catalogStreams(cat) {
			s := streamJSON{Stream: name}
			snaps := cat.Stream(name)
			s.Snapshots = len(snaps)
			if n := len(snaps); n > 0 {
				j := snapshotJSONOf(snaps[n-1])
				s.Newest = &j
			}
			if l := cat.Logs[name]; l != nil {
				s.Segments = len(l.Segments)
			}
			if cov := wire.CoverageOf(cat.Coverage(name), now); len(cov.Windows) > 0 {
				s.Window = &cov.Windows[len(cov.Windows)-1]
			}
			out = append(out, s)
		}
		if *asJSON {
			return writeJSON(env, out)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tSNAPSHOTS\tSEGMENTS\tNEWEST SNAPSHOT\tRESTORABLE FROM\tTO")
		for _, s := range out {
			newest, from, to := "-", "-", "-"
			if s.Newest != nil {
				newest = s.Newest.ID[:16] + " " + index.FormatTime(s.Newest.Time)
			}
			if s.Window != nil {
				from, to = s.Window.From.RFC3339, s.Window.To.RFC3339
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", printable(s.Stream), s.Snapshots, s.Segments, newest, from, to)
		}
		return tw.Flush()
	}
}

// statsJSON is stats --json's object.
type statsJSON struct {
	Stream    string `json:"stream,omitempty"`
	Streams   int    `json:"streams"`
	Snapshots int    `json:"snapshots"`
	Segments  int    `json:"segments"`
	// LogicalBytes: the exports' sizes summed over every snapshot: what
	// restoring each would write.
	LogicalBytes int64 `json:"logical_bytes"`
	// SnapshotStoredBytes: what the snapshots added to the repository
	// (new blobs, compressed and sealed, before parity).
	SnapshotStoredBytes int64 `json:"snapshot_stored_bytes"`
	// LogStoredBytes: the sealed packs of the log segments, before parity.
	LogStoredBytes int64 `json:"log_stored_bytes"`
	StoredBytes    int64 `json:"stored_bytes"`
	// DedupRatio: logical_bytes / snapshot_stored_bytes (0 when nothing is stored).
	DedupRatio float64 `json:"dedup_ratio"`
}

func cmdStats(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--stream NAME] [--json]")
	location := repoFlag(fs, env)
	stream := fs.String("stream", "", "only this stream")
	asJSON := jsonFlag(fs, `print one JSON object: stream, streams, snapshots, segments, logical_bytes, snapshot_stored_bytes, log_stored_bytes, stored_bytes, dedup_ratio`)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *stream != "" {
			if err := checkStream(*stream); err != nil {
				return err
			}
		}
		r, cat, err := loadCatalog(ctx, env, *location)
		if err != nil {
			return err
		}
		st := statsJSON{Stream: *stream}
		var segs []repo.SegmentKey
		for _, name := range catalogStreams(cat) {
			if *stream != "" && name != *stream {
				continue
			}
			st.Streams++
			for _, s := range cat.Stream(name) {
				st.Snapshots++
				st.LogicalBytes += s.Size
				st.SnapshotStoredBytes += s.StoredBytes
			}
			if l := cat.Logs[name]; l != nil {
				segs = append(segs, l.Segments...)
			}
		}
		if *stream != "" && st.Streams == 0 {
			return fmt.Errorf("stream %q: the repository holds no snapshot or log of it: %w", *stream, index.ErrNoSnapshot)
		}
		st.Segments = len(segs)
		sizes := make([]int64, len(segs))
		if err := repo.ForEach(ctx, r.Store(), len(segs), func(i int) error {
			m, err := r.LoadSegment(ctx, segs[i])
			if err != nil {
				return err
			}
			sizes[i] = int64(m.Pack.Length)
			return nil
		}); err != nil {
			return err
		}
		for _, n := range sizes {
			st.LogStoredBytes += n
		}
		st.StoredBytes = st.SnapshotStoredBytes + st.LogStoredBytes
		if st.SnapshotStoredBytes > 0 {
			st.DedupRatio = float64(st.LogicalBytes) / float64(st.SnapshotStoredBytes)
		}
		if *asJSON {
			return writeJSON(env, st)
		}
		what := "all streams"
		if *stream != "" {
			what = printable(*stream)
		}
		fmt.Fprintf(env.stdout, "%s: %d streams, %d snapshots, %d log segments\n", what, st.Streams, st.Snapshots, st.Segments)
		fmt.Fprintf(env.stdout, "logical %s in snapshots, stored %s (dedup ratio %.2f), log %s, total stored %s (before parity)\n",
			source.HumanBytes(st.LogicalBytes), source.HumanBytes(st.SnapshotStoredBytes), st.DedupRatio,
			source.HumanBytes(st.LogStoredBytes), source.HumanBytes(st.StoredBytes))
		return nil
	}
}
