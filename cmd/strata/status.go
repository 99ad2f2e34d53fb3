package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

// cmdStatus grades every stream against the recovery objectives of a
// policy file (ops.Compute) and exits 0, 1 or 2 by the worst state, so
// cron and monitoring systems can act on it (README, "Recovery
// objectives").
func cmdStatus(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--policy FILE] [--json]")
	location := repoFlag(fs, env)
	policyFile := fs.String("policy", "", "recovery objectives (YAML): per stream glob, snapshot_age, rpo, drill_age and rto limits; none grades only hard facts")
	asJSON := jsonFlag(fs, "print the report as JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		var policy *ops.Policy
		if *policyFile != "" {
			p, err := ops.LoadPolicy(*policyFile)
			if err != nil {
				return usageError{err.Error()}
			}
			policy = p
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		in := ops.Input{Policy: policy, Now: time.Now()}
		if c := remoteOf(r); c != nil {
			err = remoteStatusInput(ctx, c, &in)
		} else {
			err = localStatusInput(ctx, r, &in)
		}
		if err != nil {
			return err
		}
		rep := ops.Compute(in)
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			printStatus(env, rep)
		}
		if rep.State != ops.OK {
			return statusError{rep}
		}
		return nil
	}
}

func printStatus(env *environment, rep *ops.Report) {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSTATE\tNEWEST SNAPSHOT\tRESTORABLE\tRPO\tGAPS\tLAST DRILL\tRTO")
	for _, s := range rep.Streams {
		newest, window, rpo, drill, rto := "-", "-", "-", "never", "-"
		if s.NewestSnapshotTime != nil {
			newest = fmt.Sprintf("%s (%s ago)", s.NewestSnapshotTime.Format(time.RFC3339), secondsText(*s.SnapshotAgeSeconds))
		}
		if n := len(s.Windows); n > 0 {
			window = s.Windows[n-1].From.Format(time.RFC3339) + " .. " + s.Windows[n-1].To.Format(time.RFC3339)
			rpo = secondsText(*s.RPOSeconds)
		}
		if d := s.LastDrill; d != nil {
			drill = d.Time.UTC().Format(time.RFC3339) + " passed"
			if !d.OK {
				drill = d.Time.UTC().Format(time.RFC3339) + " FAILED"
			}
		}
		if s.RTOSeconds != nil {
			rto = secondsText(*s.RTOSeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", printable(s.Stream), s.State, newest, window, rpo, len(s.Gaps), drill, rto)
	}
	tw.Flush()
	scrub := "none recorded"
	if sc := rep.LastScrub; sc != nil {
		scrub = fmt.Sprintf("%s (%s ago): %d packs read, %d bad shards, %d repaired, %d unrepaired",
			sc.Time.UTC().Format(time.RFC3339), secondsText(*rep.ScrubAgeSeconds), sc.PacksRead, sc.BadShards, sc.Repaired, sc.Unrepaired)
	}
	fmt.Fprintf(env.stdout, "last scrub: %s\n", scrub)
	for _, s := range rep.Streams {
		for _, f := range s.Findings {
			fmt.Fprintf(env.stdout, "%s %s: %s: %s\n", strings.ToUpper(f.State.String()), printable(s.Stream), f.Check, printable(f.Message))
		}
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(env.stdout, "%s repository: %s: %s\n", strings.ToUpper(f.State.String()), f.Check, printable(f.Message))
	}
	fmt.Fprintf(env.stdout, "state: %s\n", rep.State)
}

func secondsText(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d >= time.Hour {
		return ops.FormatDuration(d.Round(time.Minute))
	}
	return ops.FormatDuration(d.Round(time.Second))
}

// statusError is a report that is not ok. Its exit code is the state
// itself: 1 for a warning, 2 for a failure (README, "Exit codes").
type statusError struct{ rep *ops.Report }

func (e statusError) Error() string {
	var worst []string
	for _, s := range e.rep.Streams {
		if s.State == e.rep.State {
			worst = append(worst, s.Stream)
		}
	}
	if len(worst) == 0 {
		return fmt.Sprintf("%s: the repository (see its findings)", e.rep.State)
	}
	return fmt.Sprintf("%s: %d stream(s): %s", e.rep.State, len(worst), printable(strings.Join(worst, ", ")))
}

// ExitCode is the state: 1 warning, 2 failure.
func (e statusError) ExitCode() int { return int(e.rep.State) }

// localStatusInput reads the catalog and the records from the storage.
func localStatusInput(ctx context.Context, r *repo.Repository, in *ops.Input) error {
	cat, err := index.LoadCatalog(ctx, r)
	if cat == nil {
		return err
	}
	if err != nil {
		// Unreadable manifests may hide a stream's newest snapshot: say so
		// in the report, which then cannot be ok.
		in.Problems = append(in.Problems, fmt.Sprintf("catalog: %v", err))
	}
	recs, err := ops.NewRecordReader().Read(ctx, r.Store())
	if err != nil {
		return err
	}
	in.Catalog, in.Drills, in.Scrub = cat, recs.Drills, recs.Scrub
	in.Problems = append(in.Problems, recs.Problems...)
	return nil
}

// remoteStatusInput asks an index server, with a read token: the streams,
// the snapshots by their labels, each stream's coverage, and the records.
// No manifest is opened, so a read token is enough.
func remoteStatusInput(ctx context.Context, c *client.Client, in *ops.Input) error {
	streams, err := c.Streams(ctx)
	if err != nil {
		return err
	}
	snaps, err := c.Snapshots(ctx, "")
	if err != nil {
		return err
	}
	cat := &index.Catalog{Logs: map[string]*index.Log{}, Untrusted: true}
	for _, s := range snaps {
		id, err := repo.ParseID(s.ID)
		if err != nil || s.Label == nil {
			in.Problems = append(in.Problems, fmt.Sprintf("snapshot %q: the server sent no label", printable(s.ID)))
			continue
		}
		cat.Snapshots = append(cat.Snapshots, index.SnapshotRef{ID: id, Snapshot: repo.SnapshotOfLabel(s.Label)})
	}
	index.SortSnapshots(cat.Snapshots)
	in.Segments = map[string]int{}
	covs := map[string]index.Coverage{}
	for _, s := range streams {
		cat.Logs[s.Name] = index.NewLog(s.Name, nil)
		in.Segments[s.Name] = s.Segments
		w, err := c.Coverage(ctx, s.Name)
		if err != nil {
			return err
		}
		cov := index.Coverage{Stream: s.Name, Conflicts: w.Conflicts}
		for _, x := range w.Windows {
			cov.Windows = append(cov.Windows, index.Window{From: x.From.Time(), To: x.To.Time(), FromPos: x.FromPos, ToPos: x.ToPos})
		}
		for _, g := range w.Gaps {
			cov.Gaps = append(cov.Gaps, index.Gap{FromPos: g.FromPos, ToPos: g.ToPos, After: g.After.Time(), Before: g.Before.Time()})
		}
		covs[s.Name] = cov
	}
	recs, err := c.Records(ctx)
	if err != nil {
		return err
	}
	in.Catalog, in.Drills, in.Scrub = cat, recs.Drills, recs.Scrub
	in.Coverage = func(stream string) index.Coverage {
		if cov, ok := covs[stream]; ok {
			return cov
		}
		return index.Coverage{Stream: stream}
	}
	in.Problems = append(in.Problems, recs.Problems...)
	return nil
}
