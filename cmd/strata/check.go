package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/multi"
	"github.com/strata-backup/strata/server/wire"
)

func cmdCheck(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--read-data | --read-data-subset N/M|P%] [--repair] [--json]")
	location := repoFlag(fs, env)
	readData := fs.Bool("read-data", false, "read every shard and verify every blob (reads the whole repository)")
	subsetSpec := fs.String("read-data-subset", "", "read only part of the packs, as --read-data does: `N/M` the Nth of M slices by pack ID, or P% a random P percent")
	repair := fs.Bool("repair", false, "rewrite damaged metadata from its copy, rebuild missing or corrupt shards from parity and re-index packs no index lists")
	asJSON := jsonFlag(fs, "print one JSON object: read_data, counts, notes, repaired, problems, ok")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		var sel func([]repo.PackInfo) []repo.PackInfo
		if *subsetSpec != "" {
			if *readData {
				return usagef("give --read-data or --read-data-subset, not both")
			}
			sub, err := engine.ParseSubset(*subsetSpec)
			if err != nil {
				return usageError{err.Error()}
			}
			sel = sub.Select
			*readData = true
		}
		r, err := openRepo(ctx, env, *location)
		if errors.Is(err, repo.ErrCorrupt) {
			// The repository cannot be opened because of damage (a key file or
			// the config): that is check's finding, not a failure to run.
			if *asJSON {
				return errors.Join(writeJSON(env, checkJSON{ReadData: *readData, findings: newFindings(nil, nil, []string{err.Error()})}), damageError{1})
			}
			fmt.Fprintf(env.stdout, "problem: %s\n", printable(err.Error()))
			return damageError{1}
		}
		if err != nil {
			return err
		}
		start := time.Now()
		var problems, resynced []string
		if m, ok := repo.StoreAs[*multi.Store](r.Store()); ok && *repair {
			// Metadata first: a store that came back empty gets its copies of
			// the config, keys, manifests and index files; shards follow from
			// parity below.
			rep, err := m.Resync(ctx)
			for _, st := range rep.Stores {
				for _, n := range st.Restored {
					resynced = append(resynced, fmt.Sprintf("copied %s to %s", n, st.Name))
				}
				for _, n := range st.Replaced {
					resynced = append(resynced, fmt.Sprintf("replaced the damaged copy of %s on %s", n, st.Name))
				}
			}
			if !*asJSON {
				for _, n := range resynced {
					fmt.Fprintf(env.stdout, "repaired: %s\n", n)
				}
			}
			for _, n := range rep.Unrecoverable {
				problems = append(problems, "no intact copy of "+n+" on any store")
			}
			if err != nil {
				return err
			}
		}
		work := &engine.Work{}
		stopProgress := func() {}
		if *readData && !*asJSON {
			stopProgress = startWork(env, "check: reading packs", work, true)
		}
		rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: *readData, Repair: *repair, Select: sel, Progress: work})
		stopProgress()
		if err != nil {
			return err
		}
		rep.Problems = append(rep.Problems, problems...)
		if *readData {
			// Reading every byte, check also replays each pair of consecutive
			// snapshots through the log between them (FORMAT.md §11.1).
			if err := checkReplayProofs(ctx, r, rep); err != nil {
				return err
			}
		}
		if t, ok := r.Store().(repo.Tampered); ok {
			for _, n := range t.TamperedObjects() {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: TAMPERED: its current version fails verification or was hidden; the intact older version was read instead", n))
			}
		}
		if c := remoteOf(r); c != nil {
			// The server keeps the newest result for its metrics and audit trail.
			if err := c.ReportCheck(ctx, wire.CheckReport{ReadData: *readData, Problems: rep.Problems, Repaired: len(rep.Repaired), Seconds: time.Since(start).Seconds()}); err != nil {
				fmt.Fprintf(env.stderr, "warning: the server did not take the check report: %v\n", err)
			}
		}
		var damage error
		if len(rep.Problems) > 0 {
			damage = damageError{len(rep.Problems)}
		}
		if *asJSON {
			return errors.Join(writeJSON(env, checkJSON{ReadData: *readData,
				Counts:   checkCounts{Snapshots: rep.Snapshots, Segments: rep.Segments, Indexes: rep.Indexes, Packs: rep.Packs, Shards: rep.Shards, Blobs: rep.Blobs, PacksRead: rep.PacksRead},
				findings: newFindings(rep.Notes, append(resynced, rep.Repaired...), rep.Problems),
			}), damage)
		}
		depth := "structure"
		switch {
		case sel != nil:
			depth = fmt.Sprintf("structure and every byte of %d packs (subset %s)", rep.PacksRead, *subsetSpec)
		case *readData:
			depth = "structure and every byte"
		}
		fmt.Fprintf(env.stdout, "checked %s: %d snapshots, %d log segments, %d index files, %d packs, %d blobs\n", depth, rep.Snapshots, rep.Segments, rep.Indexes, rep.Packs, rep.Blobs)
		printFindings(env, rep.Notes, rep.Repaired, rep.Problems)
		if damage != nil {
			return damage
		}
		fmt.Fprintln(env.stdout, "no problems found")
		return nil
	}
}

// checkReplayProofs adds replayProofs' findings to rep.
func checkReplayProofs(ctx context.Context, r *repo.Repository, rep *engine.CheckReport) error {
	cat, err := index.LoadStreamCatalog(ctx, r, "")
	if cat == nil {
		// The damage that stopped the catalog is engine.Check's to report.
		rep.Notes = append(rep.Notes, fmt.Sprintf("replay proofs not checked: %v", err))
		return nil
	}
	notes, problems, err := replayProofs(ctx, r, cat)
	rep.Notes = append(rep.Notes, notes...)
	rep.Problems = append(rep.Problems, problems...)
	return err
}

// checkJSON is check --json's one object (README, check).
type checkJSON struct {
	ReadData bool        `json:"read_data"`
	Counts   checkCounts `json:"counts"`
	findings
}

// findings are the lists check and scrub end with, in text and in JSON:
// harmless notes, what was repaired, and the damage that remains.
type findings struct {
	Notes    []string `json:"notes"`
	Repaired []string `json:"repaired"`
	Problems []string `json:"problems"`
	OK       bool     `json:"ok"` // no problems
}

// newFindings makes the JSON form: lists empty, never null.
func newFindings(notes, repaired, problems []string) findings {
	orEmpty := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return findings{Notes: orEmpty(notes), Repaired: orEmpty(repaired), Problems: orEmpty(problems), OK: len(problems) == 0}
}

// printFindings prints the text form, a line each.
func printFindings(env *environment, notes, repaired, problems []string) {
	for _, n := range notes {
		fmt.Fprintf(env.stdout, "note: %s\n", printable(n))
	}
	for _, s := range repaired {
		fmt.Fprintf(env.stdout, "repaired: %s\n", s)
	}
	for _, p := range problems {
		fmt.Fprintf(env.stdout, "problem: %s\n", printable(p))
	}
}

// checkCounts is what check looked at.
type checkCounts struct {
	Snapshots int `json:"snapshots"`
	Segments  int `json:"segments"`
	Indexes   int `json:"indexes"`
	Packs     int `json:"packs"`
	Shards    int `json:"shards"`
	Blobs     int `json:"blobs"`
	PacksRead int `json:"packs_read"` // packs whose every byte was read (--read-data, --read-data-subset)
}
