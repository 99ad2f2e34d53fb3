package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source"
)

// runReencrypt is `key rotate --reencrypt` (FORMAT.md §4.1, "Re-encryption
// and retirement"): it rotates unless a re-encryption is under way, rewrites
// what older generations seal, prunes the replaced packs, and retires the
// old generations once nothing needs them. Each real run leaves an audit
// record on the store; the JSON shape is engine.ReencryptResult.
func runReencrypt(ctx context.Context, env *environment, r *repo.Repository, o engine.ReencryptOptions, asJSON bool) error {
	var w engine.Work
	o.Progress = &w
	stop := startWork(env, "re-encrypting", &w, false)
	start := time.Now()
	res, err := engine.Reencrypt(ctx, r, o)
	stop()
	if !o.DryRun {
		rec := wire.AuditRecord{Time: time.Now().UTC(), Action: "key-rotate-reencrypt", Status: 200, Result: "ok", Seconds: time.Since(start).Seconds()}
		if res != nil {
			rec.Bytes = res.PackBytes
			rec.Detail = reencryptSummary(res)
		}
		if h, herr := os.Hostname(); herr == nil {
			rec.Remote = h
		}
		if err != nil {
			rec.Status, rec.Result, rec.Detail = 500, "failed", clipDetail(err.Error())
		}
		if aerr := server.AppendAudit(context.WithoutCancel(ctx), r.Store(), rec); aerr != nil {
			fmt.Fprintf(env.stderr, "key rotate: warning: the audit record was not written: %v\n", aerr)
		}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env, res)
	}
	out := env.stdout
	switch {
	case res.DryRun:
		fmt.Fprintf(out, "key rotate --reencrypt --dry-run: would seal everything under key generation %d, rewriting %s\n", res.Generation, reencryptSummary(res))
		return nil
	case res.Rotated != nil:
		fmt.Fprintf(out, "key rotate: key generation %d -> %d; %d key file(s) re-wrapped\n", res.Rotated.From, res.Rotated.To, len(res.Rotated.Rewrapped))
	case res.Resumed:
		fmt.Fprintf(out, "key rotate: continuing the re-encryption to key generation %d\n", res.Generation)
	}
	fmt.Fprintf(out, "re-encrypted %s\n", reencryptSummary(res))
	if len(res.Renamed) > 0 {
		fmt.Fprintf(out, "%d snapshot(s) have new IDs (a snapshot's ID is the hash of its sealed manifest):\n", len(res.Renamed))
		for old, n := range res.Renamed {
			fmt.Fprintf(out, "  %s -> %s\n", old[:12], n[:12])
		}
	}
	if res.Prune != nil {
		fmt.Fprintf(out, "prune: %d pack(s) marked, %d waiting for the grace period, %d deleted\n", res.Prune.Marked, res.Prune.Pending, res.Prune.Deleted)
	}
	if res.Done {
		fmt.Fprintf(out, "done: everything is sealed under key generation %d; generations %s retired from every key file\n", res.Generation, gens(res.Retired.Retired))
		return nil
	}
	fmt.Fprintln(out, "not finished; the old generations stay in the key files until:")
	for _, w := range res.Waiting {
		fmt.Fprintf(out, "  - %s\n", w)
	}
	fmt.Fprintf(out, "run `strata key rotate --reencrypt` again after the grace period (%v) to finish\n", o.Grace)
	return nil
}

// reencryptSummary counts what a run rewrote.
func reencryptSummary(res *engine.ReencryptResult) string {
	return fmt.Sprintf("%d pack(s) (%s), %d index file(s), %d snapshot(s), %d log segment(s), %d checkpoint(s)",
		res.Packs, source.HumanBytes(res.PackBytes), res.Indexes, res.Snapshots, res.Segments, res.Checkpoints)
}

func gens(g []uint32) string {
	if len(g) == 0 {
		return "(none but 0's encryption use)"
	}
	s := make([]string, len(g))
	for i, x := range g {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func clipDetail(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}
