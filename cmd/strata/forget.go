package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source"
)

func cmdForget(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-within-pitr D] [--dry-run] [--prune [--grace D]] [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	var p engine.ForgetPolicy
	fs.IntVar(&p.KeepLast, "keep-last", 0, "keep the newest N snapshots")
	fs.IntVar(&p.KeepHourly, "keep-hourly", 0, "keep the newest snapshot of each of the newest N hours that have one (UTC)")
	fs.IntVar(&p.KeepDaily, "keep-daily", 0, "keep the newest snapshot of each of the newest N days")
	fs.IntVar(&p.KeepWeekly, "keep-weekly", 0, "keep the newest snapshot of each of the newest N ISO weeks")
	fs.IntVar(&p.KeepMonthly, "keep-monthly", 0, "keep the newest snapshot of each of the newest N months")
	fs.DurationVar(&p.KeepWithinPITR, "keep-within-pitr", 0, "keep every instant of the last `duration` restorable: its snapshots, the base before it, and the log after that base")
	dryRun := fs.Bool("dry-run", false, "print what would be removed, remove nothing")
	prune := fs.Bool("prune", false, "run prune afterwards")
	grace := fs.Duration("grace", time.Hour, "with --prune: how long a pack stays marked before it is deleted")
	asJSON := jsonFlag(fs, "print one JSON object: stream, dry_run, keep, remove, remove_segments, deferred, now, and prune's object with --prune")
	return func(ctx context.Context, args []string) error {
		if err := checkStream(*stream); err != nil {
			return err
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		var out forgetJSON
		if c := remoteOf(r); c != nil {
			if out.ForgetResponse, err = forgetRemote(ctx, c, *stream, p, *dryRun); err != nil {
				return err
			}
		} else {
			cat, err := index.LoadCatalog(ctx, r)
			if err != nil {
				// Deciding what to keep from a partial view could remove the base a
				// window needs.
				return fmt.Errorf("forget: some manifests could not be read, so nothing is removed: %w", err)
			}
			now := time.Now()
			res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: *stream, Policy: p, Now: now, DryRun: *dryRun})
			if errors.Is(err, engine.ErrEmptyPolicy) {
				return usageError{err.Error()}
			}
			if err != nil {
				return err
			}
			out.ForgetResponse = forgetResponse(res, now)
		}
		out.Stream, out.DryRun = *stream, *dryRun
		if *prune && !*dryRun {
			work := &engine.Work{}
			stopProgress := startWork(env, "prune: walking snapshots and segments", work, false)
			pr, err := engine.Prune(ctx, r, engine.PruneOptions{Grace: *grace, Progress: work})
			stopProgress()
			if err != nil {
				return err
			}
			j := pruneResult(pr, engine.PruneOptions{Grace: *grace})
			out.Prune = &j
		}
		if *asJSON {
			return writeJSON(env, out)
		}
		printForget(env, out, remoteOf(r) != nil)
		return nil
	}
}

// forgetJSON is forget --json's object: the server's forget response
// (wire.ForgetResponse, the same shape for a local repository), and prune's
// result when --prune ran.
type forgetJSON struct {
	Stream string `json:"stream"`
	DryRun bool   `json:"dry_run"`
	wire.ForgetResponse
	Prune *pruneJSON `json:"prune,omitempty"`
}

// forgetResponse is a local forget's result in the server's shape, lists
// empty rather than null.
func forgetResponse(res *engine.ForgetResult, now time.Time) wire.ForgetResponse {
	out := wire.ForgetResponse{Keep: []wire.Decision{}, Remove: []wire.Decision{}, RemoveSegments: []string{}, Deferred: []string{}, Now: now}
	out.Deferred = append(out.Deferred, res.Deferred...)
	for _, k := range res.Keep {
		out.Keep = append(out.Keep, wire.Decision{ID: k.ID.String(), Time: k.Time, Reasons: res.Reasons[k.ID]})
	}
	for _, k := range res.Remove {
		out.Remove = append(out.Remove, wire.Decision{ID: k.ID.String(), Time: k.Time})
	}
	for _, k := range res.RemoveSegments {
		out.RemoveSegments = append(out.RemoveSegments, k.Name())
	}
	return out
}

// printForget prints forget's result as text.
func printForget(env *environment, f forgetJSON, remote bool) {
	verb := "removed"
	if f.DryRun {
		verb = "would remove"
	}
	short := func(id string) string { return id[:min(len(id), 8)] }
	for _, s := range f.Keep {
		fmt.Fprintf(env.stdout, "keep %s %s  %v\n", printable(short(s.ID)), index.FormatTime(s.Time), printable(fmt.Sprint(s.Reasons)))
	}
	for _, s := range f.Remove {
		fmt.Fprintf(env.stdout, "%s snapshot %s %s\n", verb, printable(short(s.ID)), index.FormatTime(s.Time))
	}
	if n := len(f.RemoveSegments); n > 0 {
		first, _ := repo.ParseSegmentName(f.RemoveSegments[0])
		last, _ := repo.ParseSegmentName(f.RemoveSegments[n-1])
		fmt.Fprintf(env.stdout, "%s %d log segments, positions %d-%d\n", verb, n, first.First, last.Last)
	}
	for _, d := range f.Deferred {
		fmt.Fprintf(env.stdout, "deferred (under retention): %s\n", printable(d))
	}
	if remote {
		fmt.Fprintf(env.stderr, "decided by the server's receive times, at %s\n", index.FormatTime(f.Now))
	}
	if f.Prune != nil {
		printPrune(env, *f.Prune)
	}
}

func cmdPrune(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--grace D] [--dry-run] [--json]")
	location := repoFlag(fs, env)
	grace := fs.Duration("grace", time.Hour, "how long a pack stays marked unreferenced before it is deleted; longer than any backup")
	dryRun := fs.Bool("dry-run", false, "print what would happen, change nothing")
	asJSON := jsonFlag(fs, "print one JSON object: dry_run, grace, marked, pending, unmarked, deleted, freed_bytes, rewritten_indexes, deleted_indexes, deferred")
	return func(ctx context.Context, args []string) error {
		if *grace <= 0 {
			return usagef("--grace must be positive")
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		o := engine.PruneOptions{Grace: *grace, DryRun: *dryRun, Progress: &engine.Work{}}
		stopProgress := startWork(env, "prune: walking snapshots and segments", o.Progress, false)
		res, err := engine.Prune(ctx, r, o)
		stopProgress()
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env, pruneResult(res, o))
		}
		printPrune(env, pruneResult(res, o))
		return nil
	}
}

// pruneJSON is prune --json's object.
type pruneJSON struct {
	DryRun           bool   `json:"dry_run"`
	Grace            string `json:"grace"`
	Marked           int    `json:"marked"`
	Pending          int    `json:"pending"`
	Unmarked         int    `json:"unmarked"`
	Deleted          int    `json:"deleted"`
	FreedBytes       int64  `json:"freed_bytes"`
	RewrittenIndexes int    `json:"rewritten_indexes"`
	DeletedIndexes   int    `json:"deleted_indexes"`
	// ExpiredCheckpoints are interrupted backups' checkpoints past their
	// age (FORMAT.md §12.1), removed so their packs age out.
	ExpiredCheckpoints int      `json:"expired_checkpoints"`
	Deferred           []string `json:"deferred"`
}

func pruneResult(res *engine.PruneResult, o engine.PruneOptions) pruneJSON {
	return pruneJSON{DryRun: o.DryRun, Grace: o.Grace.String(), Marked: res.Marked, Pending: res.Pending, Unmarked: res.Unmarked,
		Deleted: res.Deleted, FreedBytes: res.FreedBytes, RewrittenIndexes: res.RewrittenIndexes, DeletedIndexes: res.DeletedIndexes,
		ExpiredCheckpoints: res.ExpiredCheckpoints, Deferred: append([]string{}, res.Deferred...)}
}

func printPrune(env *environment, p pruneJSON) {
	what := "deleted"
	if p.DryRun {
		what = "would delete"
	}
	fmt.Fprintf(env.stdout, "prune: marked %d packs, %d pending (grace %s), unmarked %d; %s %d packs (%s), rewrote %d and removed %d index files\n",
		p.Marked, p.Pending, p.Grace, p.Unmarked, what, p.Deleted, source.HumanBytes(p.FreedBytes), p.RewrittenIndexes, p.DeletedIndexes)
	if p.ExpiredCheckpoints > 0 {
		fmt.Fprintf(env.stdout, "prune: %s %d expired backup checkpoints; their packs age out from now\n", what, p.ExpiredCheckpoints)
	}
	for _, d := range p.Deferred {
		fmt.Fprintf(env.stdout, "deferred (under retention): %s\n", printable(d))
	}
}

// forgetRemote has the server apply the policy: it decides by the times it
// received the snapshots, not by the times clients claimed.
func forgetRemote(ctx context.Context, c *client.Client, stream string, p engine.ForgetPolicy, dryRun bool) (wire.ForgetResponse, error) {
	req := wire.ForgetRequest{Stream: stream, KeepLast: p.KeepLast, KeepHourly: p.KeepHourly, KeepDaily: p.KeepDaily,
		KeepWeekly: p.KeepWeekly, KeepMonthly: p.KeepMonthly, DryRun: dryRun}
	if p.KeepWithinPITR > 0 {
		req.KeepWithinPITR = p.KeepWithinPITR.String()
	}
	res, err := c.Forget(ctx, req)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) && e.Code == wire.CodeBadRequest {
			return wire.ForgetResponse{}, usageError{e.Message}
		}
		return wire.ForgetResponse{}, err
	}
	return *res, nil
}
