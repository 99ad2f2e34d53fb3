package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source"
	"github.com/strata-backup/strata/source/ndjson"
)

func cmdLog(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME (--stdin [--key-field F] | --source URL) [--segment-bytes N] [--segment-interval D] [--standby] [--lease-interval D] [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	stdin := fs.Bool("stdin", false, "read change events (NDJSON) from standard input")
	segBytes := fs.Int("segment-bytes", 16<<20, "seal a segment when its events reach this many bytes")
	interval := fs.Duration("segment-interval", 10*time.Second, "seal a segment when its first event is this old: the most a crash can lose (RPO)")
	keyField := fs.String("key-field", ndjson.DefaultKeyField, "stdin: the document field that holds each document's key, as the stream's snapshots have it; a put's doc must hold its key there")
	asJSON := jsonFlag(fs, `print, at the end, {"stream","appended","stored","skipped","segments","gaps","encoded_bytes","stored_bytes"}, and a database's "bases","reconnects","dropped","newest" when it has them`)
	sourceURL := fs.String("source", "", "capture a live database's changes instead: redis://[user@]HOST:PORT, etcd://HOST:PORT[,HOST:PORT...] or mongodb://[USER@]HOST[:PORT][/DB] (password from STRATA_SOURCE_PASSWORD); or events from a file, ndjson:PATH[?key-field=F]")
	lf := addLeaseFlags(fs)
	return func(ctx context.Context, args []string) error {
		if err := lf.check(); err != nil {
			return err
		}
		if err := checkStream(*stream); err != nil {
			return err
		}
		switch {
		case *stdin == (*sourceURL != "") || len(args) != 0:
			return usagef("give one of --stdin (NDJSON events on standard input) or --source URL")
		case *segBytes < 1<<10:
			return usagef("--segment-bytes must be at least 1024")
		case *interval <= 0:
			return usagef("--segment-interval must be positive")
		case keyFieldOK(*keyField) != nil:
			return keyFieldOK(*keyField)
		case *sourceURL != "" && fs.Changed("key-field"):
			return usagef("--key-field goes with --stdin; with --source, an ndjson: URL takes ?key-field=F")
		}
		// --stdin is the export source ndjson:-: every capture goes
		// through a source.Source.
		var src source.Source
		var in *countingReader
		var err error
		if *sourceURL != "" {
			src, err = openDatabase(env, *sourceURL)
		} else {
			// The bar counts the bytes read from stdin (it starts once
			// the lease is held, after any password prompt).
			in = countInput(env.stdin)
			withIn := *env
			withIn.stdin = in
			src, err = openExport(&withIn, "-", "", *keyField, false, false)
		}
		if err != nil {
			return err
		}
		// A database's events are dated by their arrival here, not by a
		// client's claim; admit refuses an event dated past what an index
		// server's clock allows (one sent on stdin, say).
		r, admit, err := openRepoToWrite(ctx, env, *location, *stream, time.Time{})
		if err != nil {
			return err
		}
		lease, ctx, release, err := takeLease(ctx, env, r, *stream, lf)
		if err != nil {
			return err
		}
		defer release()
		ctx, stopProgress := startLogProgress(ctx, env, *stream, in)
		rep, err := src.Capture(ctx, r, *stream, source.CaptureOptions{SegmentBytes: *segBytes, Interval: *interval, Lease: lease, Admit: admit})
		stopProgress()
		return printCapture(env, *stream, rep, *asJSON, sourceUsage(leaseOutcome(lease, err)))
	}
}

// restoreTarget parses --at or --at-position (index.ParseTarget).
func restoreTarget(at, atPos string) (*index.Target, error) {
	t, err := index.ParseTarget(at, atPos)
	if err != nil {
		return nil, usagef("--at/--at-position: %v", err)
	}
	return t, nil
}

// restoreAt plans and runs a point-in-time restore.
func restoreAt(ctx context.Context, env *environment, r *repo.Repository, plan func() (*index.Plan, error), stream string, t index.Target, to string, dryRun, asJSON bool) error {
	p, err := plan()
	if err != nil {
		return err
	}
	if dryRun {
		return printPlan(ctx, env, r, p, asJSON)
	}
	start := time.Now()
	var st ndjson.RestoreStats
	var out int64
	var written atomic.Int64
	stopProgress := startProgress(env, "restore", 0, written.Load, nil)
	run := func(w io.Writer) error {
		cw := &countWriter{w: &progressWriter{w: w, n: &written}}
		st, err = ndjson.RestoreAt(ctx, r, p, cw, restoreOptions(r))
		out = cw.n
		return err
	}
	if to == "-" {
		// Every segment is read and verified before the first byte goes out.
		bw := newBufferedWriter(env.stdout)
		if err := run(bw); err != nil {
			bw.Flush()
			return err
		}
		err = bw.Flush()
	} else {
		err = writeAtomic(to, run)
	}
	stopProgress()
	reportRestore(ctx, env, r, stream, p.Base.ID.String(), t.String(), start, out, err)
	if err != nil {
		return err
	}
	env.summaryf("restored %s at %s: snapshot %s + %d events from %d segments, %d keys changed, in %s",
		stream, t, p.Base.ID.Short(), st.EventsApplied, st.Segments, st.KeysChanged, time.Since(start).Round(time.Millisecond))
	env.summaryf("reached: %s", reached(p, st.LastApplied, st.LastTime))
	return nil
}

func printPlan(ctx context.Context, env *environment, r *repo.Repository, p *index.Plan, asJSON bool) error {
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return err
	}
	var logBytes uint64
	for _, s := range segs {
		logBytes += s.Pack.Length
	}
	if asJSON {
		j := planJSON{Stream: p.Stream, Base: snapshotJSONOf(p.Base), From: p.From, Segments: []planSegmentJSON{},
			LogBytes: int64(logBytes), ReadBytes: p.Base.Size + int64(logBytes)}
		if p.Target.ByPos {
			j.AtPosition = &p.Target.Position
		} else {
			j.At = &p.Target.Time
		}
		for _, k := range p.Segments {
			j.Segments = append(j.Segments, planSegmentJSON{ID: k.ID.String(), First: k.First, Last: k.Last,
				FirstTime: time.Unix(0, k.FirstTime).UTC(), LastTime: time.Unix(0, k.LastTime).UTC()})
		}
		return writeJSON(env, j)
	}
	out := env.stdout
	fmt.Fprintf(out, "restore %s at %s\n", p.Stream, p.Target)
	pos := "none"
	if p.Base.Position != nil {
		pos = strconv.FormatUint(*p.Base.Position, 10)
	}
	fmt.Fprintf(out, "base snapshot %s at %s (position %s): %s export, %s stored\n", p.Base.ID.Short(), index.FormatTime(p.Base.Time), pos, source.HumanBytes(p.Base.Size), source.HumanBytes(p.Base.StoredBytes))
	fmt.Fprintf(out, "log segments: %d, %s sealed; events from position %d on, to %s\n", len(segs), source.HumanBytes(int64(logBytes)), p.From, p.Target)
	for _, k := range p.Segments {
		fmt.Fprintf(out, "  %d-%d  %s .. %s  %s\n", k.First, k.Last, index.FormatTime(time.Unix(0, k.FirstTime)), index.FormatTime(time.Unix(0, k.LastTime)), k.ID.Short())
	}
	fmt.Fprintf(out, "bytes to read: %s (snapshot blobs %s + segments %s, before parity)\n", source.HumanBytes(p.Base.Size+int64(logBytes)), source.HumanBytes(p.Base.Size), source.HumanBytes(int64(logBytes)))
	return nil
}

func cmdCoverage(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	asJSON := jsonFlag(fs, `print one JSON object: {"stream","windows":[{"from","to","from_position","to_position","seconds"}],"gaps","time_uncertain","newest","lag_seconds"}, each instant as {"rfc3339","unix","unix_ns"}`)
	return func(ctx context.Context, args []string) error {
		if err := checkStream(*stream); err != nil {
			return err
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		var cov *wire.Coverage
		if c := remoteOf(r); c != nil {
			if cov, err = c.Coverage(ctx, *stream); err != nil {
				return err
			}
		} else {
			cat, err := index.LoadCatalog(ctx, r)
			if cat == nil {
				return err
			}
			if err != nil {
				fmt.Fprintf(env.stderr, "warning: %v\n", err)
			}
			// Names alone show twins as one segment; their manifests say
			// whether they are two writers' (FORMAT.md §15, "Twins").
			if l := cat.Logs[*stream]; l != nil {
				if cat.Logs[*stream], err = engine.DecideTwins(ctx, r, l); err != nil {
					return err
				}
			}
			j := wire.CoverageOf(cat.Coverage(*stream), time.Now())
			cov = &j
		}
		// Nothing restorable is exit 7 (after the output, which still shows
		// any log there is): a script must not read an empty table as success.
		var none error
		switch {
		case len(cov.Windows) == 0 && cov.Newest == nil && len(cov.Gaps) == 0:
			none = fmt.Errorf("stream %q: the repository holds no snapshot or log of it; 'strata snapshots' lists the streams: %w", *stream, index.ErrNoSnapshot)
		case len(cov.Windows) == 0:
			none = fmt.Errorf("stream %q: nothing restorable: it has log but no snapshot to apply it to: %w", *stream, index.ErrNotRestorable)
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(cov); err != nil {
				return err
			}
			return none
		}
		if none != nil && cov.Newest == nil && len(cov.Gaps) == 0 {
			return none
		}
		if len(cov.Windows) == 0 {
			fmt.Fprintf(env.stdout, "%s: nothing restorable (no snapshot)\n", *stream)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESTORABLE FROM\tTO\tPOSITIONS")
		for _, w := range cov.Windows {
			fmt.Fprintf(tw, "%s\t%s\t%d-%d\n", w.From.RFC3339, w.To.RFC3339, w.FromPos, w.ToPos)
		}
		tw.Flush()
		for _, g := range cov.Gaps {
			fmt.Fprintf(env.stdout, "GAP: %s\n", index.Gap{FromPos: g.FromPos, ToPos: g.ToPos, After: g.After.Time(), Before: g.Before.Time()})
		}
		for _, u := range cov.Uncertain {
			fmt.Fprintf(env.stdout, "TIME-UNCERTAIN: %s; restore these by --at-position %d..%d\n",
				index.Uncertain{FromPos: u.FromPos, ToPos: u.ToPos, After: u.After.Time(), Before: u.Before.Time()}, u.FromPos-1, u.ToPos)
		}
		for _, c := range cov.Conflicts {
			fmt.Fprintf(env.stdout, "CONFLICT: %s\n", printable(c))
		}
		if cov.Newest != nil {
			fmt.Fprintf(env.stdout, "newest: %s (lag %s)\n", cov.Newest.RFC3339, time.Duration(*cov.LagSecs*float64(time.Second)).Round(time.Second))
		}
		return none
	}
}

// keyFieldOK checks a --key-field value.
func keyFieldOK(f string) error {
	if f == "" || strings.ContainsAny(f, "\"\\") || len(f) > 256 {
		return usagef("--key-field %q: want a plain field name", f)
	}
	return nil
}

// reached says what state a point-in-time restore wrote: its base's plus
// every event through a position, and that position's time.
func reached(p *index.Plan, lastPos uint64, lastTime int64) string {
	if lastPos == 0 {
		pos := "no position"
		if p.Base.Position != nil {
			pos = "position " + strconv.FormatUint(*p.Base.Position, 10)
		}
		return fmt.Sprintf("the state of snapshot %s (%s, %s), no later event at or before %s", p.Base.ID.Short(), index.FormatTime(p.Base.Time), pos, p.Target)
	}
	return fmt.Sprintf("position %d, whose event is at %s (target %s)", lastPos, index.FormatTime(time.Unix(0, lastTime)), p.Target)
}

// planJSON is restore --dry-run --json's object: the plan of a
// point-in-time restore.
type planJSON struct {
	Stream     string            `json:"stream"`
	At         *time.Time        `json:"at,omitempty"`
	AtPosition *uint64           `json:"at_position,omitempty"`
	Base       snapshotJSON      `json:"base"`
	From       uint64            `json:"from_position"`
	Segments   []planSegmentJSON `json:"segments"`
	LogBytes   int64             `json:"log_bytes"`
	ReadBytes  int64             `json:"read_bytes"`
}

type planSegmentJSON struct {
	ID        string    `json:"id"`
	First     uint64    `json:"first"`
	Last      uint64    `json:"last"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
}
