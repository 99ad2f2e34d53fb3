package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// cmdKeyRotate makes a new key generation and re-wraps every key file
// under it (FORMAT.md §4.1). It needs every key file's password: the one
// that opens the repository (STRATA_PASSWORD or STRATA_PASSWORD_FILE) and
// one --other-password-file per other password. It rewrites the config,
// so it runs on the store itself, never through an index server. An
// interrupted rotation is completed by running it again.
func cmdKeyRotate(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--other-password-file FILE]... [--reencrypt [--grace D] [--dry-run]] [--json]")
	location := repoFlag(fs, env)
	othersFlag := fs.StringArray("other-password-file", nil, "a `file` whose first line is the password of another key file (repeat for each)")
	asJSON := jsonFlag(fs, "print the report as JSON: {from, to, resumed, rewrapped, removed}; with --reencrypt {generation, rotated (that report, when this run rotated), resumed, dry_run, packs, pack_bytes, indexes, snapshots, segments, checkpoints, renamed (old snapshot ID to new), prune {marked, pending, deleted, freed_bytes}, waiting, retired {kept, retired, rewrapped, removed}, done}")
	reencrypt := fs.Bool("reencrypt", false, "also rewrite everything sealed under older generations and then retire them from every key file (resumable; run again after --grace to finish)")
	grace := fs.Duration("grace", time.Hour, "with --reencrypt: how long a replaced pack stays marked before it is deleted, as prune's; longer than any backup")
	dryRun := fs.Bool("dry-run", false, "with --reencrypt: count what would be rewritten (objects and bytes), change nothing")
	return func(ctx context.Context, args []string) error {
		others := *othersFlag
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		// Read every secret before the slow part, so a typo fails fast.
		passwords := make([][]byte, 1, 1+len(others))
		for _, f := range others {
			pw, err := readSecretFile("--other-password-file", f)
			if err != nil {
				return err
			}
			passwords = append(passwords, pw)
		}
		st, err := env.openStore(ctx, *location)
		if err != nil {
			return err
		}
		if passwords[0], err = env.password(false); err != nil {
			return err
		}
		r, err := repo.Open(ctx, st, passwords[0])
		if err != nil {
			return fmt.Errorf("open %s: %w", *location, err)
		}
		if err := localOnly(r, "key rotate"); err != nil {
			return err
		}
		if *reencrypt {
			return runReencrypt(ctx, env, r, engine.ReencryptOptions{Passwords: passwords, Grace: *grace, DryRun: *dryRun}, *asJSON)
		}
		if *dryRun {
			return usagef("--dry-run goes with --reencrypt")
		}
		if pending, err := engine.ReencryptPending(ctx, r); err != nil {
			return err
		} else if pending {
			return errors.New("key rotate: a re-encryption is under way (its journal is in the repository): run `strata key rotate --reencrypt` to continue it")
		}
		rep, err := r.RotateKeys(ctx, passwords)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(env.stdout).Encode(rep)
		}
		verb := "rotated"
		if rep.Resumed {
			verb = "completed the interrupted rotation"
		}
		fmt.Fprintf(env.stdout, "key rotate: %s: key generation %d -> %d; %d key file(s) re-wrapped, %d replaced\n", verb, rep.From, rep.To, len(rep.Rewrapped), len(rep.Removed))
		for _, n := range rep.Rewrapped {
			fmt.Fprintf(env.stdout, "  new key %s\n", strings.TrimPrefix(n, repo.KeysPrefix))
		}
		fmt.Fprintln(env.stdout, "new data is written under the new generation; older ones stay readable. Restart long-running writers (log captures, s3 serve) so they use it; builds that read only version-1 key files can no longer open the repository")
		return nil
	}
}
