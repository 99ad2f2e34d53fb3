package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/source"
)

// startLogProgress shows a capture's catch-up on a terminal ('strata
// log'): events taken, their rate, the position reached, and, for events
// read through in (countInput of --stdin), the bytes read, with a
// percentage and the time left when the input is a regular file of known
// size. in is nil for a --source capture, whose events the bar counts
// instead. It returns the context the capture must run with (its log
// writer counts into the bar) and stop, which erases the bar and, with
// --verbose, prints the rate; stop MUST be called before the summary.
func startLogProgress(ctx context.Context, env *environment, stream string, in *countingReader) (context.Context, func()) {
	lp := &engine.LogProgress{}
	ctx = engine.WithLogProgress(ctx, lp)
	start := time.Now()
	rate := func() float64 {
		if s := time.Since(start).Seconds(); s > 0 {
			return float64(lp.Events.Load()) / s
		}
		return 0
	}
	detail := func() string {
		return fmt.Sprintf("(%d events, %.0f events/s, position %d)", lp.Events.Load(), rate(), lp.Position.Load())
	}
	what := "log " + stream
	var stop func()
	if in == nil {
		stop = drawProgress(env, what, func() int64 { return 0 }, lp.Events.Load, detail, false)
	} else {
		stop = drawProgress(env, what, func() int64 { return in.total }, in.n.Load, detail, true)
	}
	return ctx, func() {
		stop()
		env.verbosef("log %s: took %d events (%s of keys and values) in %s, %.0f events/s, up to position %d",
			stream, lp.Events.Load(), source.HumanBytes(lp.Bytes.Load()), time.Since(start).Round(time.Millisecond), rate(), lp.Position.Load())
	}
}

// countInput wraps a capture's input (--stdin) so that a progress bar can
// show the bytes read, and learns its size when it is a regular file
// (what is left of it from where it stands).
func countInput(in io.Reader) *countingReader {
	cr := &countingReader{r: in}
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				cr.total = fi.Size() - off
			}
		}
	}
	return cr
}

// countingReader counts the bytes read through it, for a progress bar
// read from another goroutine.
type countingReader struct {
	r     io.Reader
	n     atomic.Int64
	total int64 // the input's size when known, else 0
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
