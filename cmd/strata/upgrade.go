package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// cmdUpgrade turns a version-1 repository into the current format
// (FORMAT.md §25.4): a second copy of every metadata object, then the
// version-2 config. It is idempotent and resumable: an interrupted upgrade
// leaves a version-1 repository that the next run completes.
func cmdUpgrade(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--json]")
	location := repoFlag(fs, env)
	asJSON := jsonFlag(fs, `print one JSON object: {"from","to","copied","skipped":[…]} (the format versions before and after, the metadata copies written, the objects that fail verification and got none)`)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
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
		var skippedErr error
		if len(rep.Skipped) > 0 {
			skippedErr = fmt.Errorf("upgrade: %d metadata objects fail verification and got no copy: run 'strata check'", len(rep.Skipped))
		}
		if *asJSON {
			out := upgradeJSON{From: rep.From, To: rep.To, Copied: rep.Copied, Skipped: append([]string{}, rep.Skipped...)}
			return errors.Join(writeJSON(env, out), skippedErr)
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
		return skippedErr
	}
}

// upgradeJSON is upgrade --json's object.
type upgradeJSON struct {
	From    int      `json:"from"`
	To      int      `json:"to"`
	Copied  int      `json:"copied"`
	Skipped []string `json:"skipped"`
}
