package ops_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

func putJSON(t *testing.T, st repo.Store, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), name, b); err != nil {
		t.Fatal(err)
	}
}

func TestRecordReader(t *testing.T) {
	st := mem.New()
	ctx := t.Context()
	d := func(stream string, at time.Time, ok bool) {
		putJSON(t, st, repo.DrillName(at.UnixNano()), ops.DrillRecord{Stream: stream, Time: at, OK: ok, RTOSeconds: 3})
	}
	d("a", t0, true)
	d("a", t0.Add(time.Hour), false)
	d("b", t0.Add(30*time.Minute), true)
	putJSON(t, st, repo.ScrubName(t0.UnixNano()), ops.ScrubRecord{Time: t0, BadShards: 1})
	putJSON(t, st, repo.ScrubName(t0.Add(time.Hour).UnixNano()), ops.ScrubRecord{Time: t0.Add(time.Hour), PacksRead: 9})
	rr := ops.NewRecordReader()
	got, err := rr.Read(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Drills["a"]
	if a.Newest == nil || a.Newest.OK || !a.Newest.Time.Equal(t0.Add(time.Hour)) || a.NewestOK == nil || !a.NewestOK.Time.Equal(t0) {
		t.Fatalf("stream a: %+v", a)
	}
	if b := got.Drills["b"]; b.Newest != b.NewestOK || b.Newest == nil {
		t.Fatalf("stream b: %+v", b)
	}
	if got.Scrub == nil || got.Scrub.PacksRead != 9 {
		t.Fatalf("scrub: %+v", got.Scrub)
	}
	if len(got.Problems) != 0 {
		t.Fatalf("problems: %v", got.Problems)
	}
	// A newer passing drill of a, and a record that is not JSON: the
	// reader reads only what is new, and reports the bad record.
	d("a", t0.Add(2*time.Hour), true)
	bad := repo.DrillName(t0.Add(3 * time.Hour).UnixNano())
	if err := st.Put(ctx, bad, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	got, err = rr.Read(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Drills["a"]; !a.Newest.OK || a.Newest != a.NewestOK {
		t.Fatalf("stream a after a passing drill: %+v", a)
	}
	if len(got.Problems) != 1 || !strings.Contains(got.Problems[0], bad) {
		t.Fatalf("problems: %v", got.Problems)
	}
	rep := ops.Compute(ops.Input{Catalog: catalog(), Problems: got.Problems, Now: t0})
	if rep.State != ops.Warning {
		t.Fatalf("an unreadable record: state %v, want warning", rep.State)
	}
}

func newStore() repo.Store { return mem.New() }
