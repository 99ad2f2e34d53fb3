package ndjson_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/ndjson"
)

// model is the reference: a map from key to document, changed by events.
type model map[string]string

func (m model) apply(e modelEvent) {
	if e.op == "put" {
		m[e.key] = e.doc
	} else {
		delete(m, e.key)
	}
}

func (m model) export() []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(m[k])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

type modelEvent struct {
	seq      uint64
	ts       int64 // ns
	op, key  string
	doc      string
	jsonLine string
}

func randomKey(r *rand.Rand) string {
	switch r.IntN(10) {
	case 0:
		return strings.Repeat("long-", 200+r.IntN(200)) + fmt.Sprint(r.IntN(50))
	case 1:
		return []string{"héllo", "日本語", "emoji-😀", "quote\"back\\slash", "tab\tnl\n", "<&>"}[r.IntN(6)] + fmt.Sprint(r.IntN(20))
	}
	return fmt.Sprintf("k%04d", r.IntN(300))
}

func doc(key string, v int) string {
	k, _ := json.Marshal(key)
	return fmt.Sprintf(`{"_id":%s,"v":%d,"pad":"%s"}`, k, v, strings.Repeat("x", v%50))
}

// history makes n events: puts and deletes (some of missing keys) with
// times that often repeat.
func history(r *rand.Rand, n int, start int64) []modelEvent {
	var evs []modelEvent
	ts := start
	for i := 1; i <= n; i++ {
		if r.IntN(3) > 0 {
			ts += int64(r.IntN(3)) * 500_000_000 // 0, 0.5 or 1 s: equal times are common
		}
		e := modelEvent{seq: uint64(i), ts: ts, key: randomKey(r), op: "put"}
		if r.IntN(4) == 0 {
			e.op = "delete"
		} else {
			e.doc = doc(e.key, i)
		}
		k, _ := json.Marshal(e.key)
		if e.op == "put" {
			e.jsonLine = fmt.Sprintf(`{"seq":%d,"ts":%d.%09d,"op":"put","key":%s,"doc":%s}`, e.seq, ts/1e9, ts%1e9, k, e.doc)
		} else {
			e.jsonLine = fmt.Sprintf(`{"seq":%d,"ts":"%s","op":"delete","key":%s}`, e.seq, time.Unix(0, ts).UTC().Format(time.RFC3339Nano), k)
		}
		evs = append(evs, e)
	}
	return evs
}

func appendAll(t *testing.T, w *engine.LogWriter, evs []modelEvent) {
	t.Helper()
	for _, me := range evs {
		e, err := ndjson.ParseEvent([]byte(me.jsonLine))
		if err != nil {
			t.Fatalf("parse %s: %v", me.jsonLine, err)
		}
		if err := w.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
}

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backupAt(t *testing.T, r *repo.Repository, stream string, export []byte, at int64, pos uint64) {
	t.Helper()
	oc := ndjson.NewOrderChecker("_id")
	oc.Write(export)
	p := pos
	_, _, err := engine.Backup(context.Background(), r, bytes.NewReader(export), engine.BackupOptions{
		Stream: stream, Format: engine.FormatNDJSON, Time: time.Unix(0, at), Position: &p,
		Describe: func(s *repo.Snapshot) { s.KeyField = "_id"; s.Sorted, _ = oc.Sorted() },
		// A key map with small leaves, so that the record-level tests
		// cross leaves (FORMAT.md §26).
		KeyMap: ndjson.KeyMapSource("_id"), KeyMapLeaf: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func restoreAt(t *testing.T, r *repo.Repository, stream string, tg index.Target) ([]byte, error) {
	t.Helper()
	cat, err := index.LoadCatalog(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan(stream, tg)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = ndjson.RestoreAt(context.Background(), r, p, &out, engine.RestoreOptions{})
	return out.Bytes(), err
}

// TestRestoreAtMatchesModel is the property: for random histories, random
// snapshot points and random targets (by time and by position), a
// point-in-time restore equals the reference model's state at the target.
func TestRestoreAtMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			r := newRepo(t)
			const start = int64(1767225600e9)
			evs := history(rng, 400+rng.IntN(400), start+1e9)
			// Snapshots at position 0 and at a few random positions, with
			// the time of their last event; one snapshot is unsorted.
			points := []int{0, rng.IntN(len(evs)), rng.IntN(len(evs))}
			for i, p := range points {
				m := model{}
				for _, e := range evs[:p] {
					m.apply(e)
				}
				at := start
				if p > 0 {
					at = evs[p-1].ts
				}
				export := m.export()
				if i == 2 { // reverse the lines: the restore must sort in memory
					lines := bytes.SplitAfter(export, []byte("\n"))
					slices.Reverse(lines)
					export = bytes.Join(lines, nil)
				}
				backupAt(t, r, "s", export, at, uint64(p))
			}
			// Capture in two sessions that overlap (re-sent events are
			// skipped), with small segments so plans span many of them.
			split := rng.IntN(len(evs))
			w, err := engine.OpenLog(context.Background(), r, engine.LogOptions{Stream: "s", SegmentBytes: 4096, FrameSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, w, evs[:split])
			if _, err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w, err = engine.OpenLog(context.Background(), r, engine.LogOptions{Stream: "s", SegmentBytes: 4096, FrameSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, w, evs[max(0, split-50):])
			st, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(min(50, split)); st.Skipped != want {
				t.Errorf("skipped %d re-sent events, want %d", st.Skipped, want)
			}

			check := func(tg index.Target, want []byte) {
				t.Helper()
				got, err := restoreAt(t, r, "s", tg)
				if err != nil {
					t.Fatalf("restore at %s: %v", tg, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("restore at %s: %d bytes differ from the model's %d", tg, len(got), len(want))
				}
			}
			for range 12 {
				// A time: often exactly an event's time, sometimes between.
				e := evs[rng.IntN(len(evs))]
				at := e.ts - int64(rng.IntN(2))*250_000_000
				m := model{}
				for _, e := range evs {
					if e.ts <= at {
						m.apply(e)
					}
				}
				check(index.Target{Time: time.Unix(0, at)}, m.export())
				// A position.
				pos := rng.IntN(len(evs) + 1)
				m = model{}
				for _, e := range evs[:pos] {
					m.apply(e)
				}
				check(index.Target{Position: uint64(pos), ByPos: true}, m.export())
			}
			// Before the first snapshot: refused.
			if _, err := restoreAt(t, r, "s", index.Target{Time: time.Unix(0, start-1)}); !errors.Is(err, index.ErrNotRestorable) {
				t.Errorf("restore before the first snapshot: %v, want ErrNotRestorable", err)
			}
			// After the newest event: refused.
			if _, err := restoreAt(t, r, "s", index.Target{Time: time.Unix(0, evs[len(evs)-1].ts+1)}); !errors.Is(err, index.ErrNotRestorable) {
				t.Errorf("restore after the newest event: %v, want ErrNotRestorable", err)
			}
		})
	}
}

// TestGapRefusesUntilSnapshot: events lost in a gap make instants after it
// unrestorable until a snapshot after the gap exists, and the error names
// the gap and the nearest restorable instants.
func TestGapRefusesUntilSnapshot(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	r := newRepo(t)
	const start = int64(1767225600e9)
	evs := history(rng, 300, start+1e9)
	backupAt(t, r, "g", nil, start, 0)
	var gaps [][2]uint64
	w, err := engine.OpenLog(context.Background(), r, engine.LogOptions{Stream: "g", SegmentBytes: 4096,
		OnGap: func(from, to uint64) { gaps = append(gaps, [2]uint64{from, to}) }})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, w, evs[:100])
	appendAll(t, w, evs[120:]) // positions 101-120 never arrive
	if st, err := w.Close(); err != nil || st.Gaps != 1 {
		t.Fatalf("close: %+v, %v", st, err)
	}
	if len(gaps) != 1 || gaps[0] != [2]uint64{101, 120} {
		t.Errorf("OnGap saw %v, want [[101 120]]", gaps)
	}
	cat, _ := index.LoadCatalog(context.Background(), r)
	cov := cat.Coverage("g")
	if len(cov.Gaps) != 1 || cov.Gaps[0].FromPos != 101 || cov.Gaps[0].ToPos != 120 {
		t.Errorf("coverage gaps %+v, want positions 101-120", cov.Gaps)
	}
	late := time.Unix(0, evs[250].ts)
	_, err = restoreAt(t, r, "g", index.Target{Time: late})
	if !errors.Is(err, index.ErrNotRestorable) || !strings.Contains(err.Error(), "positions 101-120 missing") {
		t.Fatalf("restore past the gap: %v", err)
	}
	// Before the gap still works.
	if _, err := restoreAt(t, r, "g", index.Target{Time: time.Unix(0, evs[50].ts)}); err != nil {
		t.Fatalf("restore before the gap: %v", err)
	}
	// A snapshot after the gap (its state is the source's, which has the
	// lost events) makes later instants restorable again.
	m := model{}
	for _, e := range evs[:200] {
		m.apply(e)
	}
	backupAt(t, r, "g", m.export(), evs[199].ts, 200)
	for _, e := range evs[200:] {
		if e.ts <= late.UnixNano() {
			m.apply(e)
		}
	}
	got, err := restoreAt(t, r, "g", index.Target{Time: late})
	if err != nil || !bytes.Equal(got, m.export()) {
		t.Fatalf("restore after the new snapshot: err %v, equal %v", err, bytes.Equal(got, m.export()))
	}
}

// TestPartitionsAreIndependent: restoring one partition reads nothing of
// another, even when the other's objects are gone.
func TestPartitionsAreIndependent(t *testing.T) {
	r := newRepo(t)
	rng := rand.New(rand.NewPCG(3, 3))
	const start = int64(1767225600e9)
	for _, s := range []string{"shop/users", "shop/orders"} {
		backupAt(t, r, s, nil, start, 0)
		w, err := engine.OpenLog(context.Background(), r, engine.LogOptions{Stream: s})
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, w, history(rng, 100, start+1e9))
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Remove every manifest of shop/orders' log.
	st := r.Store()
	var names []string
	st.List(context.Background(), repo.StreamLogPrefix("shop/orders"), func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil })
	for _, n := range names {
		st.Delete(context.Background(), n)
	}
	if len(names) == 0 {
		t.Fatal("no segments listed for shop/orders")
	}
	cat, _ := index.LoadCatalog(context.Background(), r)
	if n, _ := cat.Log("shop/users").Newest(); n.Last != 100 {
		t.Fatalf("shop/users log ends at %d", n.Last)
	}
	if _, err := restoreAt(t, r, "shop/users", index.Target{Position: 100, ByPos: true}); err != nil {
		t.Fatalf("restore shop/users: %v", err)
	}
	if _, err := restoreAt(t, r, "shop/orders", index.Target{Position: 100, ByPos: true}); !errors.Is(err, index.ErrNotRestorable) {
		t.Fatalf("restore shop/orders without its log: %v", err)
	}
}
