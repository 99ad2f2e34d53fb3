package index

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
)

// TestTwins: manifests whose names agree but for the ID (a re-encryption
// cut short, FORMAT.md §4.1) are one candidate segment: no conflict, no
// gap, and plans list every member, adjacent, where the segment goes.
func TestTwins(t *testing.T) {
	a, b, c := seg(1, 10, 1, 10), seg(11, 20, 11, 20), seg(21, 30, 21, 30)
	b2 := b
	b2.ID = repo.ID{0xff}
	b0 := b
	b0.ID = repo.ID{0}
	// The order of a listing does not matter.
	for _, order := range [][]repo.SegmentKey{{a, b, b2, c, b0}, {b0, c, b2, b, a}} {
		l := NewLog("s", slices.Clone(order))
		if len(l.Conflicts) != 0 || len(l.Segments) != 3 || len(l.Twins) != 2 || l.Segments[1] != b0 {
			t.Fatalf("segments %v twins %v conflicts %v", ranges(l.Segments), ranges(l.Twins), l.Conflicts)
		}
		if g := l.Group(b2); len(g) != 3 || g[0] != b0 || g[1] != b || g[2] != b2 {
			t.Fatalf("group %v", g)
		}
		if l.Group(a) != nil || len(l.All()) != 5 {
			t.Fatalf("group of a %v, all %v", l.Group(a), ranges(l.All()))
		}
		cat := &Catalog{Snapshots: []SnapshotRef{snap(1, 0, u(0))}, Logs: map[string]*Log{"s": l}}
		cov := cat.Coverage("s")
		if len(cov.Conflicts) != 0 || len(cov.Gaps) != 0 || len(cov.Windows) != 1 || cov.Windows[0].ToPos != 30 {
			t.Fatalf("coverage %+v", cov)
		}
		for _, tc := range []struct {
			target Target
			want   []repo.SegmentKey
		}{
			{Target{Position: 5, ByPos: true}, []repo.SegmentKey{a}},
			{Target{Position: 15, ByPos: true}, []repo.SegmentKey{a, b0, b, b2}},
			{Target{Position: 25, ByPos: true}, []repo.SegmentKey{a, b0, b, b2, c}},
			{Target{Time: time.Unix(0, sec(10))}, []repo.SegmentKey{a, b0, b, b2}},
			{Target{Time: time.Unix(0, sec(19))}, []repo.SegmentKey{a, b0, b, b2}},
			{Target{Time: time.Unix(0, sec(20))}, []repo.SegmentKey{a, b0, b, b2, c}},
		} {
			p, err := cat.Plan("s", tc.target)
			if err != nil {
				t.Fatalf("plan at %s: %v", tc.target, err)
			}
			if !slices.Equal(p.Segments, tc.want) {
				t.Errorf("plan at %s: %v, want %v", tc.target, p.Segments, tc.want)
			}
		}
		// The shared catalog array is untouched by a plan's copy.
		if l.Segments[1] != b0 || l.Segments[2] != c {
			t.Fatal("planning modified the log")
		}
		// Unfolded, twins are overlaps again (check --repair of two writers).
		if u := l.Unfolded(); len(u.Conflicts) != 2 || len(u.Twins) != 0 || len(u.Segments) != 5 {
			t.Fatalf("unfolded: conflicts %v segments %v", u.Conflicts, ranges(u.Segments))
		}
		// A capture appending keeps the twins (With's fast path), and a
		// twin of the newest segment arriving later is folded too.
		d := seg(31, 40, 31, 40)
		w := l.With(d)
		if len(w.Twins) != 2 || w.Group(b) == nil || len(w.Segments) != 4 {
			t.Fatalf("with: %v twins %v", ranges(w.Segments), ranges(w.Twins))
		}
		d2 := d
		d2.ID = repo.ID{0xfe}
		if w2 := w.With(d2); len(w2.Conflicts) != 0 || len(w2.Twins) != 3 || len(w2.Segments) != 4 {
			t.Fatalf("with a twin: %v twins %v conflicts %v", ranges(w2.Segments), ranges(w2.Twins), w2.Conflicts)
		}
	}
	// Equal ranges with other times or epochs are not twins: an overlap.
	other := b
	other.ID, other.LastTime = repo.ID{0xee}, b.LastTime+1
	if l := NewLog("s", []repo.SegmentKey{a, b, other}); len(l.Conflicts) != 1 || len(l.Twins) != 0 {
		t.Fatalf("conflicts %v twins %v", l.Conflicts, ranges(l.Twins))
	}
}
