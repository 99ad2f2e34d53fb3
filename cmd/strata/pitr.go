package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
	"github.com/strata-backup/strata/source/ndjson"
)

func cmdLog(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "log", "--repo DIR --stream NAME (--stdin | --source URL) [--segment-bytes N] [--segment-interval D]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	stdin := fs.Bool("stdin", false, "read change events (NDJSON) from standard input (required)")
	segBytes := fs.Int("segment-bytes", 16<<20, "seal a segment when its events reach this many bytes")
	interval := fs.Duration("segment-interval", 10*time.Second, "seal a segment when its first event is this old: the most a crash can lose (RPO)")
	keyField := fs.String("key-field", ndjson.DefaultKeyField, "stdin: the document field that holds each document's key, as the stream's snapshots have it; a put's doc must hold its key there")
	source := fs.String("source", "", "capture a live database's changes instead: redis://[user@]HOST:PORT or etcd://HOST:PORT[,HOST:PORT...] (password from STRATA_SOURCE_PASSWORD)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkStream(*stream); err != nil {
		return err
	}
	switch {
	case *stdin == (*source != "") || fs.NArg() != 0:
		return usagef("give one of --stdin (NDJSON events on standard input) or --source URL")
	case *segBytes < 1<<10:
		return usagef("--segment-bytes must be at least 1024")
	case *interval <= 0:
		return usagef("--segment-interval must be positive")
	case keyFieldOK(*keyField) != nil:
		return keyFieldOK(*keyField)
	}
	if *source != "" {
		db, err := openDatabase(env, *source)
		if err != nil {
			return err
		}
		// Events are dated by their arrival here, not by a client's claim.
		r, _, err := openRepoToWrite(ctx, env, *location, *stream, time.Time{})
		if err != nil {
			return err
		}
		return db.capture(ctx, env, r, *stream, captureOptions{SegmentBytes: *segBytes, Interval: *interval})
	}
	r, admit, err := openRepoToWrite(ctx, env, *location, *stream, time.Time{})
	if err != nil {
		return err
	}
	// Segments already sealed must be stored even when a signal ends the
	// capture, so the writer's context outlives ctx.
	w, err := engine.OpenLog(context.WithoutCancel(ctx), r, engine.LogOptions{
		Stream: *stream, SegmentBytes: *segBytes, VerifyReplay: true,
		OnGap: func(from, to uint64) {
			fmt.Fprintf(env.stderr, "strata log: GAP in %s: positions %d-%d never arrived; recorded in the catalog, capture goes on\n", *stream, from, to)
		},
	})
	if err != nil {
		return err
	}
	if n := w.Next(); n > 0 {
		fmt.Fprintf(env.stderr, "strata log: %s continues at position %d; events before it are already stored and are skipped\n", *stream, n)
	}
	tick := time.NewTicker(min(*interval/4, time.Second))
	defer tick.Stop()
	readErr := make(chan error, 1)
	go func() { readErr <- readEvents(env.stdin, w, ndjson.CheckEvents(*keyField, admit)) }()
	var inErr error
loop:
	for {
		select {
		case inErr = <-readErr:
			break loop
		case <-ctx.Done():
			fmt.Fprintf(env.stderr, "strata log: %v: sealing what arrived and stopping\n", context.Cause(ctx))
			break loop
		case <-tick.C:
			if err := w.SealOlder(*interval); err != nil {
				inErr = err
				break loop
			}
		}
	}
	st, err := w.Close()
	fmt.Fprintf(env.stderr, "log %s: %d events stored in %d segments (%s sealed), %d already stored and skipped, %d gaps%s\n",
		*stream, st.Stored, st.Segments, humanBytes(st.StoredBytes), st.Skipped, st.Gaps, notStored(st))
	if err != nil {
		return err
	}
	return inErr
}

// readEvents parses NDJSON events from src and appends them to w. A bad line
// stops the capture with its line number; what came before it is sealed.
// admit, when set, refuses an event before it is appended (an event dated
// after the server's clock allows): the server would refuse the whole
// segment holding it, and with it the events before it.
func readEvents(src io.Reader, w *engine.LogWriter, admit func(*repo.Event) error) error {
	br := bufio.NewReaderSize(src, 1<<20)
	var long []byte
	for lineNo := 1; ; lineNo++ {
		b, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			long = append(long, b...)
			if len(long) > repo.MaxEventValue+repo.MaxEventKey+4096 {
				return fmt.Errorf("event line %d: longer than %d bytes", lineNo, len(long))
			}
			b, err = br.ReadSlice('\n')
		}
		if long != nil {
			b = append(long, b...)
			long = nil
		}
		if line := bytes.TrimSpace(b); len(line) > 0 {
			e, perr := ndjson.ParseEvent(line)
			if perr != nil {
				return fmt.Errorf("event line %d: %w", lineNo, perr)
			}
			if admit != nil {
				if err := admit(&e); err != nil {
					return fmt.Errorf("event line %d: %w", lineNo, err)
				}
			}
			if aerr := w.Append(&e); aerr != nil {
				if errors.Is(aerr, engine.ErrLogClosed) {
					return nil
				}
				return fmt.Errorf("event line %d: %w", lineNo, aerr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// restoreTarget parses --at or --at-position.
func restoreTarget(at, atPos string) (*index.Target, error) {
	switch {
	case at != "" && atPos != "":
		return nil, usagef("give --at or --at-position, not both")
	case at != "":
		t, err := parseTime(at)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return &index.Target{Time: t}, nil
	case atPos != "":
		p, err := strconv.ParseUint(atPos, 10, 64)
		if err != nil {
			return nil, usagef("--at-position %q: want a non-negative integer", atPos)
		}
		return &index.Target{Position: p, ByPos: true}, nil
	}
	return nil, nil
}

// restoreAt plans and runs a point-in-time restore.
func restoreAt(ctx context.Context, env *environment, r *repo.Repository, plan func() (*index.Plan, error), stream string, t index.Target, to string, dryRun bool) error {
	p, err := plan()
	if err != nil {
		return err
	}
	if dryRun {
		return printPlan(ctx, env, r, p)
	}
	start := time.Now()
	var st ndjson.RestoreStats
	var out int64
	run := func(w io.Writer) error {
		cw := &countWriter{w: w}
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
	reportRestore(ctx, env, r, stream, p.Base.ID.String(), t.String(), start, out, err)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "restored %s at %s: snapshot %s + %d events from %d segments, %d keys changed, in %s\n",
		stream, t, p.Base.ID.Short(), st.EventsApplied, st.Segments, st.KeysChanged, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(env.stderr, "reached: %s\n", reached(p, st.LastApplied, st.LastTime))
	return nil
}

func printPlan(ctx context.Context, env *environment, r *repo.Repository, p *index.Plan) error {
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return err
	}
	var logBytes uint64
	for _, s := range segs {
		logBytes += s.Pack.Length
	}
	out := env.stdout
	fmt.Fprintf(out, "restore %s at %s\n", p.Stream, p.Target)
	pos := "none"
	if p.Base.Position != nil {
		pos = strconv.FormatUint(*p.Base.Position, 10)
	}
	fmt.Fprintf(out, "base snapshot %s at %s (position %s): %s export, %s stored\n", p.Base.ID.Short(), index.FormatTime(p.Base.Time), pos, humanBytes(p.Base.Size), humanBytes(p.Base.StoredBytes))
	fmt.Fprintf(out, "log segments: %d, %s sealed; events from position %d on, to %s\n", len(segs), humanBytes(int64(logBytes)), p.From, p.Target)
	for _, k := range p.Segments {
		fmt.Fprintf(out, "  %d-%d  %s .. %s  %s\n", k.First, k.Last, index.FormatTime(time.Unix(0, k.FirstTime)), index.FormatTime(time.Unix(0, k.LastTime)), k.ID.Short())
	}
	fmt.Fprintf(out, "bytes to read: %s (snapshot blobs %s + segments %s, before parity)\n", humanBytes(p.Base.Size+int64(logBytes)), humanBytes(p.Base.Size), humanBytes(int64(logBytes)))
	return nil
}

func cmdCoverage(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "coverage", "--repo DIR --stream NAME [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
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
		j := wire.CoverageOf(cat.Coverage(*stream), time.Now())
		cov = &j
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cov)
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
	return nil
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

// notStored says how many events arrived but were not stored (a failure
// such as a full disk ended the capture), "" when none.
func notStored(st engine.LogStats) string {
	if n := st.Appended - st.Stored; n > 0 {
		return fmt.Sprintf("; %d events received after them are NOT stored", n)
	}
	return ""
}
