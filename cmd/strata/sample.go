package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"github.com/strata-backup/strata/index"

	"github.com/strata-backup/strata/internal/sample"
)

// cmdSample writes the project's example data set (package internal/sample):
// an export, a day's change events, or the state at an instant.
func cmdSample(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "[--docs N] [--seed S] [--start TIME] [--day D] [--changes | --at TIME | --position]")
	docs := fs.Int("docs", sample.DefaultDocs, "documents on day 0")
	seed := fs.Uint64("seed", sample.DefaultSeed, "data set seed: the same flags always give the same bytes")
	day := fs.Int("day", 0, "the day: its export (day 0 is the first), or with --changes its events (from 1)")
	changes := fs.Bool("changes", false, "print day --day's change events (log format) instead of its export")
	at := fs.String("at", "", "print the state at this instant instead: day 0 plus every event at or before it, sorted by key")
	start := fs.String("start", "", "instant of the day-0 export (default 2026-01-01T00:00:00Z)")
	position := fs.Bool("position", false, "print the log position day --day's export is consistent at (its events' count since day 0)")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		n := 0
		for _, b := range []bool{*changes, *at != "", *position} {
			if b {
				n++
			}
		}
		if n > 1 {
			return usagef("give at most one of --changes, --at and --position")
		}
		o := sample.Options{Docs: *docs, Seed: *seed}
		if *start != "" {
			t, err := index.ParseTime(*start)
			if err != nil {
				return usageError{err.Error()}
			}
			o.Start = t
		}
		g, err := sample.New(o)
		if errors.Is(err, sample.ErrOptions) || err == nil && *day < 0 {
			return usagef("%v", errOr(err, fmt.Errorf("--day %d: want 0 or more", *day)))
		}
		if err != nil {
			return err
		}
		bw := newBufferedWriter(env.stdout)
		switch {
		case *changes:
			if *day < 1 {
				return usagef("--changes prints the events of a day from 1 on (day 0 is the first export)")
			}
			err = g.Changes(bw, *day)
		case *at != "":
			t, perr := index.ParseTime(*at)
			if perr != nil {
				return usageError{perr.Error()}
			}
			if err = g.StateAt(bw, t); errors.Is(err, sample.ErrOptions) {
				return usageError{err.Error()}
			}
		case *position:
			_, err = fmt.Fprintln(bw, g.Position(*day))
		default:
			err = g.Export(bw, *day)
		}
		if err != nil {
			return err
		}
		return bw.Flush()
	}
}

func errOr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}
