package server

import (
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

func TestHumanDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{4200 * time.Millisecond, "4.2s"},
		{10*time.Minute + 29*time.Second, "10m29s"},
		{3*time.Hour + 20*time.Minute + 10*time.Second, "3h20m"},
		{3*24*time.Hour + 23*time.Hour + 50*time.Minute, "4d0h"},
		{50 * time.Hour, "2d2h"},
	} {
		if got := humanDuration(c.d); got != c.want {
			t.Errorf("humanDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestTimelineRow: marks are placed by time over the span and clipped to
// the drawing; what lies wholly outside the span is left out.
func TestTimelineRow(t *testing.T) {
	to := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	from := to.Add(-10 * 24 * time.Hour)
	day := func(n int) time.Time { return from.Add(time.Duration(n) * 24 * time.Hour) }
	st := &ops.StreamStatus{Stream: "s",
		Windows: []ops.Window{{From: day(-5), To: day(-3)}, {From: day(-1), To: day(5)}, {From: day(6), To: day(10)}},
		Gaps:    []ops.Gap{{After: day(5), Before: day(6)}},
	}
	cat := &index.Catalog{Snapshots: []index.SnapshotRef{
		{ID: repo.ID{1}, Snapshot: &repo.Snapshot{Stream: "s", Time: day(-1)}},
		{ID: repo.ID{2}, Snapshot: &repo.Snapshot{Stream: "s", Time: day(6)}},
		{ID: repo.ID{3}, Snapshot: &repo.Snapshot{Stream: "s", Time: day(10)}},
	}}
	row := timelineRow(st, cat, from, to)
	w := float64(timelineWidth)
	want := []mark{{X: 0, Width: w / 2}, {X: w * 0.6, Width: w * 0.4}}
	if len(row.Wins) != 2 || row.Wins[0].X != want[0].X || row.Wins[0].Width != want[0].Width || row.Wins[1].X != want[1].X || row.Wins[1].Width != want[1].Width {
		t.Fatalf("windows %+v, want x/width %+v", row.Wins, want)
	}
	if len(row.Gaps) != 1 || row.Gaps[0].X != w/2 || row.Gaps[0].Width != w/10 {
		t.Fatalf("gaps %+v", row.Gaps)
	}
	// The snapshot before the span is left out; the one at its end stays
	// inside the drawing.
	if len(row.Snaps) != 2 || row.Snaps[0].X != w*0.6 || row.Snaps[1].X != w-2 {
		t.Fatalf("snapshots %+v", row.Snaps)
	}
	if row.Window == nil || !row.Window.To.Equal(day(10)) {
		t.Fatalf("newest window %+v", row.Window)
	}
}
