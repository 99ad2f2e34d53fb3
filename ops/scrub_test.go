package ops

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

func ids(n int) []repo.ID {
	out := make([]repo.ID, n)
	for i := range out {
		binary.BigEndian.PutUint64(out[i][:8], uint64(i+1)<<40)
	}
	return out
}

func TestPlanPass(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	all := ids(30)
	cases := []struct {
		name       string
		last       *ScrubRecord
		ids        []repo.ID
		now        time.Time
		from, to   int
		next       string
		cycleStart time.Time
	}{
		{"first pass reads a day's share", nil, all, t0, 0, 1, all[1].String(), t0},
		{"a day later, the next day's share", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[1].String()}, all, t0.Add(day), 1, 2, all[2].String(), t0},
		{"after a missed pass, both shares", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[1].String()}, all, t0.Add(2 * day), 1, 3, all[3].String(), t0},
		{"a pass just after another reads one pack", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[1].String()}, all, t0.Add(time.Second), 1, 2, all[2].String(), t0},
		{"the clock went back: nothing", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[1].String()}, all, t0.Add(-time.Hour), 1, 1, all[1].String(), t0},
		{"the end of the cycle stops there", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[28].String()}, all, t0.Add(10 * day), 28, 30, "", t0},
		{"a complete cycle starts a new one", &ScrubRecord{Time: t0, CycleStart: t0.Add(-29 * day), Next: ""}, all, t0.Add(day), 0, 1, all[1].String(), t0.Add(day)},
		{"the next pack was removed: the one after it", &ScrubRecord{Time: t0, CycleStart: t0, Next: all[5].String()}, append(append([]repo.ID{}, all[:5]...), all[6:]...), t0.Add(day), 5, 6, all[7].String(), t0},
		{"empty repository", nil, nil, t0, 0, 0, "", t0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanPass(tc.last, tc.ids, tc.now, 30*day, day)
			if p.From != tc.from || p.To != tc.to || p.Next != tc.next || !p.CycleStart.Equal(tc.cycleStart) {
				t.Fatalf("got [%d:%d] next %.8s cycle %v; want [%d:%d] next %.8s cycle %v", p.From, p.To, p.Next, p.CycleStart, tc.from, tc.to, tc.next, tc.cycleStart)
			}
		})
	}
}

// The newest record of the asked kind wins; undecodable ones are skipped.
func TestLatestScrub(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	if r, err := LatestScrub(ctx, st, true); r != nil || err != nil {
		t.Fatalf("empty store: %v %v", r, err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, keyed := range []bool{true, false, true, false} {
		if err := SaveScrub(ctx, st, &ScrubRecord{Time: t0.Add(time.Duration(i) * time.Hour), Keyed: keyed, PacksRead: i}); err != nil {
			t.Fatal(err)
		}
	}
	st.Put(ctx, repo.ScrubName(t0.Add(10*time.Hour).UnixNano()), []byte(`{"time":"x"`))
	for keyed, want := range map[bool]int{true: 2, false: 3} {
		r, err := LatestScrub(ctx, st, keyed)
		if err != nil || r == nil || r.PacksRead != want {
			t.Fatalf("keyed %v: %+v %v, want the record of pass %d", keyed, r, err, want)
		}
	}
}
