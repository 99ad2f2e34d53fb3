package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/ndjson"
)

var forgetPassword = []byte("forget test password")

func forgetRepo(t *testing.T, s repo.Store) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), s, forgetPassword, repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, DataShards: 2, ParityShards: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// synthetic describes a catalog: snapshots by time and position (-1: none),
// and log segments by position range, event p at t0 + p minutes.
type synthetic struct {
	t0    time.Time
	snaps []synthSnap
	segs  [][2]uint64
}

type synthSnap struct {
	at  time.Time
	pos int64
}

func (sy synthetic) catalog() *index.Catalog {
	cat := &index.Catalog{Logs: map[string]*index.Log{}}
	for i, s := range sy.snaps {
		snap := &repo.Snapshot{Stream: "db", Time: s.at, Created: s.at, Format: "ndjson"}
		if s.pos >= 0 {
			p := uint64(s.pos)
			snap.Position = &p
		}
		cat.Snapshots = append(cat.Snapshots, index.SnapshotRef{ID: repo.ID{byte(i + 1)}, Snapshot: snap})
	}
	// Another stream's snapshots are never touched.
	cat.Snapshots = append(cat.Snapshots, index.SnapshotRef{ID: repo.ID{0xee}, Snapshot: &repo.Snapshot{Stream: "other", Time: sy.t0, Format: "raw"}})
	slices.SortStableFunc(cat.Snapshots, func(a, b index.SnapshotRef) int { return a.Time.Compare(b.Time) })
	var keys []repo.SegmentKey
	for i, r := range sy.segs {
		keys = append(keys, repo.SegmentKey{Stream: "db", First: r[0], Last: r[1],
			FirstTime: sy.t0.Add(time.Duration(r[0]) * time.Minute).UnixNano(),
			LastTime:  sy.t0.Add(time.Duration(r[1]) * time.Minute).UnixNano(), ID: repo.ID{0x80, byte(i)}})
	}
	if len(keys) > 0 {
		cat.Logs["db"] = index.NewLog("db", keys)
	}
	return cat
}

// snapNumbers maps snapshot refs back to their numbers in synthetic.snaps.
func snapNumbers(refs []index.SnapshotRef) []int {
	var out []int
	for _, s := range refs {
		out = append(out, int(s.ID[0])-1)
	}
	sort.Ints(out)
	return out
}

func TestForgetPolicies(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	hourly := synthetic{t0: t0}
	for h := range 10 {
		// Two snapshots an hour, at :10 and :40; the :40 one has position 60h+40.
		hourly.snaps = append(hourly.snaps,
			synthSnap{t0.Add(time.Duration(h)*time.Hour + 10*time.Minute), int64(60*h + 10)},
			synthSnap{t0.Add(time.Duration(h)*time.Hour + 40*time.Minute), int64(60*h + 40)})
	}
	for p := uint64(1); p <= 600; p += 20 {
		hourly.segs = append(hourly.segs, [2]uint64{p, p + 19})
	}
	days := synthetic{t0: t0}
	// 2025-12-29 (Mon) … 2026-01-03 are ISO week 2026-W01; 2025-12-28 is 2025-W52.
	for _, d := range []string{"2025-11-30T23:00:00Z", "2025-12-01T01:00:00Z", "2025-12-28T10:00:00Z", "2025-12-29T09:00:00Z",
		"2025-12-31T12:00:00Z", "2025-12-31T18:00:00Z", "2026-01-02T05:00:00Z", "2026-01-01T23:30:00-05:00"} {
		at, err := time.Parse(time.RFC3339, d)
		if err != nil {
			t.Fatal(err)
		}
		days.snaps = append(days.snaps, synthSnap{at, -1})
	}
	noPos := synthetic{t0: t0, segs: [][2]uint64{{1, 100}, {101, 200}}}
	for h := range 4 {
		noPos.snaps = append(noPos.snaps, synthSnap{t0.Add(time.Duration(h) * time.Hour), -1})
	}
	// Snapshot 2 (at 1h, before the cutoff) has no position: a restore at
	// the cutoff needs snapshot 1 and its log.
	basePlan := synthetic{t0: t0, segs: [][2]uint64{{1, 50}, {51, 100}, {101, 150}, {151, 200}},
		snaps: []synthSnap{{t0, 0}, {t0.Add(30 * time.Minute), 30}, {t0.Add(time.Hour), -1}, {t0.Add(150 * time.Minute), 150}}}

	now := t0.Add(10 * time.Hour)
	cases := []struct {
		name     string
		cat      synthetic
		p        engine.ForgetPolicy
		now      time.Time
		keep     []int
		segments int // removed, a prefix
		err      error
	}{
		{name: "empty policy", cat: hourly, p: engine.ForgetPolicy{}, err: engine.ErrEmptyPolicy},
		{name: "negative", cat: hourly, p: engine.ForgetPolicy{KeepDaily: -1}, err: errors.New("negative")},
		{name: "last 3", cat: hourly, p: engine.ForgetPolicy{KeepLast: 3}, keep: []int{17, 18, 19}, segments: 26},
		{name: "last more than there are", cat: hourly, p: engine.ForgetPolicy{KeepLast: 50}, keep: seq(0, 20), segments: 0},
		{name: "hourly 4", cat: hourly, p: engine.ForgetPolicy{KeepHourly: 4}, keep: []int{13, 15, 17, 19}, segments: 20},
		{name: "hourly and last", cat: hourly, p: engine.ForgetPolicy{KeepHourly: 2, KeepLast: 2}, keep: []int{17, 18, 19}, segments: 26},
		{name: "daily", cat: days, p: engine.ForgetPolicy{KeepDaily: 3}, keep: []int{3, 5, 6}}, // 7 is 01-01 in New York but 01-02 in UTC, like 6
		{name: "weekly across the year", cat: days, p: engine.ForgetPolicy{KeepWeekly: 2}, keep: []int{2, 6}},
		{name: "monthly", cat: days, p: engine.ForgetPolicy{KeepMonthly: 3}, keep: []int{0, 5, 6}},
		{name: "PITR 3h", cat: hourly, p: engine.ForgetPolicy{KeepWithinPITR: 3 * time.Hour}, now: now,
			keep: []int{13, 14, 15, 16, 17, 18, 19}, segments: 20}, // base 6:40 (pos 400)
		{name: "PITR at a snapshot's time", cat: hourly, p: engine.ForgetPolicy{KeepWithinPITR: 3*time.Hour + 20*time.Minute}, now: now,
			keep: []int{13, 14, 15, 16, 17, 18, 19}, segments: 20},
		{name: "PITR without positions removes no segment", cat: noPos, p: engine.ForgetPolicy{KeepWithinPITR: 90 * time.Minute}, now: t0.Add(3 * time.Hour),
			keep: []int{1, 2, 3}},
		{name: "PITR keeps the base a plan needs", cat: basePlan, p: engine.ForgetPolicy{KeepWithinPITR: 100 * time.Minute}, now: t0.Add(200 * time.Minute),
			keep: []int{1, 2, 3}, segments: 0}, // 30 is the smallest kept position: 1-50 stays
		{name: "PITR past all snapshots", cat: hourly, p: engine.ForgetPolicy{KeepWithinPITR: time.Hour}, now: now.Add(24 * time.Hour),
			keep: []int{19}, segments: 29},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.now.IsZero() {
				tc.now = now
			}
			cat := tc.cat.catalog()
			res, err := engine.Forget(t.Context(), nil, cat, engine.ForgetOptions{Stream: "db", Policy: tc.p, Now: tc.now, DryRun: true})
			if tc.err != nil {
				if err == nil || !errors.Is(err, tc.err) && !strings.Contains(err.Error(), tc.err.Error()) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := snapNumbers(res.Keep); !slices.Equal(got, tc.keep) {
				t.Fatalf("kept %v, want %v (reasons %v)", got, tc.keep, res.Reasons)
			}
			if got, want := len(res.Keep)+len(res.Remove), len(tc.cat.snaps); got != want {
				t.Fatalf("keep+remove = %d snapshots, the stream has %d", got, want)
			}
			for _, s := range res.Keep {
				if len(res.Reasons[s.ID]) == 0 {
					t.Fatalf("snapshot %d kept without a reason", s.ID[0]-1)
				}
			}
			if got := len(res.RemoveSegments); got != tc.segments {
				t.Fatalf("removes %d segments, want %d", got, tc.segments)
			}
			l := cat.Log("db")
			for i, k := range res.RemoveSegments {
				if k != l.Segments[i] {
					t.Fatalf("removed segments are not a prefix of the log")
				}
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// recordingStore records deletes and refuses those of retained names.
type recordingStore struct {
	repo.Store
	mu       sync.Mutex
	deletes  []string
	retained func(name string) bool
}

func (s *recordingStore) Delete(ctx context.Context, name string) error {
	if s.retained != nil && s.retained(name) {
		return fmt.Errorf("test store: delete %s: %w", name, repo.ErrRetained)
	}
	s.mu.Lock()
	s.deletes = append(s.deletes, name)
	s.mu.Unlock()
	return s.Store.Delete(ctx, name)
}

func TestForgetDeleteOrderAndRetention(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	sy := synthetic{t0: t0}
	for h := range 6 {
		sy.snaps = append(sy.snaps, synthSnap{t0.Add(time.Duration(h) * time.Hour), int64(60 * h)})
	}
	for p := uint64(1); p <= 360; p += 30 {
		sy.segs = append(sy.segs, [2]uint64{p, p + 29})
	}
	policy := engine.ForgetPolicy{KeepLast: 2} // keeps positions 240 and 300: segments up to 211-240 go
	for _, tc := range []struct {
		name     string
		retained func(string) bool
		deleted  int // segments
		deferred int
	}{
		{"all deleted", nil, 8, 0},
		{"third segment retained", func(n string) bool { return strings.Contains(n, "@00000000000000000061-") }, 2, 6},
		{"a snapshot retained", func(n string) bool { return n == repo.SnapshotsPrefix+(repo.ID{2}).String() }, 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := &recordingStore{Store: mem.New(), retained: tc.retained}
			r := forgetRepo(t, rs)
			res, err := engine.Forget(t.Context(), r.Store(), sy.catalog(), engine.ForgetOptions{Stream: "db", Policy: policy, Now: t0.Add(10 * time.Hour), DryRun: false})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Remove) != 4 || len(res.RemoveSegments) != 8 || len(res.Deferred) != tc.deferred {
				t.Fatalf("remove %d snapshots, %d segments, deferred %q", len(res.Remove), len(res.RemoveSegments), res.Deferred)
			}
			// Each object's copy goes right before it (FORMAT.md §25.3).
			var own []string
			for i, n := range rs.deletes {
				if strings.HasPrefix(n, repo.CopiesPrefix) {
					continue
				}
				if i == 0 || rs.deletes[i-1] != repo.CopyName(n) {
					t.Fatalf("delete %d: %s not right after its copy", i, n)
				}
				own = append(own, n)
			}
			var snaps, segs []string
			for i, n := range own {
				switch {
				case strings.HasPrefix(n, repo.SnapshotsPrefix):
					if len(segs) > 0 {
						t.Fatalf("delete %d: snapshot %s after a segment", i, n)
					}
					snaps = append(snaps, n)
				case strings.HasPrefix(n, repo.LabelsPrefix):
					// A label goes right after its own snapshot, never before.
					if i == 0 || own[i-1] != repo.SnapshotsPrefix+strings.TrimPrefix(n, repo.LabelsPrefix) {
						t.Fatalf("delete %d: label %s not right after its snapshot", i, n)
					}
				case strings.HasPrefix(n, repo.LogsPrefix):
					segs = append(segs, n)
				default:
					t.Fatalf("deleted %s", n)
				}
			}
			if !slices.IsSorted(segs) || len(segs) != tc.deleted {
				t.Fatalf("segments deleted %q, want %d in ascending order", segs, tc.deleted)
			}
			if got := len(snaps) + len(res.Deferred) - (len(res.RemoveSegments) - tc.deleted); got != 4 {
				t.Fatalf("%d snapshot deletes or deferrals, want 4", got)
			}
		})
	}
}

// pitrModel is an ndjson table and its change log, computed without the
// engine: the reference restores are compared with.
type pitrModel struct {
	t0      time.Time
	initial map[string]string
	events  []repo.Event
}

func newPITRModel(t0 time.Time, events int) *pitrModel {
	m := &pitrModel{t0: t0, initial: map[string]string{}}
	for k := range 120 {
		key := fmt.Sprintf("k%04d", k)
		m.initial[key] = pitrDoc(key, 0)
	}
	for i := 1; i <= events; i++ {
		key := fmt.Sprintf("k%04d", i*7%150)
		e := repo.Event{Seq: uint64(i), Time: m.eventTime(i).UnixNano(), Op: repo.OpPut, Key: []byte(key), Value: []byte(pitrDoc(key, i))}
		if i%13 == 0 {
			e.Op, e.Value = repo.OpDelete, nil
		}
		m.events = append(m.events, e)
	}
	return m
}

func (m *pitrModel) eventTime(i int) time.Time { return m.t0.Add(time.Duration(i) * time.Minute) }

func pitrDoc(key string, v int) string {
	return fmt.Sprintf(`{"_id":"%s","v":%d,"note":"%s"}`, key, v, strings.Repeat(string(rune('a'+v%26)), 150+v%40))
}

// at renders the table as of t: sorted by key, one document a line.
func (m *pitrModel) at(t time.Time) []byte {
	state := map[string]string{}
	for k, v := range m.initial {
		state[k] = v
	}
	for _, e := range m.events {
		if e.Time > t.UnixNano() {
			break
		}
		if e.Op == repo.OpDelete {
			delete(state, string(e.Key))
		} else {
			state[string(e.Key)] = string(e.Value)
		}
	}
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(state[k])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func restoreAt(t *testing.T, r *repo.Repository, cat *index.Catalog, at time.Time) []byte {
	t.Helper()
	p, err := cat.Plan("db", index.Target{Time: at})
	if err != nil {
		t.Fatalf("plan at %s: %v", index.FormatTime(at), err)
	}
	var out bytes.Buffer
	if _, err := ndjson.RestoreAt(t.Context(), r, p, &out, engine.RestoreOptions{}); err != nil {
		t.Fatalf("restore at %s: %v", index.FormatTime(at), err)
	}
	return out.Bytes()
}

func loadCatalog(t *testing.T, r *repo.Repository) *index.Catalog {
	t.Helper()
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestForgetKeepsPITRWindow backs up a table hourly for ten hours while
// capturing its change log, forgets with a three-hour PITR window, prunes,
// and restores at instants across the window against the model.
func TestForgetKeepsPITRWindow(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	m := newPITRModel(t0, 600)
	r := forgetRepo(t, mem.New())

	var parent *index.SnapshotRef
	for h := range 10 {
		at := t0.Add(time.Duration(h)*time.Hour + 30*time.Second)
		pos := uint64(60 * h)
		id, snap, err := engine.Backup(ctx, r, bytes.NewReader(m.at(at)), engine.BackupOptions{
			Stream: "db", Format: engine.FormatNDJSON, Time: at, Position: &pos, Parent: parent, PackSize: 64 << 10,
			Describe: func(s *repo.Snapshot) { s.KeyField, s.Sorted = "_id", true },
		})
		if err != nil {
			t.Fatal(err)
		}
		parent = &index.SnapshotRef{ID: id, Snapshot: snap}
	}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "db"})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range m.events {
		if err := w.Append(&e); err != nil {
			t.Fatal(err)
		}
		if (i+1)%25 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}

	now := m.eventTime(600) // the newest event
	window := 3 * time.Hour
	cutoff := now.Add(-window)
	instants := []time.Time{cutoff, cutoff.Add(time.Nanosecond), t0.Add(7*time.Hour + 30*time.Second),
		t0.Add(7*time.Hour + 45*time.Minute + 10*time.Second), t0.Add(8*time.Hour + 59*time.Minute), now}
	cat := loadCatalog(t, r)
	for _, at := range instants[:2] {
		if !bytes.Equal(restoreAt(t, r, cat, at), m.at(at)) {
			t.Fatalf("restore at %s before forget differs from the model", index.FormatTime(at))
		}
	}

	policy := engine.ForgetPolicy{KeepWithinPITR: window}
	dry, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: "db", Policy: policy, Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(loadCatalog(t, r).Snapshots); n != 10 {
		t.Fatalf("dry run removed snapshots: %d left", n)
	}
	res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: "db", Policy: policy, Now: now, DryRun: false})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keep) != 4 || len(res.Remove) != 6 || len(res.RemoveSegments) != 14 || len(res.Deferred) != 0 {
		t.Fatalf("kept %d, removed %d snapshots and %d segments, deferred %q; want 4, 6, 14 (positions 1-350)",
			len(res.Keep), len(res.Remove), len(res.RemoveSegments), res.Deferred)
	}
	if len(dry.Remove) != len(res.Remove) || len(dry.RemoveSegments) != len(res.RemoveSegments) {
		t.Fatal("the dry run decided otherwise")
	}

	verify := func(stage string) {
		t.Helper()
		cat := loadCatalog(t, r)
		if n := len(cat.Snapshots); n != 4 {
			t.Fatalf("%s: %d snapshots, want 4", stage, n)
		}
		if first := cat.Log("db").Segments[0]; first.First != 351 {
			t.Fatalf("%s: the log starts at %d, want 351", stage, first.First)
		}
		cov := cat.Coverage("db")
		if !slices.ContainsFunc(cov.Windows, func(w index.Window) bool { return !w.From.After(cutoff) && !w.To.Before(now) }) {
			t.Fatalf("%s: coverage %+v does not include [%s, %s]", stage, cov.Windows, index.FormatTime(cutoff), index.FormatTime(now))
		}
		for _, at := range instants {
			if !bytes.Equal(restoreAt(t, r, cat, at), m.at(at)) {
				t.Fatalf("%s: restore at %s differs from the model", stage, index.FormatTime(at))
			}
		}
		if _, err := cat.Plan("db", index.Target{Time: t0.Add(5 * time.Hour)}); !errors.Is(err, index.ErrNotRestorable) {
			t.Fatalf("%s: a forgotten instant still plans: %v", stage, err)
		}
	}
	verify("after forget")

	clock := now
	o := engine.PruneOptions{Now: func() time.Time { return clock }}
	first, err := engine.Prune(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Hour)
	second, err := engine.Prune(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Marked < 14 || first.Deleted != 0 || second.Deleted != first.Marked {
		t.Fatalf("prune: first marked %d deleted %d, second deleted %d", first.Marked, first.Deleted, second.Deleted)
	}
	verify("after prune")
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 || rep.Segments != 10 {
		t.Fatalf("check after prune: %v, problems %q, %d segments", err, rep.Problems, rep.Segments)
	}
}
