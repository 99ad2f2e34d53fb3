package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ForgetPolicy says which snapshots of a stream to keep. A snapshot is kept
// when any rule keeps it. The zero value keeps nothing and is refused.
type ForgetPolicy struct {
	// KeepLast keeps the n newest snapshots.
	KeepLast int
	// KeepHourly, KeepDaily, KeepWeekly and KeepMonthly keep the newest
	// snapshot in each of the n newest hours, days, ISO weeks and months
	// (of snapshot Time, in UTC) that have one.
	KeepHourly, KeepDaily, KeepWeekly, KeepMonthly int
	// KeepWithinPITR keeps every instant in [now-d, now] restorable: every
	// snapshot with Time ≥ now-d, the base that restores the window's start
	// (the newest snapshot with Time ≤ now-d, and the one a restore plan at
	// now-d uses if that is another), and through the segment rule of
	// Forget the log they need.
	KeepWithinPITR time.Duration
}

// ErrEmptyPolicy is returned by Forget for a policy that keeps nothing:
// forgetting every snapshot of a stream is never what a policy means.
var ErrEmptyPolicy = errors.New("forget: the policy keeps nothing (set at least one keep rule)")

func (p ForgetPolicy) validate() error {
	for _, v := range []struct {
		name string
		n    int
	}{{"last", p.KeepLast}, {"hourly", p.KeepHourly}, {"daily", p.KeepDaily}, {"weekly", p.KeepWeekly}, {"monthly", p.KeepMonthly}} {
		if v.n < 0 {
			return fmt.Errorf("forget: keep %s %d: must not be negative", v.name, v.n)
		}
	}
	if p.KeepWithinPITR < 0 {
		return fmt.Errorf("forget: keep within PITR %v: must not be negative", p.KeepWithinPITR)
	}
	if p == (ForgetPolicy{}) {
		return ErrEmptyPolicy
	}
	return nil
}

// ForgetResult is what Forget decided and did.
type ForgetResult struct {
	// Keep and Remove partition the stream's snapshots, oldest first.
	Keep, Remove []index.SnapshotRef
	// RemoveSegments are the log segments no kept snapshot needs: always a
	// prefix of the log by position, in ascending order.
	RemoveSegments []repo.SegmentKey
	// Reasons says, for each kept snapshot, which rules keep it.
	Reasons map[repo.ID][]string
	// Deferred names objects Forget would remove but the store refused to
	// delete because they are under retention (repo.ErrRetained), and the
	// log segments after a retained one, which are left so that the log
	// never has a hole. A later Forget removes them.
	Deferred []string
}

// ForgetOptions describe one Forget. Dry-run is taken as Prune takes it:
// a field of the options.
type ForgetOptions struct {
	Stream string
	Policy ForgetPolicy
	// Now places the PITR window; it must come from a trusted clock (see
	// Forget). Required.
	Now time.Time
	// DryRun decides everything and deletes nothing; the store may be nil.
	DryRun bool
}

// Forget applies a retention policy to one stream: it decides which
// snapshots and log segments cat lists are kept and, unless o.DryRun, deletes
// the manifests of the others, snapshots first, then segments in ascending
// position order. Only manifests are deleted; Prune removes the data no
// manifest references any more. st is not used with o.DryRun.
//
// A log segment is removed only when its Last position is at or below P,
// the smallest Position of the kept snapshots that have one: every kept
// snapshot keeps the log after it. When no kept snapshot has a Position no
// segment is removed (a log whose first snapshot is not yet taken must
// survive). The removed segments are a prefix of the log, deleted in order,
// so an interrupted Forget leaves a shorter prefix removed, never a hole in
// the chain; each Delete is atomic, so any crash leaves a consistent
// repository, and running Forget again finishes the work.
//
// now is used only to place the PITR window, [now-KeepWithinPITR, now]. It
// must come from a trusted clock: a clock running ahead forgets snapshots
// the window still needs. (Snapshot times are the writers' consistent
// points; the bucket rules compare them with each other, not with now.)
//
// Deletes the store refuses with repo.ErrRetained are listed in Deferred
// and are not errors. Forget also verifies, before deleting anything, that
// every instant of the PITR window that was restorable stays restorable by
// the catalog's own plan rules, and refuses otherwise.
func Forget(ctx context.Context, st repo.Store, cat *index.Catalog, o ForgetOptions) (*ForgetResult, error) {
	stream, p, now, dryRun := o.Stream, o.Policy, o.Now, o.DryRun
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := repo.ValidStream(stream); err != nil {
		return nil, fmt.Errorf("forget: %w", err)
	}
	if now.IsZero() {
		return nil, errors.New("forget: no current time given")
	}
	if cat == nil || st == nil && !dryRun {
		return nil, errors.New("forget: no catalog or no repository")
	}
	res := &ForgetResult{Reasons: map[repo.ID][]string{}}
	snaps := cat.Stream(stream) // oldest first
	keep := func(s index.SnapshotRef, why string) {
		res.Reasons[s.ID] = append(res.Reasons[s.ID], why)
	}

	if p.KeepLast > 0 {
		for i := len(snaps) - 1; i >= 0 && i >= len(snaps)-p.KeepLast; i-- {
			keep(snaps[i], "last")
		}
	}
	for _, b := range []struct {
		name string
		n    int
		key  func(time.Time) string
	}{
		{"hourly", p.KeepHourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
	} {
		// Newest first: the first snapshot seen in a bucket is its newest.
		last, left := "", b.n
		for i := len(snaps) - 1; i >= 0 && left > 0; i-- {
			k := b.key(snaps[i].Time.UTC())
			if k == last {
				continue
			}
			keep(snaps[i], fmt.Sprintf("%s %s", b.name, k))
			last, left = k, left-1
		}
	}
	var cutoff time.Time
	if p.KeepWithinPITR > 0 {
		cutoff = now.Add(-p.KeepWithinPITR)
		base := -1 // the newest snapshot at or before the cutoff (snaps are by Time)
		for i, s := range snaps {
			if !s.Time.Before(cutoff) {
				keep(s, "within the PITR window")
			}
			if !s.Time.After(cutoff) {
				base = i
			}
		}
		if base >= 0 {
			keep(snaps[base], "base of the PITR window")
		}
		// A plan may use an older base when the newest one cannot take the
		// log (it records no position, or the log after it has a gap).
		if pl, err := cat.Plan(stream, index.Target{Time: cutoff}); err == nil && (base < 0 || pl.Base.ID != snaps[base].ID) {
			keep(pl.Base, "restores the start of the PITR window")
		}
	}
	for _, s := range snaps {
		if _, ok := res.Reasons[s.ID]; ok {
			res.Keep = append(res.Keep, s)
		} else {
			res.Remove = append(res.Remove, s)
		}
	}

	log := cat.Log(stream)
	if bound, ok := smallestPosition(res.Keep); ok {
		for _, k := range log.Segments {
			if k.Last > bound {
				break // the removed segments stay a prefix
			}
			res.RemoveSegments = append(res.RemoveSegments, k)
		}
	}

	if p.KeepWithinPITR > 0 {
		if err := checkWindowKept(cat, stream, res, cutoff, now); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return res, nil
	}

	for _, s := range res.Remove {
		name := repo.SnapshotName(s.ID)
		if err := st.Delete(ctx, name); errors.Is(err, repo.ErrRetained) {
			res.Deferred = append(res.Deferred, name)
			continue
		} else if err != nil {
			return res, fmt.Errorf("forget: delete snapshot %s: %w", s.ID.Short(), err)
		}
		// The label outlives its snapshot only if this delete fails; readers
		// ignore a label without a snapshot.
		if err := st.Delete(ctx, repo.LabelName(s.ID)); err != nil && !errors.Is(err, repo.ErrRetained) {
			return res, fmt.Errorf("forget: delete the label of snapshot %s: %w", s.ID.Short(), err)
		}
	}
	for i, k := range res.RemoveSegments {
		name := k.Name()
		err := st.Delete(ctx, name)
		if errors.Is(err, repo.ErrRetained) {
			// Deleting later segments would open a hole in the log behind
			// this one; leave them for a later Forget.
			for _, rest := range res.RemoveSegments[i:] {
				res.Deferred = append(res.Deferred, rest.Name())
			}
			break
		}
		if err != nil {
			return res, fmt.Errorf("forget: delete log segment %d-%d of %s: %w", k.First, k.Last, k.Stream, err)
		}
	}
	return res, nil
}

// minPosition returns the smallest Position among snaps that have one.
func smallestPosition(snaps []index.SnapshotRef) (uint64, bool) {
	var bound uint64
	found := false
	for _, s := range snaps {
		if s.Position != nil && (!found || *s.Position < bound) {
			bound, found = *s.Position, true
		}
	}
	return bound, found
}

// checkWindowKept verifies that every instant of [from, to] that cat can
// restore, the catalog left by res can restore too. The rules above ensure
// it; this is the guard against a case they missed (overlapping segments,
// positions that disagree with times), checked before anything is deleted.
func checkWindowKept(cat *index.Catalog, stream string, res *ForgetResult, from, to time.Time) error {
	l := cat.Log(stream)
	removed := len(res.RemoveSegments)
	after := &index.Catalog{
		Snapshots: res.Keep,
		Logs:      map[string]*index.Log{stream: index.NewLog(stream, slices.Clone(l.Segments[removed:]))},
	}
	before, kept := cat.Coverage(stream).Windows, after.Coverage(stream).Windows
	for _, w := range before {
		a, b := laterOf(w.From, from), earlierOf(w.To, to)
		if a.After(b) {
			continue
		}
		if !slices.ContainsFunc(kept, func(k index.Window) bool { return !k.From.After(a) && !k.To.Before(b) }) {
			hint := ""
			if len(l.Conflicts) > 0 {
				hint = " (the log has overlapping segments: " + l.Conflicts[0] + ")"
			}
			return fmt.Errorf("forget: refusing: the policy would leave instants in [%s, %s] of the PITR window unrestorable%s", index.FormatTime(a), index.FormatTime(b), hint)
		}
	}
	return nil
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
