package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source"
)

func cmdForget(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "forget", "--repo URL --stream NAME [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-within-pitr D] [--dry-run] [--prune [--grace D]]")
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
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkStream(*stream); err != nil {
		return err
	}
	r, err := openRepo(ctx, env, *location)
	if err != nil {
		return err
	}
	if c := remoteOf(r); c != nil {
		if err := forgetRemote(ctx, env, c, *stream, p, *dryRun); err != nil {
			return err
		}
		if *prune && !*dryRun {
			return runPrune(ctx, env, r, engine.PruneOptions{Grace: *grace})
		}
		return nil
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		// Deciding what to keep from a partial view could remove the base a
		// window needs.
		return fmt.Errorf("forget: some manifests could not be read, so nothing is removed: %w", err)
	}
	res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: *stream, Policy: p, Now: time.Now(), DryRun: *dryRun})
	if errors.Is(err, engine.ErrEmptyPolicy) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	for _, s := range res.Keep {
		fmt.Fprintf(env.stdout, "keep %s %s  %v\n", s.ID.Short(), index.FormatTime(s.Time), res.Reasons[s.ID])
	}
	for _, s := range res.Remove {
		fmt.Fprintf(env.stdout, "%s snapshot %s %s\n", verb, s.ID.Short(), index.FormatTime(s.Time))
	}
	if n := len(res.RemoveSegments); n > 0 {
		fmt.Fprintf(env.stdout, "%s %d log segments, positions %d-%d\n", verb, n, res.RemoveSegments[0].First, res.RemoveSegments[n-1].Last)
	}
	for _, d := range res.Deferred {
		fmt.Fprintf(env.stdout, "deferred (under retention): %s\n", printable(d))
	}
	if *prune && !*dryRun {
		return runPrune(ctx, env, r, engine.PruneOptions{Grace: *grace})
	}
	return nil
}

func cmdPrune(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "prune", "--repo URL [--grace D] [--dry-run]")
	location := repoFlag(fs, env)
	grace := fs.Duration("grace", time.Hour, "how long a pack stays marked unreferenced before it is deleted; longer than any backup")
	dryRun := fs.Bool("dry-run", false, "print what would happen, change nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *grace <= 0 {
		return usagef("--grace must be positive")
	}
	r, err := openRepo(ctx, env, *location)
	if err != nil {
		return err
	}
	return runPrune(ctx, env, r, engine.PruneOptions{Grace: *grace, DryRun: *dryRun})
}

func runPrune(ctx context.Context, env *environment, r *repo.Repository, o engine.PruneOptions) error {
	res, err := engine.Prune(ctx, r, o)
	if err != nil {
		return err
	}
	what := "deleted"
	if o.DryRun {
		what = "would delete"
	}
	fmt.Fprintf(env.stdout, "prune: marked %d packs, %d pending (grace %s), unmarked %d; %s %d packs (%s), rewrote %d and removed %d index files\n",
		res.Marked, res.Pending, o.Grace, res.Unmarked, what, res.Deleted, source.HumanBytes(res.FreedBytes), res.RewrittenIndexes, res.DeletedIndexes)
	if res.ExpiredCheckpoints > 0 {
		fmt.Fprintf(env.stdout, "prune: %s %d expired backup checkpoints; their packs age out from now\n", what, res.ExpiredCheckpoints)
	}
	for _, d := range res.Deferred {
		fmt.Fprintf(env.stdout, "deferred (under retention): %s\n", printable(d))
	}
	return nil
}

// forgetRemote has the server apply the policy: it decides by the times it
// received the snapshots, not by the times clients claimed.
func forgetRemote(ctx context.Context, env *environment, c *client.Client, stream string, p engine.ForgetPolicy, dryRun bool) error {
	req := wire.ForgetRequest{Stream: stream, KeepLast: p.KeepLast, KeepHourly: p.KeepHourly, KeepDaily: p.KeepDaily,
		KeepWeekly: p.KeepWeekly, KeepMonthly: p.KeepMonthly, DryRun: dryRun}
	if p.KeepWithinPITR > 0 {
		req.KeepWithinPITR = p.KeepWithinPITR.String()
	}
	res, err := c.Forget(ctx, req)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) && e.Code == wire.CodeBadRequest {
			return usageError{e.Message}
		}
		return err
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	short := func(id string) string { return id[:min(len(id), 8)] }
	for _, s := range res.Keep {
		fmt.Fprintf(env.stdout, "keep %s %s  %v\n", printable(short(s.ID)), index.FormatTime(s.Time), printable(fmt.Sprint(s.Reasons)))
	}
	for _, s := range res.Remove {
		fmt.Fprintf(env.stdout, "%s snapshot %s %s\n", verb, printable(short(s.ID)), index.FormatTime(s.Time))
	}
	if n := len(res.RemoveSegments); n > 0 {
		first, _ := repo.ParseSegmentName(res.RemoveSegments[0])
		last, _ := repo.ParseSegmentName(res.RemoveSegments[n-1])
		fmt.Fprintf(env.stdout, "%s %d log segments, positions %d-%d\n", verb, n, first.First, last.Last)
	}
	for _, d := range res.Deferred {
		fmt.Fprintf(env.stdout, "deferred (under retention): %s\n", printable(d))
	}
	fmt.Fprintf(env.stderr, "decided by the server's receive times, at %s\n", index.FormatTime(res.Now))
	return nil
}
