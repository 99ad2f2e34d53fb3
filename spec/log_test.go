package spec

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

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
