package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// resolveTwins keeps one segment of each run of twins in keys (adjacent
// keys whose names agree but for the ID, index.SameName), with its loaded
// manifest (segs, or errs where it did not load): the one that replaces
// each of the others, directly or through others of the run
// (Segment.Replaces). Every member holds the same events then, and the
// replacement is the one a completed re-encryption keeps. A run with no
// such member is two writers' segments over the same positions: refused,
// wrapping index.ErrNotRestorable, like any overlap. The manifests of the
// members replaced are not needed and may be damaged. A key without twins
// is kept when its manifest loaded; its error is returned otherwise. When
// there are no twins, keys and segs come back as given.
func resolveTwins(stream string, keys []repo.SegmentKey, segs []*repo.Segment, errs []error) ([]repo.SegmentKey, []*repo.Segment, error) {
	twins := false
	for i := range keys {
		if i > 0 && index.SameName(keys[i-1], keys[i]) {
			twins = true
		} else if errs[i] != nil && (i+1 == len(keys) || !index.SameName(keys[i], keys[i+1])) {
			return nil, nil, errs[i]
		}
	}
	if !twins {
		return keys, segs, nil
	}
	outK := make([]repo.SegmentKey, 0, len(keys))
	outS := make([]*repo.Segment, 0, len(keys))
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && index.SameName(keys[i], keys[j]) {
			j++
		}
		h, err := replacementOf(stream, keys[i:j], segs[i:j], errs[i:j])
		if err != nil {
			return nil, nil, err
		}
		outK, outS = append(outK, keys[i+h]), append(outS, segs[i+h])
		i = j
	}
	return outK, outS, nil
}

// replacementOf returns the index of the member of a run of twins that
// replaces every other, following Replaces through members that loaded.
func replacementOf(stream string, keys []repo.SegmentKey, segs []*repo.Segment, errs []error) (int, error) {
	if len(keys) == 1 {
		return 0, errs[0]
	}
	at := make(map[repo.ID]int, len(keys))
	for i, k := range keys {
		at[k.ID] = i
	}
	var firstErr error
	for h, s := range segs {
		if s == nil {
			firstErr = cmp.Or(firstErr, errs[h])
			continue
		}
		reached := map[int]bool{h: true}
		for c := s; c != nil && c.Replaces != nil; {
			i, ok := at[*c.Replaces]
			if !ok || reached[i] {
				break
			}
			reached[i] = true
			c = segs[i]
		}
		if len(reached) == len(keys) {
			return h, nil
		}
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name()
	}
	if firstErr != nil {
		// A member that does not load may be the replacement: damage, which
		// check --repair heals from the manifest's copy, not an overlap.
		return 0, firstErr
	}
	return 0, fmt.Errorf("%w: the log of %q has overlapping segments (two writers?): %s hold the same positions and none replaces the others", index.ErrNotRestorable, stream, strings.Join(names, ", "))
}

// DecideTwins decides l's twin groups (index.Log.Twins) on their
// manifests, as a restore does: it returns l when every group is a
// re-encryption's replacement (or has a member that does not load, which
// check reports and a restore refuses as damage), and l.Unfolded() when
// some group is two writers' segments, so that coverage made from it
// shows the overlap, its conflict and the windows it ends, as restores
// refuse it. err is for the store only.
func DecideTwins(ctx context.Context, r *repo.Repository, l *index.Log) (*index.Log, error) {
	if l == nil || len(l.Twins) == 0 {
		return l, nil
	}
	for _, k := range l.Segments {
		g := l.Group(k)
		if g == nil {
			continue
		}
		segs := make([]*repo.Segment, len(g))
		errs := make([]error, len(g))
		for i, m := range g {
			segs[i], errs[i] = r.LoadSegment(ctx, m)
			if errs[i] != nil && !errors.Is(errs[i], repo.ErrNotFound) && !errors.Is(errs[i], repo.ErrCorrupt) && !errors.Is(errs[i], repo.ErrUnsupportedVersion) {
				return nil, errs[i]
			}
		}
		if _, err := replacementOf(l.Stream, g, segs, errs); errors.Is(err, index.ErrNotRestorable) {
			return l.Unfolded(), nil
		}
	}
	return l, nil
}
