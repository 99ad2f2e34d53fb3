package index

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
)

// useg is a time-uncertain segment: its events happened after fromSec and
// no later than toSec.
func useg(first, last uint64, fromSec, toSec int64) repo.SegmentKey {
	k := seg(first, last, fromSec, toSec)
	k.Uncertain = true
	return k
}

func TestUncertainSpans(t *testing.T) {
	// Events 1-4 at seconds 1..4; the capture restarts and 5-8 are
	// re-delivered, known only to lie in (4s, 10s]; 9-12 live at 10..12.
	// The restarted capture was itself killed once inside the span, so the
	// span is two segments that both carry its start.
	c := &Catalog{
		Snapshots: []SnapshotRef{snap(1, 0, u(0))},
		Logs: map[string]*Log{"s": NewLog("s", []repo.SegmentKey{
			seg(1, 4, 1, 4), useg(5, 6, 4, 7), useg(7, 8, 4, 10), seg(9, 12, 10, 12),
		})},
	}
	at := func(s float64) Target { return Target{Time: time.Unix(0, sec(0)+int64(s*1e9))} }
	tests := []struct {
		name   string
		target Target
		segs   []uint64
		err    string
	}{
		{"before the span", at(3), []uint64{1}, ""},
		{"at the span's start", at(4), []uint64{1, 5}, ""},
		{"inside the first segment", at(5), nil, "--at-position 4..8"},
		{"at the first segment's end, inside the span", at(7), nil, "--at-position 4..8"},
		{"inside the second segment", at(9.5), nil, "--at-position 4..8"},
		{"at the span's end", at(10), []uint64{1, 5, 7, 9}, ""},
		{"after the span", at(11), []uint64{1, 5, 7, 9}, ""},
		{"by position inside the span", Target{Position: 6, ByPos: true}, []uint64{1, 5}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Plan("s", tt.target)
			if tt.err != "" {
				if !errors.Is(err, ErrNotRestorable) || !errors.Is(err, ErrTimeUncertain) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Plan = %v, want ErrTimeUncertain containing %q", err, tt.err)
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
			if fmt.Sprint(firsts) != fmt.Sprint(tt.segs) {
				t.Errorf("segments %v, want %v", firsts, tt.segs)
			}
			if err := p.ProveEnd(); err != nil {
				t.Errorf("ProveEnd: %v", err)
			}
			if err := p.CheckUncertain(); err != nil {
				t.Errorf("CheckUncertain: %v", err)
			}
		})
	}
	cov := c.Coverage("s")
	if len(cov.Uncertain) != 1 {
		t.Fatalf("uncertain spans %+v, want one", cov.Uncertain)
	}
	u := cov.Uncertain[0]
	if u.FromPos != 5 || u.ToPos != 8 || u.After.UnixNano() != sec(4) || u.Before.UnixNano() != sec(10) {
		t.Errorf("span %+v, want positions 5-8 between seconds 4 and 10", u)
	}
	// The span survives a log rebuilt segment by segment (the server's With).
	l := NewLog("s", nil)
	for _, k := range c.Logs["s"].Segments {
		l = l.With(k)
	}
	c2 := &Catalog{Snapshots: c.Snapshots, Logs: map[string]*Log{"s": l}}
	if _, err := c2.Plan("s", at(9.5)); !errors.Is(err, ErrTimeUncertain) {
		t.Errorf("plan through With: %v, want ErrTimeUncertain", err)
	}
}

func TestProveEnd(t *testing.T) {
	c := &Catalog{
		Snapshots: []SnapshotRef{snap(1, 0, u(0))},
		Logs:      map[string]*Log{"s": NewLog("s", []repo.SegmentKey{seg(1, 4, 1, 4), seg(5, 8, 5, 8), seg(9, 12, 9, 12)})},
	}
	p, err := c.Plan("s", Target{Time: time.Unix(0, sec(6))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProveEnd(); err != nil {
		t.Fatalf("an honest plan: %v", err)
	}
	// A planner that drops the last segment, or every segment, is caught.
	for _, n := range []int{len(p.Segments) - 1, 0} {
		lying := *p
		lying.Segments = p.Segments[:n]
		if err := lying.ProveEnd(); !errors.Is(err, ErrUnprovable) {
			t.Errorf("plan cut to %d segments: ProveEnd = %v, want ErrUnprovable", n, err)
		}
	}
	// The newest event itself has no proof yet: a remote client must refuse.
	p, err = c.Plan("s", Target{Time: time.Unix(0, sec(12))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProveEnd(); !errors.Is(err, ErrUnprovable) {
		t.Errorf("at the newest event: ProveEnd = %v, want ErrUnprovable", err)
	}
	// A snapshot without a position restores only as itself: at its own
	// time it needs no log, at any other time it is no plan.
	bare := SnapshotRef{ID: repo.ID{7}, Snapshot: &repo.Snapshot{Stream: "s", Time: time.Unix(0, sec(20))}}
	if err := (&Plan{Stream: "s", Base: bare, Target: Target{Time: bare.Time}}).ProveEnd(); err != nil {
		t.Errorf("a snapshot without a position, at its own time: %v", err)
	}
	if err := (&Plan{Stream: "s", Base: bare, Target: Target{Time: bare.Time.Add(1)}}).ProveEnd(); !errors.Is(err, ErrUnprovable) {
		t.Errorf("a snapshot without a position, after its time: ProveEnd = %v, want ErrUnprovable", err)
	}
	// By position, the segment holding the target proves it.
	p, err = c.Plan("s", Target{Position: 12, ByPos: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProveEnd(); err != nil {
		t.Errorf("by position: %v", err)
	}
}
