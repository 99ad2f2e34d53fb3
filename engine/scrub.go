package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

// ScrubOptions configure one scrub pass. The zero value scrubs a 30-day
// cycle, as if the passes ran daily.
type ScrubOptions struct {
	Cycle time.Duration // how long reading the whole repository once takes; default ops.DefaultCycle
	// FirstElapsed stands for the time since the previous pass when there
	// is none; default a day (a daily timer's interval).
	FirstElapsed time.Duration
	Now          func() time.Time // default time.Now
	Workers      int              // packs read in parallel; default 2
}

// ScrubResult is one pass: the record it stored and the check it ran.
type ScrubResult struct {
	Record *ops.ScrubRecord
	Report *CheckReport
}

// Scrub runs one keyed scrub pass: the structural check of the whole
// repository, every byte of the slice of packs that is due
// (ops.PlanPass, from the newest keyed scrub record), and the repair that
// `check --read-data --repair` does; then it stores the pass's
// ops.ScrubRecord. Damage is in the result (Report.Problems, and
// Record.Unrepaired for shards); the error is for a pass that could not
// run, and then no record is stored, so the next pass reads the same slice.
func Scrub(ctx context.Context, r *repo.Repository, o ScrubOptions) (*ScrubResult, error) {
	if o.Cycle <= 0 {
		o.Cycle = ops.DefaultCycle
	}
	if o.FirstElapsed <= 0 {
		o.FirstElapsed = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	last, err := ops.LatestScrub(ctx, r.Store(), true)
	if err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	now := o.Now()
	var pass ops.Pass
	planned := false
	rep, err := Check(ctx, r, CheckOptions{ReadData: true, Repair: true, Workers: o.Workers,
		Select: func(packs []repo.PackInfo) []repo.PackInfo {
			ids := make([]repo.ID, len(packs))
			for i, pi := range packs {
				ids[i] = pi.ID
			}
			pass = ops.PlanPass(last, ids, now, o.Cycle, o.FirstElapsed)
			planned = true
			return packs[pass.From:pass.To]
		}})
	if err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	if !planned {
		return nil, fmt.Errorf("scrub: the check read no data") // Check always selects with ReadData
	}
	rec := pass.Record(o.Now(), true)
	rec.PacksRead, rec.BytesRead = rep.PacksRead, rep.BytesRead
	rec.BadShards, rec.Repaired = rep.BadShards, rep.ShardsRepaired
	rec.Unrepaired = max(rep.BadShards-rep.ShardsRepaired, 0)
	if n := len(rep.Problems); n > 0 {
		rec.Error = fmt.Sprintf("%d problems remain after repair, first: %s", n, rep.Problems[0])
	}
	if err := ops.SaveScrub(ctx, r.Store(), rec); err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	return &ScrubResult{Record: rec, Report: rep}, nil
}

// MarkedPacks returns the packs the newest prune marks object lists (FORMAT.md
// §18, "Prune"), with when each was first found unreferenced: packs a prune
// is about to delete, or is deleting. A keyless scrub leaves them alone, so
// it does not rebuild shards a prune has just removed. Needs no key.
func MarkedPacks(ctx context.Context, st repo.Store) (map[repo.ID]time.Time, error) {
	m, err := loadMarks(ctx, st)
	if err != nil {
		return nil, err
	}
	return m.packs, nil
}
