package main

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// openDatabase opens a --source or --target URL through the source
// registered for its scheme (package source); a bad URL is a usage error.
func openDatabase(env *environment, raw string) (source.Source, error) {
	src, err := source.Open(raw, env.sourceEnv())
	return src, sourceUsage(err)
}

// sourceEnv is what the CLI gives a source: its host name, output, the
// secrets it may read and the plan printer for dry runs.
func (env *environment) sourceEnv() *source.Env {
	return &source.Env{
		Host: env.host, Stdin: env.stdin, Stdout: env.stdout, Stderr: env.stderr, Secret: env.optionalSecret,
		Progress: func(what string, total int64, done func() int64, detail func() string) func() {
			return startProgress(env, what, total, done, detail)
		},
		PrintPlan: func(ctx context.Context, r *repo.Repository, p *index.Plan) error {
			return printPlan(ctx, env, r, p, false)
		},
	}
}

// restoreDatabase restores a stream into a live database: the snapshot
// (given, or the latest) or the state at target. A forced restore into a
// database that holds anything first takes a rollback point of it
// (rollback.go), unless noRollback.
func restoreDatabase(ctx context.Context, env *environment, location, stream, dbURL, snapID string, target *index.Target, posName string, o source.RestoreOptions, noRollback, asJSON bool) error {
	if snapID != "" && (target != nil || posName != "") {
		return usagef("--snapshot and --at/--at-position exclude each other: the plan picks the snapshot")
	}
	db, err := openDatabase(env, dbURL)
	if err != nil {
		return err
	}
	if _, ok := db.(source.Partitioned); o.Collections != "" && !ok {
		return usagef("--collections: %s has no collections to choose from (only a mongodb:// target has them)", source.RedactURL(dbURL))
	}
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return err
	}
	cat, err := index.LoadStreamCatalog(ctx, r, stream)
	if cat == nil {
		return err
	}
	if err = index.ErrorsFor(err, stream); err != nil && snapID == "" {
		// The snapshot that failed may be the newest, or the base a plan needs.
		return fmt.Errorf("refusing to restore %s: %w; a snapshot that fails verification may be its newest, and Strata never falls back to an older one (run 'strata check'; --snapshot ID restores a snapshot you name)", stream, err)
	}
	t := index.Target{Time: time.Now()}
	if posName != "" {
		// A position named in the database's terms (restoreDatabase's
		// caller passes only what is not a plain integer).
		pr, ok := db.(source.PositionResolver)
		var pos uint64
		if ok {
			pos, ok, err = pr.ResolvePosition(ctx, r, cat, stream, posName)
		}
		if !ok {
			return usagef("--at/--at-position: position %q: want a non-negative integer (or, with a mongodb:// target, an oplog timestamp T:I)", posName)
		}
		if err != nil {
			return err
		}
		target = &index.Target{Position: pos, ByPos: true}
		if o.DryRun {
			fmt.Fprintf(env.stdout, "--at-position %s: position %d\n", posName, pos)
		} else {
			env.summaryf("--at-position %s is position %d of %s", posName, pos, stream)
		}
	}
	switch {
	case target != nil:
		t = *target
	case snapID != "":
		s, err := cat.Find(stream, snapID)
		if err != nil {
			return err
		}
		if s.Position != nil {
			t = index.Target{Position: *s.Position, ByPos: true}
		} else {
			t = index.Target{Time: s.Time}
		}
	default:
		s, err := cat.Latest(stream)
		if err != nil {
			return err
		}
		t = index.Target{Time: s.Time}
		if s.Position != nil {
			t = index.Target{Position: *s.Position, ByPos: true}
		}
	}
	if o.DryRun {
		if _, err := db.Restore(ctx, r, cat, stream, t, o); err != nil || !o.Force || noRollback {
			return sourceUsage(err)
		}
		_, err := fmt.Fprintf(env.stdout, "rollback point: if the target holds anything, it is first backed up into stream %s.rollback.<UTC time> (--no-rollback-point skips this)\n", stream)
		return err
	}
	var rb *rollbackPoint
	if !noRollback && o.Force {
		// A restore the plan refuses replaces nothing: no rollback point.
		// (The source verifies the plan's segments again before it writes.)
		p, err := cat.Plan(stream, t)
		if err != nil {
			return err
		}
		if p.Untrusted {
			if err := p.ProveEnd(); err != nil {
				return fmt.Errorf("refusing the server's plan: %w", err)
			}
		}
		if rb, err = takeRollbackPoint(ctx, env, r, location, stream, dbURL, db, o); err != nil {
			return err
		}
	}
	start := time.Now()
	rep, err := db.Restore(ctx, r, cat, stream, t, o)
	if err != nil {
		return rb.failed(sourceUsage(err))
	}
	if rep.Target == "" {
		rep.Target = source.RedactURL(dbURL)
	}
	return printRestore(env, stream, t, rep, start, asJSON)
}
