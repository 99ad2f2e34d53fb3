package spec

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// TestLogSegmentVector re-encodes FORMAT.md 15's event records and segment
// name from the fields the text gives, and decodes them back.
func TestLogSegmentVector(t *testing.T) {
	v := vector(t, "log-segment")
	parse := func(field string, op repo.EventOp) repo.Event {
		f := strings.SplitN(v[field], " ", 4)
		seq, _ := strconv.ParseUint(f[0], 10, 64)
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		e := repo.Event{Op: op, Seq: seq, Time: ts, Key: []byte(f[2])}
		if len(f) == 4 {
			e.Value = []byte(f[3])
		}
		return e
	}
	evs := []repo.Event{parse("put", repo.OpPut), parse("delete", repo.OpDelete)}
	var b []byte
	for i := range evs {
		b = repo.AppendEvent(b, &evs[i])
	}
	if got := hex.EncodeToString(b); got != v["records hex"] {
		t.Errorf("records %s, FORMAT.md says %s", got, v["records hex"])
	}
	n := 0
	err := repo.DecodeEvents("vector", unhex(t, v["records hex"]), func(e *repo.Event) error {
		w := evs[n]
		if e.Seq != w.Seq || e.Time != w.Time || e.Op != w.Op || string(e.Key) != string(w.Key) || string(e.Value) != string(w.Value) {
			t.Errorf("decoded %+v, want %+v", e, w)
		}
		n++
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("decode: %d events, %v", n, err)
	}
	id, err := repo.ParseID(v["manifest id"])
	if err != nil {
		t.Fatal(err)
	}
	k := repo.SegmentKey{Stream: "shop/users", First: evs[0].Seq, Last: evs[1].Seq, FirstTime: evs[0].Time, LastTime: evs[1].Time, ID: id}
	if k.Name() != v["name"] {
		t.Errorf("name %s, FORMAT.md says %s", k.Name(), v["name"])
	}
	if back, err := repo.ParseSegmentName(v["name"]); err != nil || back != k {
		t.Errorf("ParseSegmentName = %+v, %v", back, err)
	}
}

// TestTimeUncertainVector checks FORMAT.md 15's time-uncertain segment: its
// name, and which instants a plan through it refuses and which it restores.
func TestTimeUncertainVector(t *testing.T) {
	v := vector(t, "time-uncertain")
	num := func(f string) uint64 {
		n, err := strconv.ParseUint(v[f], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		return n
	}
	id, err := repo.ParseID(v["manifest id"])
	if err != nil {
		t.Fatal(err)
	}
	k := repo.SegmentKey{Stream: "kv", First: num("first"), Last: num("last"), FirstTime: int64(num("after")), LastTime: int64(num("before")), Uncertain: true, ID: id}
	if k.Name() != v["name"] {
		t.Errorf("name %s, FORMAT.md says %s", k.Name(), v["name"])
	}
	if back, err := repo.ParseSegmentName(v["name"]); err != nil || back != k {
		t.Errorf("ParseSegmentName = %+v, %v", back, err)
	}
	// The log: positions 1-4 before the span (the last at its start), then
	// the span, then one live event after it; a base at position 0.
	before := repo.SegmentKey{Stream: "kv", First: 1, Last: k.First - 1, FirstTime: k.FirstTime - 3e9, LastTime: k.FirstTime, ID: repo.ID{1}}
	after := repo.SegmentKey{Stream: "kv", First: k.Last + 1, Last: k.Last + 1, FirstTime: k.LastTime + 1e9, LastTime: k.LastTime + 1e9, ID: repo.ID{2}}
	zero := uint64(0)
	cat := &index.Catalog{
		Snapshots: []index.SnapshotRef{{ID: repo.ID{9}, Snapshot: &repo.Snapshot{Stream: "kv", Time: time.Unix(0, before.FirstTime-1e9), Position: &zero}}},
		Logs:      map[string]*index.Log{"kv": index.NewLog("kv", []repo.SegmentKey{before, k, after})},
	}
	for _, at := range strings.Fields(v["refused"]) {
		tm, _ := time.Parse(time.RFC3339Nano, at)
		if _, err := cat.Plan("kv", index.Target{Time: tm}); !errors.Is(err, index.ErrTimeUncertain) {
			t.Errorf("plan at %s: %v, want a time-uncertain refusal", at, err)
		}
	}
	for _, at := range strings.Fields(v["exact"]) {
		tm, _ := time.Parse(time.RFC3339Nano, at)
		if _, err := cat.Plan("kv", index.Target{Time: tm}); err != nil {
			t.Errorf("plan at %s: %v", at, err)
		}
	}
}

// TestFencingVector checks FORMAT.md 15's fencing example: which segments
// a log keeps and fences out, and the names of a segment with an epoch and
// of a lease generation.
func TestFencingVector(t *testing.T) {
	v := vector(t, "fencing")
	parse := func(field string) []repo.SegmentKey {
		var out []repo.SegmentKey
		for _, f := range strings.Fields(v[field]) {
			rng, ep, _ := strings.Cut(f, "/")
			a, b, _ := strings.Cut(rng, "-")
			first, _ := strconv.ParseUint(a, 10, 64)
			last, _ := strconv.ParseUint(b, 10, 64)
			epoch, _ := strconv.ParseUint(ep, 10, 64)
			out = append(out, repo.SegmentKey{Stream: "shop/users", First: first, Last: last, FirstTime: int64(first), LastTime: int64(last), Epoch: epoch, ID: repo.ID{byte(first), byte(epoch)}})
		}
		return out
	}
	spell := func(segs []repo.SegmentKey) string {
		var parts []string
		for _, k := range segs {
			parts = append(parts, strconv.FormatUint(k.First, 10)+"-"+strconv.FormatUint(k.Last, 10)+"/"+strconv.FormatUint(k.Epoch, 10))
		}
		return strings.Join(parts, " ")
	}
	l := index.NewLog("shop/users", parse("segments"))
	if got := spell(l.Segments); got != v["live"] {
		t.Errorf("live segments %s, FORMAT.md says %s", got, v["live"])
	}
	if got := spell(l.Fenced); got != v["fenced"] {
		t.Errorf("fenced segments %s, FORMAT.md says %s", got, v["fenced"])
	}
	id, err := repo.ParseID(v["manifest id"])
	if err != nil {
		t.Fatal(err)
	}
	t0, _ := strconv.ParseInt(v["first time"], 10, 64)
	t1, _ := strconv.ParseInt(v["last time"], 10, 64)
	k := repo.SegmentKey{Stream: "shop/users", First: 11, Last: 20, FirstTime: t0, LastTime: t1, Epoch: 3, ID: id}
	if k.Name() != v["name"] {
		t.Errorf("name %s, FORMAT.md says %s", k.Name(), v["name"])
	}
	if back, err := repo.ParseSegmentName(v["name"]); err != nil || back != k {
		t.Errorf("ParseSegmentName = %+v, %v", back, err)
	}
	if got := repo.LeaseName("shop/users", 3); got != v["lease name"] {
		t.Errorf("lease name %s, FORMAT.md says %s", got, v["lease name"])
	}
}
