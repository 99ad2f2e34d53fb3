package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/server/wire"
)

// reencryptFixture is a repository with two passwords holding two
// snapshots (the second deduplicated against the first) and a log of
// several segments, all written under generation 0, plus the bytes of the
// key files as they were (what someone may have kept).
type reencryptFixture struct {
	fs      *faulty.Store
	want    map[time.Time][]byte // snapshot time → content
	events  []repo.Event
	oldKeys map[string][]byte
}

const reStream, reLog = "db", "ev"

func newReencryptFixture(t *testing.T, inner repo.Store) *reencryptFixture {
	t.Helper()
	fs, r, _, day0 := rotateFixtureOn(t, inner)
	f := &reencryptFixture{fs: fs, want: map[time.Time][]byte{}, oldKeys: map[string][]byte{}}
	s0 := latest(t, r, reStream)
	f.want[s0.Time] = day0
	day1 := ndjson(800, 41, map[int]int{3: 1})
	s1 := backup(t, r, day1, BackupOptions{Stream: reStream, Format: FormatNDJSON, Parent: s0, Time: s0.Time.Add(time.Hour)})
	f.want[s1.Time] = day1
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: reLog, SegmentBytes: 300, FrameSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	f.events = testEvents(60)
	for i := range f.events {
		if err := w.Append(&f.events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.List(t.Context(), repo.KeysPrefix, func(oi repo.ObjectInfo) error {
		b, err := fs.Get(t.Context(), oi.Name)
		f.oldKeys[oi.Name] = b
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

// intact checks what must hold after any kill: every password opens the
// repository, every snapshot restores byte-exact, and the log reads back
// every event in order, each segment chained to the one before.
func (f *reencryptFixture) intact(t *testing.T, name string) {
	t.Helper()
	for _, pw := range [][]byte{testPassword, otherPassword} {
		r, err := repo.Open(t.Context(), f.fs, pw)
		if err != nil {
			t.Fatalf("%s: open with %q: %v", name, pw, err)
		}
		cat, err := index.LoadCatalog(t.Context(), r)
		if err != nil {
			t.Fatalf("%s: catalog: %v", name, err)
		}
		found := map[time.Time]bool{}
		for _, s := range cat.Snapshots {
			want, ok := f.want[s.Time]
			if !ok {
				t.Fatalf("%s: unexpected snapshot %s at %v", name, s.ID.Short(), s.Time)
			}
			if got := restore(t, r, s); !bytes.Equal(got, want) {
				t.Fatalf("%s: snapshot %s does not restore byte-exact", name, s.ID.Short())
			}
			found[s.Time] = true
		}
		if len(found) != len(f.want) {
			t.Fatalf("%s: %d of %d snapshots found", name, len(found), len(f.want))
		}
		f.logIntact(t, name, r, cat.Logs[reLog])
	}
}

// logIntact restores the log the way a point-in-time restore does, at
// several instants by position and by time: planned by the catalog from
// the names alone, its manifests loaded and chained (LoadPlanSegments),
// its events read (EachPlanEvent), and compared with what was captured.
// A kill between storing a re-encrypted manifest and deleting the one it
// replaces leaves both (FORMAT.md §4.1): restores read the replacement.
func (f *reencryptFixture) logIntact(t *testing.T, name string, r *repo.Repository, l *index.Log) {
	t.Helper()
	f.logIntactStream(t, name, r, l)
}

// logIntactStream checks one log against f.events. The stream has no
// snapshot of its own: the plans start from a base at position 0, which
// only the catalog sees (no restore reads it).
func (f *reencryptFixture) logIntactStream(t *testing.T, name string, r *repo.Repository, l *index.Log) {
	t.Helper()
	if l == nil {
		t.Fatalf("%s: the log is gone", name)
	}
	if len(l.Conflicts) > 0 {
		t.Fatalf("%s: log conflicts %q", name, l.Conflicts)
	}
	// Coverage decided on the manifests (strata coverage) agrees.
	if d, err := DecideTwins(t.Context(), r, l); err != nil || d != l {
		t.Fatalf("%s: twins decided as an overlap (%v): %v", name, err, d.Conflicts)
	}
	zero := uint64(0)
	base := index.SnapshotRef{ID: repo.ID{1}, Snapshot: &repo.Snapshot{Stream: l.Stream, Time: time.Unix(0, f.events[0].Time-1), Position: &zero}}
	cat := &index.Catalog{Snapshots: []index.SnapshotRef{base}, Logs: map[string]*index.Log{l.Stream: l}}
	if cov := cat.Coverage(l.Stream); len(cov.Conflicts) > 0 || len(cov.Gaps) > 0 || len(cov.Windows) != 1 || cov.Windows[0].ToPos != uint64(len(f.events)) {
		t.Fatalf("%s: coverage %+v", name, cov)
	}
	n := len(f.events)
	var targets []index.Target
	for _, i := range []int{0, n / 3, n/2 + 1, n - 2, n - 1} {
		targets = append(targets, index.Target{Position: f.events[i].Seq, ByPos: true}, index.Target{Time: time.Unix(0, f.events[i].Time)})
	}
	for _, tg := range targets {
		p, err := cat.Plan(l.Stream, tg)
		if err != nil {
			t.Fatalf("%s: plan at %s: %v", name, tg, err)
		}
		var want []repo.Event
		for _, e := range f.events {
			if p.Applies(e.Seq, e.Time) {
				want = append(want, e)
			}
		}
		sameEvents(t, planEvents(t, name, r, p), want)
		// As an index server sends it (PROTOCOL.md §5): the same keys,
		// twins included, in the plan log, and the plan untrusted.
		if p.Segments[len(p.Segments)-1].Last == uint64(n) && !tg.ByPos {
			continue // no proof of the end at the newest event: refused untrusted
		}
		keys, err := wire.DecodePlanLog(l.Stream, p.From, wire.AppendPlanLog(nil, p.From, p.Segments))
		if err != nil {
			t.Fatal(err)
		}
		u := *p
		u.Segments, u.Untrusted = keys, true
		sameEvents(t, planEvents(t, name, r, &u), want)
	}
}

// planEvents runs a plan's log as a restore does and returns its events.
func planEvents(t *testing.T, name string, r *repo.Repository, p *index.Plan) []repo.Event {
	t.Helper()
	segs, err := LoadPlanSegments(t.Context(), r, p)
	if err != nil {
		t.Fatalf("%s: load the plan at %s: %v", name, p.Target, err)
	}
	var got []repo.Event
	if err := EachPlanEvent(t.Context(), r, p, segs, func(_ repo.SegmentKey, e *repo.Event) error {
		c := *e
		c.Key, c.Value = append([]byte{}, e.Key...), append([]byte(nil), e.Value...)
		if len(c.Value) == 0 {
			c.Value = nil
		}
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatalf("%s: read the log at %s: %v", name, p.Target, err)
	}
	return got
}

// sealedUnder checks that every sealed object and every pack is sealed
// under generation g, and that the keyring holds only 0 and g.
func (f *reencryptFixture) sealedUnder(t *testing.T, g uint32) {
	t.Helper()
	r := openWith(t, f.fs, testPassword)
	if got := r.Generations(); len(got) != 2 || got[0] != 0 || got[1] != g {
		t.Fatalf("keyring generations %v, want [0 %d]", got, g)
	}
	n := 0
	for _, prefix := range []string{repo.IndexPrefix, repo.SnapshotsPrefix, repo.LogsPrefix, repo.CheckpointsPrefix, repo.RekeyPrefix} {
		for _, name := range objectNames(t, f.fs, prefix) {
			if strings.HasPrefix(name, repo.RekeyPrefix) {
				t.Fatalf("journal record %s left after the re-encryption", name)
			}
			got, err := r.ObjectGeneration(t.Context(), name)
			if err != nil || got != g {
				t.Fatalf("%s: generation %d (%v), want %d", name, got, err, g)
			}
			n++
		}
	}
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	packs := map[repo.ID]bool{}
	for _, s := range cat.Snapshots {
		for id := range snapshotPacks(t, r, s) {
			packs[id] = true
		}
	}
	for _, l := range cat.Logs {
		for _, k := range l.All() {
			seg, err := r.LoadSegment(t.Context(), k)
			if err != nil {
				t.Fatal(err)
			}
			packs[seg.Pack.ID] = true
			if got, err := r.PackGeneration(t.Context(), seg.Pack.Info()); err != nil || got != g {
				t.Fatalf("segment pack %s: generation %d (%v), want %d", seg.Pack.ID.Short(), got, err, g)
			}
		}
	}
	if stored := packsInStore(t, f.fs); len(stored) != len(packs) {
		t.Fatalf("%d packs stored, %d referenced: replaced packs were left", len(stored), len(packs))
	}
	if n == 0 {
		t.Fatal("no sealed objects found")
	}
}

// reencrypt runs Reencrypt on a fresh open of the store at the instant now.
func (f *reencryptFixture) reencrypt(t *testing.T, now time.Time) (*ReencryptResult, error) {
	t.Helper()
	r := openWith(t, f.fs, testPassword)
	return Reencrypt(t.Context(), r, ReencryptOptions{Passwords: [][]byte{testPassword, otherPassword}, Now: func() time.Time { return now }})
}

// rerunUntilDone runs Reencrypt, two hours after from and then two hours
// after each run, until a run reports it done, and fails t (naming what)
// when a run fails or most runs were not enough. It returns every run's
// result, in order.
func (f *reencryptFixture) rerunUntilDone(t *testing.T, what string, from time.Time, most int) []*ReencryptResult {
	t.Helper()
	var results []*ReencryptResult
	now := from
	for i := 0; len(results) == 0 || !results[len(results)-1].Done; i++ {
		if i == most {
			t.Fatalf("%s: not done after %d reruns: %+v", what, i, results[len(results)-1])
		}
		now = now.Add(2 * time.Hour)
		res, err := f.reencrypt(t, now)
		if err != nil {
			t.Fatalf("%s: rerun: %v", what, err)
		}
		results = append(results, res)
	}
	return results
}

func TestReencrypt(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	t0 := time.Now()
	// A dry run counts and changes nothing.
	puts, dels := f.fs.Calls("Put"), f.fs.Calls("Delete")
	dry, err := Reencrypt(t.Context(), openWith(t, f.fs, testPassword), ReencryptOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.fs.Calls("Put") != puts || f.fs.Calls("Delete") != dels {
		t.Fatal("a dry run wrote to the store")
	}
	if dry.Generation != 1 || dry.Packs == 0 || dry.PackBytes == 0 || dry.Indexes == 0 || dry.Snapshots != 2 || dry.Segments < 3 {
		t.Fatalf("dry run: %+v", dry)
	}
	res, err := f.reencrypt(t, t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done || len(res.Waiting) == 0 || res.Rotated == nil || res.Generation != 1 {
		t.Fatalf("first run: %+v, want a rotation to 1 waiting for the grace period", res)
	}
	if res.Packs != dry.Packs || res.Indexes != dry.Indexes || res.Snapshots != dry.Snapshots || res.Segments != dry.Segments {
		t.Fatalf("the run rewrote %+v, the dry run said %+v", res, dry)
	}
	f.intact(t, "after the first run")
	checkClean(t, openWith(t, f.fs, otherPassword), true) // a re-encryption under way is no damage
	// Within the grace period nothing more happens.
	if res, err = f.reencrypt(t, t0.Add(30*time.Minute)); err != nil || res.Done || res.Rotated != nil || !res.Resumed {
		t.Fatalf("second run within the grace period: %+v, %v", res, err)
	}
	res, err = f.reencrypt(t, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.Retired == nil || len(res.Retired.Retired) != 0 || res.Prune == nil || res.Prune.Deleted == 0 {
		t.Fatalf("run after the grace period: %+v", res)
	}
	f.intact(t, "done")
	f.sealedUnder(t, 1)
	checkClean(t, openWith(t, f.fs, otherPassword), true)
	// A second re-encryption retires generation 1.
	if res, err = f.reencrypt(t, t0.Add(3*time.Hour)); err != nil || res.Generation != 2 {
		t.Fatalf("second re-encryption: %+v, %v", res, err)
	}
	if res, err = f.reencrypt(t, t0.Add(5*time.Hour)); err != nil || !res.Done || len(res.Retired.Retired) != 1 || res.Retired.Retired[0] != 1 {
		t.Fatalf("second re-encryption, after the grace period: %+v, %v", res, err)
	}
	f.intact(t, "done twice")
	f.sealedUnder(t, 2)
	w := openWith(t, f.fs, testPassword)
	day2 := ndjson(800, 43, map[int]int{9: 1})
	s2 := backup(t, w, day2, BackupOptions{Stream: reStream, Format: FormatNDJSON, Parent: latest(t, w, reStream)})
	f.want[s2.Time] = day2
	f.intact(t, "a backup after")
	checkClean(t, w, true)
}

// TestReencryptOldKeyReadsNothing: the master key and generation 1 of a
// key file kept from before open nothing the repository now stores but
// the config (FORMAT.md §4.1, "What re-encryption protects").
func TestReencryptOldKeyReadsNothing(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	t0 := time.Now()
	before := openWith(t, f.fs, testPassword) // holds generation 0 only
	if _, err := f.reencrypt(t, t0); err != nil {
		t.Fatal(err)
	}
	if res, err := f.reencrypt(t, t0.Add(2*time.Hour)); err != nil || !res.Done {
		t.Fatalf("%+v, %v", res, err)
	}
	for _, prefix := range []string{repo.IndexPrefix, repo.SnapshotsPrefix, repo.LogsPrefix} {
		for _, name := range objectNames(t, f.fs, prefix) {
			if _, err := before.ObjectGeneration(t.Context(), name); !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("%s opens with the keys from before the rotation (%v)", name, err)
			}
		}
	}
}

// TestReencryptKilled fails each store write of a re-encryption in turn
// (the call not reaching the store, or landing and its reply lost), then
// checks that every password opens the repository and every snapshot and
// the log read back exactly, and that rerunning completes it.
func TestReencryptKilled(t *testing.T) {
	t.Run("mem", func(t *testing.T) { testReencryptKilled(t, 1, func() repo.Store { return mem.New() }) })
	// The local directory store (temporary file, rename) at every
	// seventh call: the same steps, on files.
	t.Run("local", func(t *testing.T) {
		testReencryptKilled(t, 7, func() repo.Store {
			s, err := local.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func testReencryptKilled(t *testing.T, step int, newStore func() repo.Store) {
	type fault struct {
		method string
		cut    bool
	}
	t0 := time.Now()
	twinStates := 0 // kills that left a replaced segment manifest beside its replacement
	defer func() {
		if !t.Failed() && twinStates == 0 {
			t.Error("no kill left a segment manifest beside its replacement: the case FORMAT.md §4.1 describes went untested")
		}
	}()
	// The two runs (rewrite, then retire after the grace period) are one
	// sequence of store calls: a kill at call n of either.
	for _, fl := range []fault{{"Put", false}, {"Put", true}, {"Delete", false}} {
		for n := 1; ; n += step {
			name := fmt.Sprintf("%s %d cut=%v", fl.method, n, fl.cut)
			f := newReencryptFixture(t, newStore())
			f.fs.Reset()
			if fl.cut {
				f.fs.CutOnce(fl.method, n)
			} else {
				f.fs.FailOnce(fl.method, n, nil)
			}
			_, err1 := f.reencrypt(t, t0)
			killed := f.fs.Calls(fl.method) >= n
			if killed {
				// Before any rerun: what the kill left restores.
				f.intact(t, name+", killed in the first run")
				// check agrees about the log: a replaced manifest beside
				// its replacement is a note, neither damage nor an overlap.
				// (A kill inside the rotation leaves two config copies that
				// differ, which check reports until the rerun.)
				rep, err := Check(t.Context(), openWith(t, f.fs, otherPassword), CheckOptions{})
				if err != nil {
					t.Fatalf("%s: check: %v", name, err)
				}
				for _, p := range rep.Problems {
					if strings.HasPrefix(p, "log ") {
						t.Fatalf("%s: check reports %q", name, p)
					}
				}
				if tw := twinsLeft(t, f.fs); tw > 0 && !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "re-encryption cut short") }) {
					t.Fatalf("%s: check does not note the replaced segment manifest: %q", name, rep.Notes)
				}
				twinStates += twinsLeft(t, f.fs)
			}
			res, err2 := f.reencrypt(t, t0.Add(2*time.Hour))
			fired := f.fs.Calls(fl.method) >= n
			if fired && !killed {
				f.intact(t, name+", killed in the second run")
			}
			f.fs.Reset()
			if !fired {
				if n < 20 {
					t.Fatalf("%s: only %d calls of %s", name, n-1, fl.method)
				}
				t.Logf("%s cut=%v: failed calls 1 to %d, every %d", fl.method, fl.cut, n-1, step)
				break
			}
			if err1 == nil && err2 == nil && res.Done && !fl.cut {
				t.Fatalf("%s: both runs succeeded though a store call failed", name)
			}
			f.intact(t, name)
			// Reruns complete it: at most two more (one to rewrite what
			// the failed run left, one after its grace period).
			if res == nil || !res.Done {
				f.rerunUntilDone(t, name, t0.Add(2*time.Hour), 4)
			}
			f.intact(t, name+", rerun")
			r := openWith(t, f.fs, otherPassword)
			f.sealedUnder(t, r.Config().KeyGeneration)
			checkClean(t, r, false)
			if n > 400 {
				t.Fatalf("%s: more store calls than expected", name)
			}
		}
	}
}

// twinsLeft counts the segment manifests stored beside another of the same
// name but for the ID: the replaced half of a pair a killed re-encryption
// left (FORMAT.md §4.1).
func twinsLeft(t *testing.T, s repo.Store) int {
	t.Helper()
	logs, err := index.ListLogs(t.Context(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range logs {
		n += len(l.Twins)
	}
	return n
}

// FuzzDecodeRekeyRecord: a journal record's decoder never panics, and what
// it accepts encodes back to a record it accepts again.
func FuzzDecodeRekeyRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"generation":2,"kind":"start","time":"2026-12-05T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"generation":2,"kind":"index","old":"index/` + strings.Repeat("a", 64) + `","new":"index/` + strings.Repeat("b", 64) + `"}`))
	f.Add([]byte(`{"version":1,"kind":"snapshot","old":"snapshots/x","new":"index/y"}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		rec, err := decodeRekeyRecord("rekey/x", p)
		if err != nil {
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRekeyRecord("rekey/x", b); err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
	})
}

func TestDecodeRekeyRecord(t *testing.T) {
	ok := `{"version":1,"generation":2,"kind":"segment","old":"logs/s/@00000000000000000001-00000000000000000002.1767225601500000000-1767225601500000000.` + strings.Repeat("a", 64) + `","new":"logs/s/@00000000000000000001-00000000000000000002.1767225601500000000-1767225601500000000.` + strings.Repeat("b", 64) + `"}`
	if _, err := decodeRekeyRecord("rekey/x", []byte(ok)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`nope`, `{"version":2,"kind":"start"}`, `{"version":1,"kind":"other"}`,
		`{"version":1,"kind":"index","old":"snapshots/` + strings.Repeat("a", 64) + `","new":"index/` + strings.Repeat("b", 64) + `"}`,
		`{"version":1,"kind":"index","old":"copies/index/` + strings.Repeat("a", 64) + `","new":"index/` + strings.Repeat("b", 64) + `"}`} {
		if _, err := decodeRekeyRecord("rekey/x", []byte(bad)); !errors.Is(err, repo.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestReencryptConcurrentWriters: writers that opened the repository before
// the rotation keep sealing under generation 0. What they store is
// rewritten by a later run, and the old generation is not retired while a
// capture holding its stream's lease has not shown that it writes under
// the new one; once it stops, a run rewrites its last segments and a run
// after the grace period retires. Every snapshot and every event reads
// back exactly.
func TestReencryptConcurrentWriters(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	ctx := t.Context()
	t0 := time.Now()
	old := openWith(t, f.fs, testPassword)
	lease, err := AcquireLease(ctx, f.fs, LeaseOptions{Stream: "cap", Host: "h", PID: 1, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w, err := OpenLog(ctx, old, LogOptions{Stream: "cap", SegmentBytes: 300, FrameSize: 128, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(90)
	appendSome := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := w.Append(&events[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendSome(0, 30)
	if res, err := f.reencrypt(t, t0); err != nil || res.Generation != 1 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	// After the rotation: the old writers still seal under generation 0.
	appendSome(30, 60)
	day := ndjson(800, 47, map[int]int{7: 1})
	s := backup(t, old, day, BackupOptions{Stream: reStream, Format: FormatNDJSON, Time: t0.Add(-time.Minute)})
	f.want[s.Time] = day
	res, err := f.reencrypt(t, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Done || res.Snapshots == 0 || res.Segments == 0 || !strings.Contains(strings.Join(res.Waiting, "\n"), `"cap"`) {
		t.Fatalf("second run, with the capture still running under generation 0: %+v", res)
	}
	appendSome(60, 90)
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Hour)
	for i := 0; !res.Done; i++ {
		if i == 3 {
			t.Fatalf("not done after the capture stopped: %+v", res)
		}
		now = now.Add(2 * time.Hour)
		if res, err = f.reencrypt(t, now); err != nil {
			t.Fatal(err)
		}
	}
	f.intact(t, "done")
	f.sealedUnder(t, 1)
	r := openWith(t, f.fs, otherPassword)
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	f.events = events
	f.logIntactStream(t, "cap", r, cat.Logs["cap"])
	checkClean(t, r, true)
}

// TestReencryptRefusesDamage: a snapshot manifest damaged in both copies
// stops the re-encryption with ErrCorrupt and a hint to repair first,
// rather than sealing damage under the new key.
func TestReencryptRefusesDamage(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	t0 := time.Now()
	name := objectNames(t, f.fs, repo.SnapshotsPrefix)[0]
	b, err := f.fs.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	for _, n := range []string{name, repo.CopyName(name)} {
		if err := f.fs.Put(t.Context(), n, b); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.reencrypt(t, t0)
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "repair") {
		t.Fatalf("re-encrypting a damaged repository: %v", err)
	}
}

// TestReencryptDamagedJournal: a journal record damaged between runs is
// skipped and counted; the runs still finish and everything restores.
func TestReencryptDamagedJournal(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	t0 := time.Now()
	if _, err := f.reencrypt(t, t0); err != nil {
		t.Fatal(err)
	}
	recs := objectNames(t, f.fs, repo.RekeyPrefix)
	if len(recs) < 3 {
		t.Fatalf("%d journal records after a run", len(recs))
	}
	b, err := f.fs.Get(t.Context(), recs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := f.fs.Put(t.Context(), recs[0], b); err != nil {
		t.Fatal(err)
	}
	results := f.rerunUntilDone(t, "after a damaged journal record", t0, 3)
	if results[0].JournalDamaged != 1 {
		t.Fatalf("damaged records counted: %d, want 1", results[0].JournalDamaged)
	}
	f.intact(t, "done")
	f.sealedUnder(t, openWith(t, f.fs, testPassword).Config().KeyGeneration)
	checkClean(t, openWith(t, f.fs, testPassword), true)
}
