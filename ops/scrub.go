package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/strata-backup/strata/repo"
)

// DefaultCycle is how long a scrub takes to read the whole repository once
// unless told otherwise.
const DefaultCycle = 30 * 24 * time.Hour

// MaxScrubRecord bounds the size of a scrub record read back: the records
// carry no content, and one past this is damage, not progress.
const MaxScrubRecord = 64 << 10

// DecodeScrub parses a scrub record. A record that is not JSON, is larger
// than MaxScrubRecord, or holds impossible values (no time, a negative
// cycle or count, a next pack that is not an ID) is an error wrapping
// repo.ErrCorrupt.
func DecodeScrub(name string, data []byte) (*ScrubRecord, error) {
	bad := func(why string) error { return &repo.CorruptError{Object: name, Offset: -1, Reason: why} }
	if len(data) > MaxScrubRecord {
		return nil, bad(fmt.Sprintf("%d bytes, more than a scrub record holds", len(data)))
	}
	var r ScrubRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, bad("not a scrub record: " + err.Error())
	}
	switch {
	case r.Time.IsZero():
		return nil, bad("scrub record without a time")
	case !(r.CycleSeconds >= 0) || math.IsInf(r.CycleSeconds, 0):
		return nil, bad("scrub record with a bad cycle length")
	case r.PacksRead < 0 || r.BytesRead < 0 || r.BadShards < 0 || r.Repaired < 0 || r.Unrepaired < 0:
		return nil, bad("scrub record with a negative count")
	}
	if r.Next != "" {
		if _, err := repo.ParseID(r.Next); err != nil {
			return nil, bad("scrub record whose next pack is not an ID")
		}
	}
	return &r, nil
}

// LatestScrub returns the newest scrub record written by a scrub of the
// given kind (keyed or the server's keyless one), or nil when there is
// none. Records that do not decode are skipped: the pass before them says
// where to go on, and a pass read twice does no harm. Only a failure of
// the store is an error.
func LatestScrub(ctx context.Context, st repo.Store, keyed bool) (*ScrubRecord, error) {
	var names []string
	if err := st.List(ctx, repo.ScrubPrefix, func(oi repo.ObjectInfo) error {
		if repo.KindOf(oi.Name) == repo.KindScrub && oi.Size <= MaxScrubRecord {
			names = append(names, oi.Name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list scrub records: %w", err)
	}
	for _, name := range slices.Backward(names) {
		b, err := st.Get(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, repo.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		r, err := DecodeScrub(name, b)
		if err == nil && r.Keyed == keyed {
			return r, nil
		}
	}
	return nil, nil
}

// SaveScrub stores a scrub record under its time (repo.ScrubName).
func SaveScrub(ctx context.Context, st repo.Store, r *ScrubRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode the scrub record: %w", err)
	}
	if err := st.Put(ctx, repo.ScrubName(r.Time.UnixNano()), b); err != nil {
		return fmt.Errorf("store the scrub record: %w", err)
	}
	return nil
}

// Pass is the slice of the repository's packs one scrub pass reads:
// ids[From:To] of the pack IDs in ascending order it was planned from.
type Pass struct {
	CycleStart time.Time
	Cycle      time.Duration
	From, To   int
	// Next is the first pack the following pass reads (hex ID), or "" when
	// this pass reads the last packs of its cycle.
	Next string
}

// PlanPass decides what a scrub pass at now reads, so that passes at any
// spacing read the whole repository once per cycle. ids are every pack of
// the repository, in ascending order; last is the newest record of the same
// kind of scrub, nil when there is none.
//
// The pass starts at the first pack at or after last.Next (a new cycle,
// from the first pack, when last is nil or its cycle was complete) and
// reads the share of all packs that the time since the last pass is of the
// cycle, rounded up, up to the end of the cycle: passes every day of a 30-
// day cycle read a thirtieth each, and a pass after a missed one reads
// both shares. firstElapsed stands for the time since the last pass when
// there is none (the interval the scrubs are meant to run at). Packs added
// during a cycle with IDs before the position are read in the next cycle;
// packs removed are skipped.
func PlanPass(last *ScrubRecord, ids []repo.ID, now time.Time, cycle, firstElapsed time.Duration) Pass {
	if cycle <= 0 {
		cycle = DefaultCycle
	}
	p := Pass{CycleStart: now, Cycle: cycle}
	elapsed := firstElapsed
	if last != nil {
		elapsed = now.Sub(last.Time)
		if last.Next != "" {
			p.CycleStart = last.CycleStart
			next, _ := repo.ParseID(last.Next) // DecodeScrub checked it
			p.From, _ = slices.BinarySearchFunc(ids, next, func(a, b repo.ID) int { return a.Compare(b) })
		}
	}
	share := 0
	if elapsed > 0 {
		// The epsilon keeps an exact share (a day of a 30-day cycle over
		// 30 packs) from rounding up to two packs.
		share = int(math.Ceil(float64(len(ids))*elapsed.Seconds()/cycle.Seconds() - 1e-9))
	}
	p.To = p.From + min(max(share, 0), len(ids)-p.From)
	if p.To < len(ids) {
		p.Next = ids[p.To].String()
	}
	return p
}

// Record returns the scrub record of the pass, ended at now, without its
// findings.
func (p Pass) Record(now time.Time, keyed bool) *ScrubRecord {
	return &ScrubRecord{Time: now.UTC(), Keyed: keyed, CycleStart: p.CycleStart.UTC(),
		CycleSeconds: p.Cycle.Seconds(), Next: p.Next}
}
