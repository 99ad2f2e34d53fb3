package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/strata-backup/strata/engine"
)

// progressEvery is how often a bar redraws: often enough to look alive,
// rarely enough to cost nothing.
const progressEvery = 150 * time.Millisecond

// startProgress draws a bar on stderr while a long command runs, only when
// stderr is a terminal and --quiet is not given: never into a pipe or a
// log file. With total > 0 (an export file's size, a snapshot's) it shows
// the percentage, the rate and the time left; otherwise the bytes and the
// rate. done reads the bytes so far; detail, when not nil, adds counters
// (chunks, new) to the description. The returned stop erases the bar, and
// MUST be called before the command's summary line.
func startProgress(env *environment, what string, total int64, done func() int64, detail func() string) (stop func()) {
	return drawProgress(env, what, func() int64 { return total }, done, detail, true)
}

// startWork is startProgress for an engine operation that reports its own
// total once it knows it (engine.Work): bytes for check's reads, items
// (snapshots and segments walked) for prune.
func startWork(env *environment, what string, w *engine.Work, bytes bool) (stop func()) {
	return drawProgress(env, what, w.Total.Load, w.Done.Load, nil, bytes)
}

// drawProgress is the bar of startProgress and startWork; total is read
// at every redraw and may become known (> 0) while the command runs.
func drawProgress(env *environment, what string, total, done func() int64, detail func() string, bytes bool) (stop func()) {
	if !env.stderrTTY || env.quiet {
		return func() {}
	}
	max := total()
	if max <= 0 {
		max = -1 // the library's unknown total: count and rate, no percentage
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(env.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(progressEvery),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionUseANSICodes(true),
		// The library's own spinner ticker (unknown totals) keeps drawing
		// after Clear until Finish; this function redraws on its own tick.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	quit := make(chan struct{})
	finished := make(chan struct{})
	update := func() {
		if detail != nil {
			bar.Describe(what + " " + detail())
		}
		if t := total(); t > 0 && t != max {
			max = t
			bar.ChangeMax64(t)
		}
		bar.Set64(done())
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				update()
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		bar.Clear()
	}
}

// summaryf prints a long command's one-line summary to stderr, unless
// --quiet.
func (env *environment) summaryf(format string, args ...any) {
	if env.quiet {
		return
	}
	fmt.Fprintf(env.stderr, format+"\n", args...)
}

// verbosef prints a detail line to stderr with --verbose only.
func (env *environment) verbosef(format string, args ...any) {
	if env.verbose {
		fmt.Fprintf(env.stderr, format+"\n", args...)
	}
}
