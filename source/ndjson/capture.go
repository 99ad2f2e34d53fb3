package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// CaptureOptions describe an NDJSON capture.
type CaptureOptions struct {
	Stream       string
	SegmentBytes int           // seal a segment when its events reach this many bytes; 0 means engine's default
	Interval     time.Duration // seal a segment when its first event is this old; must be positive
	// Logf receives notes (gaps, where the capture continues, why it
	// stops); nil discards them.
	Logf func(format string, args ...any)
	// Admit, when set, refuses an event before it is appended (one dated
	// after an index server's clock allows, which would make the server
	// refuse the whole segment holding it, and the events before it).
	Admit func(*repo.Event) error
	// KeyField is the document field a put's doc must hold its key in
	// (CheckEvent); "" means DefaultKeyField.
	KeyField string
	// Lease is the stream's lease the capture holds (engine.AcquireLease);
	// nil for none. Its segments carry its epoch, and it stops writing
	// once the lease is lost.
	Lease *engine.Lease
}

// Capture reads change events (ParseEvent), one a line, from in and
// appends them to the stream's log until in ends, a line is bad, or ctx is
// done; what arrived is sealed in every case. A jump in positions is a gap,
// recorded and reported, and the capture goes on; events the log already
// holds are skipped. It returns the log writer's counts.
func Capture(ctx context.Context, r *repo.Repository, in io.Reader, o CaptureOptions) (engine.LogStats, error) {
	if o.Interval <= 0 {
		return engine.LogStats{}, fmt.Errorf("ndjson capture: interval %v: must be positive", o.Interval)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	// Segments already sealed must be stored even when a signal ends the
	// capture, so the writer's context outlives ctx.
	w, err := engine.OpenLog(context.WithoutCancel(ctx), r, engine.LogOptions{
		Lease: o.Lease, Stream: o.Stream, SegmentBytes: o.SegmentBytes,
		// Events carry their own times and content: one re-sent with
		// anything changed is refused, never skipped as already stored.
		VerifyReplay: true,
		OnGap: func(from, to uint64) {
			o.Logf("GAP in %s: positions %d-%d never arrived; recorded in the catalog, capture goes on", o.Stream, from, to)
		},
	})
	if err != nil {
		return engine.LogStats{}, err
	}
	if n := w.Next(); n > 0 {
		o.Logf("%s continues at position %d; events before it are already stored and are skipped", o.Stream, n)
	}
	tick := time.NewTicker(min(o.Interval/4, time.Second))
	defer tick.Stop()
	readErr := make(chan error, 1)
	field := o.KeyField
	if field == "" {
		field = DefaultKeyField
	}
	go func() { readErr <- readEvents(in, w, CheckEvents(field, o.Admit)) }()
	var inErr error
loop:
	for {
		select {
		case inErr = <-readErr:
			break loop
		case <-ctx.Done():
			o.Logf("%v: sealing what arrived and stopping", context.Cause(ctx))
			break loop
		case <-tick.C:
			if err := w.SealOlder(o.Interval); err != nil {
				inErr = err
				break loop
			}
		}
	}
	st, err := w.Close()
	if err != nil {
		return st, err
	}
	return st, inErr
}

// readEvents parses NDJSON events from src and appends them to w. A bad line
// stops the capture with its line number; what came before it is sealed.
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
			e, perr := ParseEvent(line)
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
