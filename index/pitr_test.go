package index

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
)

const t0 = int64(1767225600e9)

func sec(s int64) int64 { return t0 + s*1e9 }

func snap(id byte, atSec int64, pos *uint64) SnapshotRef {
	return SnapshotRef{ID: repo.ID{id}, Snapshot: &repo.Snapshot{Stream: "s", Time: time.Unix(0, sec(atSec)).UTC(), Position: pos, Format: "ndjson"}}
}

func seg(first, last uint64, fromSec, toSec int64) repo.SegmentKey {
	return repo.SegmentKey{Stream: "s", First: first, Last: last, FirstTime: sec(fromSec), LastTime: sec(toSec), ID: repo.ID{byte(first), byte(last)}}
}

func u(v uint64) *uint64 { return &v }

func TestPlan(t *testing.T) {
	// Events 1-10 at seconds 1..10 (5 and 6 both at second 5), a gap of
	// positions 11-12, then 13-20 at seconds 13..20. Snapshots at position
	// 0 (second 0), position 6 (second 5) and position 15 (second 15).
	c := &Catalog{
		Snapshots: []SnapshotRef{snap(1, 0, u(0)), snap(2, 5, u(6)), snap(3, 15, u(15)), snap(4, 30, nil)},
		Logs: map[string]*Log{"s": NewLog("s", []repo.SegmentKey{
			seg(13, 16, 13, 16), seg(1, 4, 1, 4), seg(5, 10, 5, 10), seg(17, 20, 17, 20),
		})},
	}
	tests := []struct {
		name   string
		target Target
		base   byte
		segs   []uint64 // First of each segment in the plan
		err    string
	}{
		// Plans run through the first segment whose last event is after the
		// target: the proof that no later event applies (Plan.ProveEnd).
		{"at the first snapshot", Target{Time: time.Unix(0, sec(0))}, 1, []uint64{1}, ""},
		{"between events", Target{Time: time.Unix(0, sec(3)+5e8)}, 1, []uint64{1}, ""},
		{"exactly at an event", Target{Time: time.Unix(0, sec(4))}, 1, []uint64{1, 5}, ""},
		// Segment 5-10 starts at the snapshot's second: it is read, and events after position 6 at that second would apply.
		{"exactly at a snapshot with equal-time events", Target{Time: time.Unix(0, sec(5))}, 2, []uint64{5}, ""},
		{"just after a snapshot", Target{Time: time.Unix(0, sec(7))}, 2, []uint64{5}, ""},
		{"end of the run before the gap", Target{Time: time.Unix(0, sec(10))}, 2, []uint64{5}, ""},
		{"inside the gap", Target{Time: time.Unix(0, sec(12))}, 0, nil, "positions 11-12 missing"},
		{"after the gap, before the next snapshot", Target{Time: time.Unix(0, sec(14))}, 0, nil, "snapshot 03000000 at 2026-01-01T00:00:15Z"},
		{"at the snapshot after the gap", Target{Time: time.Unix(0, sec(15))}, 3, []uint64{13}, ""},
		{"after the gap, from the new snapshot", Target{Time: time.Unix(0, sec(18))}, 3, []uint64{13, 17}, ""},
		{"the newest event", Target{Time: time.Unix(0, sec(20))}, 3, []uint64{13, 17}, ""},
		{"past the newest event", Target{Time: time.Unix(0, sec(21))}, 0, nil, "after the newest captured event"},
		{"a snapshot without a position, at its time", Target{Time: time.Unix(0, sec(30))}, 4, nil, ""},
		{"before the first snapshot", Target{Time: time.Unix(0, sec(-1))}, 0, nil, "before the first snapshot"},
		{"position 0", Target{ByPos: true}, 1, nil, ""},
		{"position inside the first run", Target{Position: 3, ByPos: true}, 1, []uint64{1}, ""},
		{"position of a snapshot", Target{Position: 6, ByPos: true}, 2, nil, ""},
		{"position after a snapshot", Target{Position: 9, ByPos: true}, 2, []uint64{5}, ""},
		{"position in the gap", Target{Position: 12, ByPos: true}, 0, nil, "positions 11-12 missing"},
		{"position after the gap", Target{Position: 17, ByPos: true}, 3, []uint64{13, 17}, ""},
		{"position past the end", Target{Position: 21, ByPos: true}, 0, nil, "after the newest captured event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Plan("s", tt.target)
			if tt.err != "" {
				if !errors.Is(err, ErrNotRestorable) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Plan = %v, want ErrNotRestorable containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var firsts []uint64
			for _, s := range p.Segments {
				firsts = append(firsts, s.First)
			}
			if p.Base.ID[0] != tt.base || fmt.Sprint(firsts) != fmt.Sprint(tt.segs) {
				t.Errorf("plan: base %d, segments %v; want base %d, segments %v", p.Base.ID[0], firsts, tt.base, tt.segs)
			}
		})
	}
}

func TestCoverage(t *testing.T) {
	c := &Catalog{
		Snapshots: []SnapshotRef{snap(1, 0, u(0)), snap(2, 15, u(15))},
		Logs:      map[string]*Log{"s": NewLog("s", []repo.SegmentKey{seg(1, 10, 1, 10), seg(13, 20, 13, 20)})},
	}
	cov := c.Coverage("s")
	want := "[{0 10 0 10} {15 20 15 20}]"
	var got []string
	for _, w := range cov.Windows {
		got = append(got, fmt.Sprintf("{%d %d %d %d}", (w.From.UnixNano()-t0)/1e9, (w.To.UnixNano()-t0)/1e9, w.FromPos, w.ToPos))
	}
	if fmt.Sprint("[", strings.Join(got, " "), "]") != want {
		t.Errorf("windows %v, want %s", got, want)
	}
	if len(cov.Gaps) != 1 || cov.Gaps[0].FromPos != 11 || cov.Gaps[0].ToPos != 12 {
		t.Errorf("gaps %+v", cov.Gaps)
	}
	if cov.Newest.UnixNano() != sec(20) {
		t.Errorf("newest %v", cov.Newest)
	}
}

func TestOverlappingSegmentsRefused(t *testing.T) {
	c := &Catalog{
		Snapshots: []SnapshotRef{snap(1, 0, u(0))},
		Logs:      map[string]*Log{"s": NewLog("s", []repo.SegmentKey{seg(1, 10, 1, 10), seg(5, 12, 5, 12)})},
	}
	if len(c.Logs["s"].Conflicts) != 1 {
		t.Fatalf("conflicts %v", c.Logs["s"].Conflicts)
	}
	if _, err := c.Plan("s", Target{Time: time.Unix(0, sec(11))}); !errors.Is(err, ErrNotRestorable) || !strings.Contains(err.Error(), "overlapping") {
		t.Errorf("plan across overlapping segments: %v", err)
	}
}

// BenchmarkPlan100k: planning over 100k segments (a day at one segment
// per second) must stay far below 10 ms.
func BenchmarkPlan100k(b *testing.B) {
	const n = 100_000
	segs := make([]repo.SegmentKey, n)
	for i := range segs {
		segs[i] = seg(uint64(i*10+1), uint64(i*10+10), int64(i), int64(i))
	}
	c := &Catalog{Snapshots: []SnapshotRef{snap(1, 0, u(0))}, Logs: map[string]*Log{"s": NewLog("s", segs)}}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p, err := c.Plan("s", Target{Time: time.Unix(0, sec(int64(i%n)))})
		if err != nil || len(p.Segments) == 0 {
			b.Fatal(err)
		}
	}
}
