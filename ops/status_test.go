package ops_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

const testPolicy = `
scrub_age: {warning: 8d, failure: 31d}
streams:
  - match: "shop/*"
    snapshot_age: {warning: 26h, failure: 50h}
    rpo: {warning: 5m, failure: 30m}
    drill_age: {warning: 8d, failure: 15d}
    rto: {warning: 10m, failure: 1h}
  - match: "cache/*"
    snapshot_age: {failure: 1h}
`

func mustPolicy(t *testing.T, s string) *ops.Policy {
	t.Helper()
	p, err := ops.ParsePolicy(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePolicy(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	if got, want := len(p.Streams), 2; got != want {
		t.Fatalf("rules = %d, want %d", got, want)
	}
	r := p.Rule("shop/orders")
	if r == nil || r.Match != "shop/*" {
		t.Fatalf("rule for shop/orders = %+v", r)
	}
	if got, want := time.Duration(r.DrillAge.Failure), 15*24*time.Hour; got != want {
		t.Fatalf("drill_age failure = %v, want %v", got, want)
	}
	if p.Rule("other") != nil {
		t.Fatal("a stream no rule matches got a rule")
	}
	for _, bad := range []string{
		"streams: [{match: 'a', rpo: {warning: 2h, failure: 1h}}]", // warning above failure
		"streams: [{match: 'a', rpo: {warning: 1x}}]",              // not a duration
		"streams: [{match: 'a', rpo: {warning: -1h}}]",             // negative
		"streams: [{match: 'a', rpo: {}}]",                         // no level
		"streams: [{rpo: {warning: 1h}}]",                          // no match
		"streams: [{match: 'a', rop: {warning: 1h}}]",              // typo: unknown field
		"scrub_age: {warning: 1h, failur: 2h}",                     // typo in a limit
		"streams: {match: a}",                                      // wrong shape
		"streams: [{match: 'a', rpo: {warning: 2000000000d}}]",     // overflows a duration
	} {
		if _, err := ops.ParsePolicy(strings.NewReader(bad)); !errors.Is(err, ops.ErrPolicy) {
			t.Errorf("policy %q: err = %v, want ErrPolicy", bad, err)
		}
	}
	if p, err := ops.ParsePolicy(strings.NewReader("")); err != nil || len(p.Streams) != 0 {
		t.Fatalf("empty policy: %+v, %v", p, err)
	}
}

func TestLimitGrade(t *testing.T) {
	l := &ops.Limit{Warning: ops.Duration(time.Hour), Failure: ops.Duration(2 * time.Hour)}
	for _, c := range []struct {
		v    time.Duration
		want ops.State
	}{{0, ops.OK}, {time.Hour, ops.OK}, {time.Hour + 1, ops.Warning}, {2 * time.Hour, ops.Warning}, {2*time.Hour + 1, ops.Failure}} {
		if got := l.Grade(c.v); got != c.want {
			t.Errorf("Grade(%v) = %v, want %v", c.v, got, c.want)
		}
	}
	if got := (&ops.Limit{Failure: ops.Duration(time.Hour)}).Grade(3 * time.Hour); got != ops.Failure {
		t.Errorf("failure-only limit: %v", got)
	}
	var none *ops.Limit
	if got := none.Grade(1000 * time.Hour); got != ops.OK {
		t.Errorf("nil limit: %v", got)
	}
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func pos(p uint64) *uint64 { return &p }

// catalog holds stream shop/orders: snapshots at t0 (position 10) and
// t0+1h (position 20), and a log 11..40 whose last event is at t0+2h.
func catalog() *index.Catalog {
	snap := func(b byte, at time.Time, p uint64) index.SnapshotRef {
		return index.SnapshotRef{ID: repo.ID{b}, Snapshot: &repo.Snapshot{Stream: "shop/orders", Time: at, Position: pos(p)}}
	}
	c := &index.Catalog{Snapshots: []index.SnapshotRef{snap(1, t0, 10), snap(2, t0.Add(time.Hour), 20)}}
	c.Logs = map[string]*index.Log{"shop/orders": index.NewLog("shop/orders", []repo.SegmentKey{
		{Stream: "shop/orders", First: 11, Last: 30, FirstTime: t0.Add(time.Minute).UnixNano(), LastTime: t0.Add(90 * time.Minute).UnixNano(), ID: repo.ID{9}},
		{Stream: "shop/orders", First: 31, Last: 40, FirstTime: t0.Add(91 * time.Minute).UnixNano(), LastTime: t0.Add(2 * time.Hour).UnixNano(), ID: repo.ID{8}},
	})}
	return c
}

func find(t *testing.T, r *ops.Report, stream string) ops.StreamStatus {
	t.Helper()
	for _, s := range r.Streams {
		if s.Stream == stream {
			return s
		}
	}
	t.Fatalf("stream %s missing from the report: %+v", stream, r.Streams)
	return ops.StreamStatus{}
}

func hasCheck(s ops.StreamStatus, check string, st ops.State) bool {
	for _, f := range s.Findings {
		if f.Check == check && f.State == st {
			return true
		}
	}
	return false
}

// A stream that falls behind goes from ok to warning to failure as time
// passes with no new log, snapshot or drill.
func TestStatusFallsBehind(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	newest := t0.Add(2 * time.Hour) // the newest restorable instant
	drill := &ops.DrillRecord{Stream: "shop/orders", Time: newest, OK: true, RTOSeconds: 42}
	scrub := &ops.ScrubRecord{Time: newest}
	in := func(now time.Time) ops.Input {
		return ops.Input{Catalog: catalog(), Drills: map[string]ops.Drills{"shop/orders": {Newest: drill, NewestOK: drill}}, Scrub: scrub, Policy: p, Now: now}
	}
	for _, c := range []struct {
		after time.Duration
		want  ops.State
		check string
	}{
		{time.Minute, ops.OK, ""},
		{6 * time.Minute, ops.Warning, "rpo"},
		{31 * time.Minute, ops.Failure, "rpo"},
	} {
		r := ops.Compute(in(newest.Add(c.after)))
		s := find(t, r, "shop/orders")
		if s.State != c.want || r.State != c.want {
			t.Fatalf("after %v: stream %v, report %v, want %v; findings %+v", c.after, s.State, r.State, c.want, s.Findings)
		}
		if c.check != "" && !hasCheck(s, c.check, c.want) {
			t.Fatalf("after %v: no %s finding at %v: %+v", c.after, c.check, c.want, s.Findings)
		}
		if got, want := *s.RPOSeconds, c.after.Seconds(); got != want {
			t.Fatalf("after %v: RPO %v s, want %v", c.after, got, want)
		}
	}
	s := find(t, ops.Compute(in(newest.Add(time.Minute))), "shop/orders")
	if got, want := len(s.Windows), 1; got != want {
		t.Fatalf("windows = %+v", s.Windows)
	}
	if !s.Windows[0].From.Equal(t0) || !s.Windows[0].To.Equal(newest) {
		t.Fatalf("window = %+v, want %v..%v", s.Windows[0], t0, newest)
	}
	if s.NewestSnapshot != (repo.ID{2}).String() || s.Snapshots != 2 || s.Segments != 2 {
		t.Fatalf("newest %s, %d snapshots, %d segments", s.NewestSnapshot, s.Snapshots, s.Segments)
	}
	// Nine days on, the drill and the snapshot are old too.
	s = find(t, ops.Compute(in(newest.Add(9*24*time.Hour))), "shop/orders")
	for _, c := range []string{"rpo", "snapshot_age"} {
		if !hasCheck(s, c, ops.Failure) {
			t.Errorf("9 days: no %s failure: %+v", c, s.Findings)
		}
	}
	if !hasCheck(s, "drill_age", ops.Warning) {
		t.Errorf("9 days: no drill_age warning: %+v", s.Findings)
	}
	r := ops.Compute(in(newest.Add(9 * 24 * time.Hour)))
	if len(r.Findings) != 1 || r.Findings[0].Check != "scrub_age" || r.Findings[0].State != ops.Warning {
		t.Errorf("9 days: repository findings %+v, want a scrub_age warning", r.Findings)
	}
}

func TestStatusDrills(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	now := t0.Add(2*time.Hour + time.Minute)
	passed := &ops.DrillRecord{Stream: "shop/orders", Time: t0, OK: true, RTOSeconds: 15 * 60}
	failed := &ops.DrillRecord{Stream: "shop/orders", Time: t0.Add(time.Hour), OK: false, Error: "replay proof: count 7, want 8"}
	for _, c := range []struct {
		name   string
		drills ops.Drills
		check  string
		want   ops.State
	}{
		{"never drilled", ops.Drills{}, "drill_age", ops.Failure},
		{"slow", ops.Drills{Newest: passed, NewestOK: passed}, "rto", ops.Warning},
		{"newest failed", ops.Drills{Newest: failed, NewestOK: passed}, "drill", ops.Failure},
	} {
		r := ops.Compute(ops.Input{Catalog: catalog(), Drills: map[string]ops.Drills{"shop/orders": c.drills}, Policy: p, Now: now})
		s := find(t, r, "shop/orders")
		if s.State != c.want || !hasCheck(s, c.check, c.want) {
			t.Errorf("%s: state %v, findings %+v; want a %s %v", c.name, s.State, s.Findings, c.check, c.want)
		}
	}
	// Without a policy only the failed drill counts.
	r := ops.Compute(ops.Input{Catalog: catalog(), Drills: map[string]ops.Drills{"shop/orders": {Newest: failed, NewestOK: passed}}, Now: now.Add(100 * 24 * time.Hour)})
	if s := find(t, r, "shop/orders"); s.State != ops.Failure || len(s.Findings) != 1 {
		t.Errorf("no policy, failed drill: %v %+v", s.State, s.Findings)
	}
	r = ops.Compute(ops.Input{Catalog: catalog(), Now: now.Add(100 * 24 * time.Hour)})
	if r.State != ops.OK {
		t.Errorf("no policy, no drill: %v %+v", r.State, r.Streams)
	}
}

func TestStatusHardFacts(t *testing.T) {
	p := mustPolicy(t, testPolicy+"  - match: cache\n    rpo: {failure: 1h}\n")
	c := catalog()
	// A stream with log but no snapshot, and a policy naming a stream the
	// repository does not hold.
	c.Logs["shop/carts"] = index.NewLog("shop/carts", []repo.SegmentKey{{Stream: "shop/carts", First: 1, Last: 5, FirstTime: t0.UnixNano(), LastTime: t0.UnixNano(), ID: repo.ID{7}}})
	now := t0.Add(2 * time.Hour)
	r := ops.Compute(ops.Input{Catalog: c, Policy: p, Now: now, Scrub: &ops.ScrubRecord{Time: now, BadShards: 3, Repaired: 1, Unrepaired: 2}})
	for _, name := range []string{"shop/carts", "cache"} {
		if s := find(t, r, name); s.State != ops.Failure || !hasCheck(s, "restorable", ops.Failure) {
			t.Errorf("%s: %v %+v", name, s.State, s.Findings)
		}
	}
	if r.State != ops.Failure || len(r.Findings) == 0 || r.Findings[0].Check != "scrub" {
		t.Errorf("unrepaired shards: %v %+v", r.State, r.Findings)
	}
	// A gap after the newest snapshot: the log past it is not restorable,
	// so the RPO counts from before the gap.
	c = catalog()
	c.Logs["shop/orders"] = c.Logs["shop/orders"].With(repo.SegmentKey{Stream: "shop/orders", First: 50, Last: 60,
		FirstTime: t0.Add(3 * time.Hour).UnixNano(), LastTime: t0.Add(4 * time.Hour).UnixNano(), ID: repo.ID{6}})
	r = ops.Compute(ops.Input{Catalog: c, Policy: p, Now: t0.Add(4 * time.Hour)})
	s := find(t, r, "shop/orders")
	if len(s.Gaps) != 1 || s.Gaps[0].FromPos != 41 || s.Gaps[0].ToPos != 49 {
		t.Fatalf("gaps = %+v", s.Gaps)
	}
	if got, want := *s.RPOSeconds, (2 * time.Hour).Seconds(); got != want || !hasCheck(s, "rpo", ops.Failure) {
		t.Fatalf("RPO past a gap = %v s (want %v), findings %+v", got, want, s.Findings)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"state":"failure"`) {
		t.Fatalf("JSON: %s, %v", b, err)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{8 * 24 * time.Hour, "8d"}, {time.Hour, "1h"}, {90 * time.Minute, "1h30m"}, {5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"}, {26 * time.Hour, "26h"}, {4200 * time.Millisecond, "4.2s"}, {0, "0s"},
	} {
		if got := ops.FormatDuration(c.d); got != c.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
