package index

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestLogWith: a log grown one segment at a time equals the log built from
// all of them at once, and every earlier Log is left as it was.
func TestLogWith(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all []repo.SegmentKey
	l := NewLog("s", nil)
	var olds []*Log
	var oldLens []int
	pos := uint64(1)
	for i := range 300 {
		if rng.IntN(10) == 0 {
			pos += uint64(rng.IntN(5)) + 1 // a gap
		}
		n := uint64(rng.IntN(4))
		k := repo.SegmentKey{Stream: "s", First: pos, Last: pos + n, FirstTime: int64(i), LastTime: int64(i), ID: repo.ID{byte(i)}}
		if i == 250 {
			k.First, k.Last = 3, 3 // out of order: an overlap, rebuilt
		}
		pos = k.Last + 1
		if i == 250 {
			pos = all[len(all)-1].Last + 1
		}
		all = append(all, k)
		olds, oldLens = append(olds, l), append(oldLens, len(l.Segments))
		l = l.With(k)
		want := NewLog("s", append([]repo.SegmentKey(nil), all...))
		if !reflect.DeepEqual(l.Segments, want.Segments) || !reflect.DeepEqual(l.runs, want.runs) || len(l.Conflicts) != len(want.Conflicts) {
			t.Fatalf("after %d: With gives %v runs %v, NewLog %v runs %v", i, len(l.Segments), l.runs, len(want.Segments), want.runs)
		}
	}
	for i, o := range olds {
		if len(o.Segments) != oldLens[i] {
			t.Fatalf("log %d changed length", i)
		}
		if end := 0; len(o.runs) > 0 {
			end = o.runs[len(o.runs)-1].end
			if end != len(o.Segments) {
				t.Fatalf("log %d: last run ends at %d of %d segments", i, end, len(o.Segments))
			}
		}
	}
}
