package main

import (
	"context"
	"fmt"
)

// cmdUpgrade turns a version-1 repository into the current format
// (FORMAT.md §25.4): a second copy of every metadata object, then the
// version-2 config. It is idempotent and resumable: an interrupted upgrade
// leaves a version-1 repository that the next run completes.
func cmdUpgrade(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "upgrade", "--repo URL")
	location := repoFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	r, err := openRepo(ctx, env, *location)
	if err != nil {
		return err
	}
	if err := localOnly(r, "upgrade"); err != nil {
		return err
	}
	rep, err := r.Upgrade(ctx)
	if err != nil {
		return err
	}
	if rep.From == rep.To {
		fmt.Fprintf(env.stdout, "upgrade: the repository is already format version %d\n", rep.To)
		return nil
	}
	fmt.Fprintf(env.stdout, "upgrade: format version %d -> %d: wrote %d metadata copies\n", rep.From, rep.To, rep.Copied)
	for _, n := range rep.Skipped {
		fmt.Fprintf(env.stdout, "not copied (fails verification; 'strata check' reports it): %s\n", printable(n))
	}
	fmt.Fprintf(env.stdout, "version-%d builds can no longer open it; restart any 'strata serve' of it\n", rep.From)
	if len(rep.Skipped) > 0 {
		return fmt.Errorf("upgrade: %d metadata objects fail verification and got no copy: run 'strata check'", len(rep.Skipped))
	}
	return nil
}
