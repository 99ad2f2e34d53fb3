package engine

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// resolveOverlaps repairs a log whose segments overlap, which two
// captures of one stream left before streams had leases (FORMAT.md §15,
// "Overlaps from older versions"). Every segment chains to the one its
// writer stored before it (prev), so each segment ends a chain; the chain
// kept is the one reaching the highest position whose segments all load
// and read back (pack, authentication, positions), ties going to the
// chain whose head sorts first by name. Every other segment that overlaps
// the kept chain is removed: a restore then reads the kept chain alone,
// which is what one writer would have left. Each removal is reported with
// whether the removed events equal the kept ones at the same positions.
// loaded holds l.Segments' manifests (nil where one did not load). It
// returns the IDs removed; err is only for failures of the store.
func resolveOverlaps(ctx context.Context, r *repo.Repository, l *index.Log, loaded []*repo.Segment, rep *CheckReport) (map[repo.ID]bool, error) {
	byID := make(map[repo.ID]int, len(l.Segments))
	for i, k := range l.Segments {
		byID[k.ID] = i
	}
	// A prev may name the manifest a re-encryption replaced (FORMAT.md
	// §4.1): the replacement continues that chain.
	for i, s := range loaded {
		if s != nil && s.Replaces != nil {
			if _, ok := byID[*s.Replaces]; !ok {
				byID[*s.Replaces] = i
			}
		}
	}
	chain := func(head int) []int {
		var c []int
		seen := map[int]bool{}
		for i := head; i >= 0 && !seen[i] && loaded[i] != nil; {
			seen[i] = true
			c = append(c, i)
			p := loaded[i].Prev
			if p == nil {
				break
			}
			j, ok := byID[*p]
			if !ok {
				break
			}
			i = j
		}
		slices.Reverse(c)
		return c
	}
	heads := make([]int, 0, len(l.Segments))
	for i := range l.Segments {
		if loaded[i] != nil {
			heads = append(heads, i)
		}
	}
	slices.SortStableFunc(heads, func(a, b int) int {
		if ka, kb := l.Segments[a], l.Segments[b]; ka.Last != kb.Last {
			return -cmp.Compare(ka.Last, kb.Last)
		}
		return strings.Compare(l.Segments[a].Name(), l.Segments[b].Name())
	})
	var keep []int
	for _, h := range heads {
		c := chain(h)
		if err := readsBack(ctx, r, l, loaded, c); err != nil {
			if !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrNotFound) {
				return nil, err
			}
			continue
		}
		keep = c
		break
	}
	if keep == nil {
		rep.problem("log %s: overlapping segments, and no chain of segments reads back whole: not repaired (%s)", l.Stream, strings.Join(l.Conflicts, "; "))
		return nil, nil
	}
	kept := map[int]bool{}
	for _, i := range keep {
		kept[i] = true
	}
	overlapsKept := func(k repo.SegmentKey) bool {
		for _, i := range keep {
			if kk := l.Segments[i]; kk.First <= k.Last && k.First <= kk.Last {
				return true
			}
		}
		return false
	}
	head := l.Segments[keep[len(keep)-1]]
	removed := map[repo.ID]bool{}
	for i, k := range l.Segments {
		if kept[i] || !overlapsKept(k) {
			continue
		}
		same, lossless := "its manifest does not load", false
		if loaded[i] != nil {
			same, lossless = compareWithKept(ctx, r, l, loaded, keep, k, loaded[i])
		}
		if !lossless {
			rep.problem("log %s: %s overlaps the chain that restores (through %s), but %s: not removed", l.Stream, segLabel(k), segLabel(head), same)
			continue
		}
		if err := r.Store().Delete(ctx, k.Name()); err != nil {
			if errors.Is(err, repo.ErrRetained) {
				rep.problem("log %s: %s overlaps the chain that restores, and is under retention: it cannot be removed before its retention ends (%s)", l.Stream, segLabel(k), same)
				continue
			}
			return nil, err
		}
		removed[k.ID] = true
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("log %s: removed %s, a second writer's segment overlapping the chain kept (through %s); %s; its pack is left for prune",
			l.Stream, segLabel(k), segLabel(head), same))
	}
	return removed, nil
}

// readsBack reads every segment of chain c, checking its events.
func readsBack(ctx context.Context, r *repo.Repository, l *index.Log, loaded []*repo.Segment, c []int) error {
	for _, i := range c {
		if err := ReadSegment(ctx, r, l.Segments[i], loaded[i], func(*repo.Event) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// compareWithKept says whether a removed segment's events equal the kept
// chain's at the same positions.
// lossless is false when removing it would lose positions the kept chain
// lacks, or its events cannot be read to tell.
func compareWithKept(ctx context.Context, r *repo.Repository, l *index.Log, loaded []*repo.Segment, keep []int, k repo.SegmentKey, s *repo.Segment) (msg string, lossless bool) {
	type ev struct {
		t        int64
		op       repo.EventOp
		key, val []byte
	}
	keptEvents := map[uint64]ev{}
	for _, i := range keep {
		kk := l.Segments[i]
		if kk.Last < k.First || kk.First > k.Last {
			continue
		}
		ReadSegment(ctx, r, kk, loaded[i], func(e *repo.Event) error {
			if e.Seq >= k.First && e.Seq <= k.Last {
				keptEvents[e.Seq] = ev{e.Time, e.Op, bytes.Clone(e.Key), bytes.Clone(e.Value)}
			}
			return nil
		})
	}
	var differ uint64
	var only int
	err := ReadSegment(ctx, r, k, s, func(e *repo.Event) error {
		w, ok := keptEvents[e.Seq]
		switch {
		case !ok:
			only++
		case differ == 0 && (w.t != e.Time || w.op != e.Op || !bytes.Equal(w.key, e.Key) || !bytes.Equal(w.val, e.Value)):
			differ = e.Seq
		}
		return nil
	})
	switch {
	case err != nil:
		return fmt.Sprintf("its events do not read back (%v)", err), false
	case only > 0:
		return fmt.Sprintf("it holds %d positions the kept chain lacks", only), false
	case differ != 0:
		return fmt.Sprintf("its events DIFFER from the kept ones from position %d: restores now give the kept chain's", differ), true
	}
	return "its events equal the kept ones", true
}
