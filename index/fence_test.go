package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-backup/strata/repo"
)

func eseg(first, last, epoch uint64) repo.SegmentKey {
	return repo.SegmentKey{Stream: "s", First: first, Last: last, FirstTime: int64(first), LastTime: int64(last), Epoch: epoch, ID: repo.ID{byte(first), byte(last), byte(epoch)}}
}

func ranges(segs []repo.SegmentKey) string {
	var s string
	for _, k := range segs {
		s += fmt.Sprintf("[%d-%d e%d]", k.First, k.Last, k.Epoch)
	}
	return s
}

// TestFence: the fencing rule of FORMAT.md §15 on the cases it is for.
func TestFence(t *testing.T) {
	for _, tt := range []struct {
		name          string
		segs          []repo.SegmentKey
		live, fenced  string
		conflictsLeft bool
	}{
		{"one writer", []repo.SegmentKey{eseg(1, 10, 1), eseg(11, 20, 1)}, "[1-10 e1][11-20 e1]", "", false},
		{"takeover continues", []repo.SegmentKey{eseg(1, 10, 1), eseg(11, 20, 3)}, "[1-10 e1][11-20 e3]", "", false},
		{"deposed writer sealed after the takeover",
			[]repo.SegmentKey{eseg(1, 10, 1), eseg(11, 15, 1), eseg(11, 20, 3), eseg(21, 30, 3)},
			"[1-10 e1][11-20 e3][21-30 e3]", "[11-15 e1]", false},
		{"deposed writer went on past the new one",
			[]repo.SegmentKey{eseg(1, 10, 1), eseg(11, 15, 3), eseg(11, 30, 1), eseg(31, 40, 1)},
			"[1-10 e1][11-15 e3]", "[11-30 e1][31-40 e1]", false},
		{"adopted: the new writer chained on it",
			[]repo.SegmentKey{eseg(1, 10, 1), eseg(11, 15, 1), eseg(16, 20, 4)},
			"[1-10 e1][11-15 e1][16-20 e4]", "", false},
		{"legacy segments before the first lease",
			[]repo.SegmentKey{eseg(1, 10, 0), eseg(11, 20, 0), eseg(21, 30, 2)},
			"[1-10 e0][11-20 e0][21-30 e2]", "", false},
		{"three epochs",
			[]repo.SegmentKey{eseg(1, 10, 1), eseg(5, 12, 2), eseg(8, 20, 3)},
			"[8-20 e3]", "[1-10 e1][5-12 e2]", false},
		{"legacy overlap stays a conflict",
			[]repo.SegmentKey{eseg(1, 10, 0), eseg(5, 12, 0)},
			"[1-10 e0][5-12 e0]", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLog("s", slices.Clone(tt.segs))
			if got := ranges(l.Segments); got != tt.live {
				t.Errorf("live %s, want %s", got, tt.live)
			}
			if got := ranges(l.Fenced); got != tt.fenced {
				t.Errorf("fenced %s, want %s", got, tt.fenced)
			}
			if got := len(l.Conflicts) > 0; got != tt.conflictsLeft {
				t.Errorf("conflicts %v, want some: %v", l.Conflicts, tt.conflictsLeft)
			}
		})
	}
}

// TestWithFencing: a log built one segment at a time with With is the log
// NewLog builds from all of them, in any order of arrival, takeovers and
// deposed writers' segments included.
func TestWithFencing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		var all []repo.SegmentKey
		pos, epoch := uint64(1), uint64(rng.IntN(2))
		for range 2 + rng.IntN(10) {
			switch rng.IntN(5) {
			case 0: // a takeover
				epoch += 1 + uint64(rng.IntN(3))
			case 1: // a deposed writer's late segment
				if epoch > 0 && pos > 3 {
					f := pos - uint64(1+rng.IntN(3))
					all = append(all, eseg(f, f+uint64(rng.IntN(6)), epoch-1))
				}
			}
			n := uint64(1 + rng.IntN(5))
			all = append(all, eseg(pos, pos+n-1, epoch))
			pos += n
		}
		want := NewLog("s", slices.Clone(all))
		got := NewLog("s", nil)
		for _, k := range all {
			got = got.With(k)
		}
		if ranges(got.Segments) != ranges(want.Segments) || ranges(got.Fenced) != ranges(want.Fenced) || len(got.Conflicts) != len(want.Conflicts) {
			t.Fatalf("trial %d: With gave live %s fenced %s conflicts %d; NewLog live %s fenced %s conflicts %d (arrivals %s)", trial,
				ranges(got.Segments), ranges(got.Fenced), len(got.Conflicts), ranges(want.Segments), ranges(want.Fenced), len(want.Conflicts), ranges(all))
		}
	}
}
