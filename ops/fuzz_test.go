package ops_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/strata-backup/strata/ops"
)

// FuzzParsePolicy: any bytes either parse into a policy whose every limit
// has its warning level at or below its failure level, or are refused; never
// a panic.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte("streams: [{match: '*', rpo: {failure: 1h}}]"))
	f.Add([]byte("scrub_age: {warning: 8d}"))
	f.Add([]byte("streams: [{match: a, rpo: {warning: 99999999999d}}]"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ops.ParsePolicy(bytes.NewReader(b))
		if err != nil {
			return
		}
		check := func(l *ops.Limit) {
			if l == nil {
				return
			}
			if l.Warning < 0 || l.Failure < 0 || l.Warning == 0 && l.Failure == 0 || l.Warning != 0 && l.Failure != 0 && l.Warning > l.Failure {
				t.Fatalf("accepted limit %+v", *l)
			}
			if l.Failure != 0 && l.Failure < 1<<62 && l.Grade(time.Duration(l.Failure)+1) == ops.OK {
				t.Fatalf("limit %+v grades past its failure level ok", *l)
			}
		}
		check(p.ScrubAge)
		for _, r := range p.Streams {
			if r.Match == "" {
				t.Fatal("accepted a rule without a match")
			}
			check(r.SnapshotAge)
			check(r.RPO)
			check(r.DrillAge)
			check(r.RTO)
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDrillRecords: whatever a writer stored under drills/, the reader and
// the grading neither panic nor take a record with a bad stream name.
func FuzzDrillRecords(f *testing.F) {
	f.Add([]byte(`{"stream":"shop/orders","time":"2026-12-01T00:00:00Z","ok":false,"rto_seconds":1e308}`))
	f.Add([]byte(`{"stream":"../x","ok":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newStore()
		if err := st.Put(t.Context(), "drills/0000000000000000001.json", b); err != nil {
			t.Fatal(err)
		}
		recs, err := ops.NewRecordReader().Read(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := ops.ParsePolicy(bytes.NewReader([]byte(testPolicy)))
		rep := ops.Compute(ops.Input{Catalog: catalog(), Drills: recs.Drills, Policy: p, Now: t0, Problems: recs.Problems})
		if len(recs.Problems) == 0 && len(recs.Drills) != 1 {
			t.Fatalf("a readable record gave %d streams", len(recs.Drills))
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatal(err)
		}
	})
}
