package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/source"
)

// cmdDrill restores each stream the glob matches at one instant, into a
// sink that counts and digests (nothing is written) or into a scratch
// database, verifies the proofs (FORMAT.md §11.1), measures the recovery
// time and records the result in the repository (FORMAT.md §24.1).
func cmdDrill(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream GLOB [--at TIME | --random] [--target URL [--force]] [--json]")
	location := repoFlag(fs, env)
	glob := fs.String("stream", "", "streams to drill: a name or a `glob` ('*' any run, '?' one character), for example shop/* (required)")
	at := fs.String("at", "", "restore the state at this instant: RFC 3339 or unix seconds (default: the newest restorable instant)")
	random := fs.Bool("random", false, "restore at a random instant of the stream's restorable windows")
	dbTarget := fs.String("target", "", "restore into this scratch database instead of the digesting sink: a URL as restore --target takes (password from STRATA_SOURCE_PASSWORD)")
	force := fs.Bool("force", false, "with --target: replace what the scratch database holds")
	asJSON := jsonFlag(fs, "print the drill records as a JSON array")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *glob == "" {
			return usagef("--stream is required")
		}
		if err := auth.ValidGlob(*glob); err != nil {
			return usageError{err.Error()}
		}
		if *at != "" && *random {
			return usagef("--at and --random exclude each other")
		}
		if *force && *dbTarget == "" {
			return usagef("--force goes with --target")
		}
		var atTime time.Time
		if *at != "" {
			var err error
			if atTime, err = index.ParseTime(*at); err != nil {
				return usageError{err.Error()}
			}
		}
		var db source.Source
		if *dbTarget != "" {
			var err error
			if db, err = openDatabase(env, *dbTarget); err != nil {
				return err
			}
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		cat, err := index.LoadStreamCatalog(ctx, r, "")
		if cat == nil {
			return err
		}
		var streams []string
		for _, s := range cat.Snapshots {
			if auth.MatchGlob(*glob, s.Stream) && !slices.Contains(streams, s.Stream) {
				streams = append(streams, s.Stream)
			}
		}
		if len(streams) == 0 {
			return fmt.Errorf("no stream with a snapshot matches %q: %w", *glob, index.ErrNoSnapshot)
		}
		slices.Sort(streams)
		all, allErr := cat, err
		d := drill{env: env, r: r, db: db, force: *force, target: source.RedactURL(*dbTarget)}
		if *dbTarget == "" {
			d.target = ""
		}
		var recs []ops.DrillRecord
		var failed []error
		var last int64
		for _, stream := range streams {
			d.cat, d.catErr = all, allErr
			if all.Untrusted {
				// A server's catalog of every stream lists no log: ask for the stream's.
				if d.cat, d.catErr = index.LoadStreamCatalog(ctx, r, stream); d.cat == nil {
					return d.catErr
				}
			}
			var newest time.Time
			if s, err := d.cat.Latest(stream); err == nil && d.cat.Untrusted {
				newest = s.Time
			}
			pick := func(cov index.Coverage) (index.Target, error) { return pickInstant(cov, atTime, *random, newest) }
			rec, derr := d.run(ctx, stream, pick)
			if ctx.Err() != nil {
				return ctx.Err() // an interrupted drill proves nothing: no record
			}
			// Stamps are unique and ascending, so several drills of one run
			// never share a name.
			ns := max(rec.Time.UnixNano(), last+1)
			last = ns
			if err := putDrillRecord(ctx, r, ns, &rec); err != nil {
				return fmt.Errorf("drill %s: record the result: %w", stream, err)
			}
			recs = append(recs, rec)
			if derr != nil {
				failed = append(failed, fmt.Errorf("%s: %w", stream, derr))
			}
			if !*asJSON {
				printDrill(env.stdout, &rec)
			}
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(recs); err != nil {
				return err
			}
		}
		if len(failed) == 0 {
			return nil
		}
		// The exit code follows the gravest failure: a verification failure
		// (3) before any other.
		worst := failed[0]
		for _, e := range failed {
			if exitCode(e) == exitDamage {
				worst = e
				break
			}
		}
		return fmt.Errorf("%d of %d drills failed; %w", len(failed), len(recs), worst)
	}
}

// drill runs the drill of one stream at a time.
type drill struct {
	r      *repo.Repository
	cat    *index.Catalog
	catErr error // manifests the catalog could not read
	db     source.Source
	env    *environment // prints a --target restore's report
	force  bool
	target string // redacted, for the record
}

// run drills stream at the instant pick chooses. The record says what
// happened either way; the error is the first failure, for the exit code.
func (d *drill) run(ctx context.Context, stream string, pick func(index.Coverage) (index.Target, error)) (ops.DrillRecord, error) {
	rec := ops.DrillRecord{Stream: stream, Time: time.Now().UTC(), Target: d.target, Checks: []ops.Check{}}
	fail := func(err error) (ops.DrillRecord, error) {
		rec.OK = false
		rec.Error = clipString(err.Error(), 4096)
		return rec, err
	}
	if err := index.ErrorsFor(d.catErr, stream); err != nil {
		// A snapshot that cannot be read may be the one the plan needs.
		return fail(err)
	}
	t, err := pick(d.cat.Coverage(stream))
	if err != nil {
		return fail(err)
	}
	rec.At = t.Time.UTC()
	start := time.Now()
	p, err := d.cat.Plan(stream, t)
	if err != nil {
		return fail(err)
	}
	var sp source.StateProof
	if d.db != nil {
		var rep source.RestoreReport
		if rep, err = d.db.Restore(ctx, d.r, d.cat, stream, t, source.RestoreOptions{Force: d.force}); err == nil {
			if rep.Target == "" {
				rep.Target = d.target
			}
			err = printRestore(d.env, stream, t, rep, start, false)
		}
	} else {
		sp, err = source.ProveState(ctx, d.r, p)
		switch {
		case errors.Is(err, source.ErrUnproven) && len(p.Segments) == 0:
			// The snapshot alone is the state: its bytes, verified blob by
			// blob and in size, are what a restore gives back.
			_, err = engine.Restore(ctx, d.r, p.Base, io.Discard, restoreOptions(d.r))
		case errors.Is(err, source.ErrUnproven):
			err = fmt.Errorf("%v: drill this stream into a scratch database (--target URL)", err)
		}
	}
	rec.RTOSeconds = time.Since(start).Seconds()
	rec.Records = sp.Proof.Records
	rec.Position = p.Base.Position
	if sp.Reached != 0 {
		pos := sp.Reached
		rec.Position = &pos
	}
	check := func(name string, err error) error {
		c := ops.Check{Name: name, OK: err == nil}
		if errors.Is(err, source.ErrUnproven) {
			c.Unproven = true
		}
		if err != nil {
			// An unproven check's flag says so: its note is the reason alone.
			c.Note = clipString(strings.TrimPrefix(err.Error(), source.ErrUnproven.Error()+": "), 1024)
		}
		rec.Checks = append(rec.Checks, c)
		if c.Unproven {
			return nil
		}
		return err
	}
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if err := check("restore", err); err != nil {
		keep(err)
		return d.finish(rec, first)
	}
	if d.db == nil {
		// The state the sink digested, when it is a snapshot's state.
		keep(check("state-proof", d.stateProof(p, sp)))
	}
	keep(check("snapshot-proof", d.snapshotProof(ctx, p.Base)))
	keep(check("replay-proof", d.replayProof(ctx, p.Base)))
	return d.finish(rec, first)
}

func (d *drill) finish(rec ops.DrillRecord, err error) (ops.DrillRecord, error) {
	rec.OK = err == nil
	if err != nil {
		rec.Error = clipString(err.Error(), 4096)
	}
	return rec, err
}

// stateProof compares the state digested by the sink with the proof of
// the snapshot, if any, whose consistent point is the position reached.
func (d *drill) stateProof(p *index.Plan, sp source.StateProof) error {
	reached := sp.Reached
	if sp.Events == 0 && p.Base.Position != nil {
		reached = *p.Base.Position // a base may be at position 0 (Redis)
	} else if reached == 0 {
		return fmt.Errorf("%w: the base has no log position", source.ErrUnproven)
	}
	for _, s := range d.cat.Stream(p.Stream) {
		want, ok := s.Proof()
		if ok && s.Position != nil && *s.Position == reached {
			return want.Check(fmt.Sprintf("state at position %d (snapshot %s)", reached, s.ID.Short()), sp.Proof)
		}
	}
	return fmt.Errorf("%w: no snapshot with a proof is at position %d", source.ErrUnproven, reached)
}

// snapshotProof recomputes the base's own proof from its content.
func (d *drill) snapshotProof(ctx context.Context, base index.SnapshotRef) error {
	return source.SnapshotProof(ctx, d.r, base)
}

// replayProof checks the base against the next snapshot of its stream.
func (d *drill) replayProof(ctx context.Context, base index.SnapshotRef) error {
	snaps := d.cat.Stream(base.Stream)
	i := slices.IndexFunc(snaps, func(s index.SnapshotRef) bool { return s.ID == base.ID })
	if i < 0 || i+1 >= len(snaps) {
		return fmt.Errorf("%w: no later snapshot to replay to", source.ErrUnproven)
	}
	_, err := source.ReplayProof(ctx, d.r, d.cat, base, snaps[i+1])
	if pp, ok := d.db.(source.PlanProver); ok && errors.Is(err, source.ErrUnproven) {
		// Only the scratch database can apply this log (Redis): replay
		// through it, which replaces the drill's state there.
		_, err = source.ReplayProofBy(ctx, d.r, d.cat, base, snaps[i+1], func(p *index.Plan) (source.StateProof, error) {
			return pp.ProveRestore(ctx, d.r, p)
		})
	}
	return err
}

// pickInstant chooses the instant of a drill: at when given, a random
// instant of the windows, or the newest restorable one. A catalog from an
// index server cannot prove a restore at its newest event (FORMAT.md §16),
// so there the default is the newest snapshot's own instant (newestSnap,
// zero for a catalog read from the store).
func pickInstant(cov index.Coverage, at time.Time, random bool, newestSnap time.Time) (index.Target, error) {
	ws := cov.Windows
	if len(ws) == 0 {
		return index.Target{}, fmt.Errorf("stream %s: nothing restorable: %w", cov.Stream, index.ErrNotRestorable)
	}
	switch {
	case !at.IsZero():
		return index.Target{Time: at}, nil
	case random:
		var total int64
		for _, w := range ws {
			total += w.To.Sub(w.From).Nanoseconds()
		}
		if total <= 0 {
			return index.Target{Time: ws[rand.IntN(len(ws))].From}, nil
		}
		n := rand.Int64N(total + 1)
		for _, w := range ws {
			span := w.To.Sub(w.From).Nanoseconds()
			if n <= span {
				return index.Target{Time: w.From.Add(time.Duration(n))}, nil
			}
			n -= span
		}
		return index.Target{Time: ws[len(ws)-1].To}, nil
	case !newestSnap.IsZero():
		return index.Target{Time: newestSnap}, nil
	}
	return index.Target{Time: ws[len(ws)-1].To}, nil
}

// putDrillRecord stores rec as drills/<ns>.json: beside the snapshots, or
// through the index server when the repository is one.
func putDrillRecord(ctx context.Context, r *repo.Repository, ns int64, rec *ops.DrillRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return r.Store().Put(context.WithoutCancel(ctx), repo.DrillName(ns), b)
}

func printDrill(w io.Writer, rec *ops.DrillRecord) {
	state := "ok"
	if !rec.OK {
		state = "FAILED"
	}
	fmt.Fprintf(w, "drill %s at %s: %s, %d records, RTO %.3fs\n", rec.Stream, index.FormatTime(rec.At), state, rec.Records, rec.RTOSeconds)
	for _, c := range rec.Checks {
		mark := "ok"
		switch {
		case c.Unproven:
			mark = "unproven"
		case !c.OK:
			mark = "FAILED"
		}
		if c.Note != "" {
			fmt.Fprintf(w, "  %s: %s: %s\n", c.Name, mark, printable(c.Note))
		} else {
			fmt.Fprintf(w, "  %s: %s\n", c.Name, mark)
		}
	}
}
