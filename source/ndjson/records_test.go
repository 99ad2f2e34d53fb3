package ndjson_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/ndjson"
)

// sampleRepo backs up the generator's day-0 export (position 0) and its
// day-2 export (at Position(2)), and captures the events of days 1 to 3 in
// small segments.
func sampleRepo(t *testing.T, g *sample.Generator) (*repo.Repository, *index.Catalog) {
	t.Helper()
	r := newRepo(t)
	for _, d := range []int{0, 2} {
		var b bytes.Buffer
		if err := g.Export(&b, d); err != nil {
			t.Fatal(err)
		}
		backupAt(t, r, "s", b.Bytes(), g.DayTime(d).UnixNano(), g.Position(d))
	}
	w, err := engine.OpenLog(context.Background(), r, engine.LogOptions{Stream: "s", SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Events(1, 3, func(se *sample.Event) error {
		e, err := ndjson.ParseEvent(se.AppendJSON(nil))
		if err != nil {
			return err
		}
		return w.Append(&e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return r, cat
}

func stateAt(t *testing.T, g *sample.Generator, at time.Time) map[string]string {
	t.Helper()
	var b bytes.Buffer
	if err := g.StateAt(&b, at); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(b.String()) {
		line = strings.TrimSuffix(line, "\n")
		k, err := ndjson.KeyOf([]byte(line), "_id")
		if err != nil {
			t.Fatal(err)
		}
		m[string(k)] = line
	}
	return m
}

// TestRecordsMatchGenerator: get, diff and partial restores at many
// instants equal what the generator says the state was.
func TestRecordsMatchGenerator(t *testing.T) {
	ctx := context.Background()
	g, err := sample.New(sample.Options{Docs: 3000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	r, cat := sampleRepo(t, g)
	rng := rand.New(rand.NewPCG(5, 5))
	end := g.DayTime(3).Add(-time.Hour)
	var prevAt time.Time
	var prev map[string]string
	for i := range 14 {
		at := g.DayTime(0).Add(time.Duration(rng.Int64N(int64(end.Sub(g.DayTime(0))))))
		if i == 0 {
			at = g.DayTime(2) // exactly the second snapshot
		}
		p, err := cat.Plan("s", index.Target{Time: at})
		if err != nil {
			t.Fatalf("plan at %s: %v", at, err)
		}
		want := stateAt(t, g, at)
		// Keys: present ones, one past the last id, and keys between.
		keys := []string{sample.Key(0), sample.Key(2999), sample.Key(3100), sample.Key(99999), "user-", "a", "zzz"}
		for range 12 {
			keys = append(keys, sample.Key(rng.Uint64N(3150)))
		}
		for _, k := range keys {
			got, err := ndjson.Get(ctx, r, p, []byte(k))
			if err != nil {
				t.Fatalf("get %s at %s: %v", k, at, err)
			}
			w, ok := want[k]
			if got.Found != ok || string(got.Doc) != w {
				t.Fatalf("get %s at %s: found %v %.60s, want %v %.60s", k, at, got.Found, got.Doc, ok, w)
			}
		}
		// A prefix of 100 keys, and a list of keys.
		prefix := fmt.Sprintf("user-00000%03d", rng.IntN(32))
		var wantSel bytes.Buffer
		var sel [][]byte
		for _, k := range sortedKeys(want) {
			if strings.HasPrefix(k, prefix) {
				wantSel.WriteString(want[k] + "\n")
			}
		}
		var out bytes.Buffer
		if _, err := ndjson.RestoreSelected(ctx, r, p, ndjson.Selector{Prefix: []byte(prefix)}, &out); err != nil {
			t.Fatal(err)
		}
		if out.String() != wantSel.String() {
			t.Fatalf("restore --key-prefix %s at %s: %d bytes, want %d", prefix, at, out.Len(), wantSel.Len())
		}
		wantSel.Reset()
		for _, k := range sortedKeys(want) {
			if rng.IntN(40) == 0 {
				sel = append(sel, []byte(k))
				wantSel.WriteString(want[k] + "\n")
			}
		}
		sel = append(sel, []byte("user-9999999999"), sel[0]) // absent, and a repeat
		out.Reset()
		if _, err := ndjson.RestoreSelected(ctx, r, p, ndjson.Selector{Keys: sel}, &out); err != nil {
			t.Fatal(err)
		}
		if out.String() != wantSel.String() {
			t.Fatalf("restore --keys-from at %s: %d bytes, want %d", at, out.Len(), wantSel.Len())
		}
		// Diff against the previous instant, both ways.
		if prev != nil {
			pp, _ := cat.Plan("s", index.Target{Time: prevAt})
			checkDiff(t, r, pp, p, prev, want)
			checkDiff(t, r, p, pp, want, prev)
		}
		prev, prevAt = want, at
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func checkDiff(t *testing.T, r *repo.Repository, from, to *index.Plan, a, b map[string]string) {
	t.Helper()
	var want []string
	for _, k := range sortedKeys(union(a, b)) {
		va, ina := a[k]
		vb, inb := b[k]
		switch {
		case !ina:
			want = append(want, "added "+k)
		case !inb:
			want = append(want, "removed "+k)
		case va != vb:
			want = append(want, "changed "+k)
		}
	}
	var got []string
	err := ndjson.Diff(context.Background(), r, from, to, func(e ndjson.DiffEntry) error {
		got = append(got, e.Change+" "+string(e.Key))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff %s → %s: %d entries, want %d", from.Target, to.Target, len(got), len(want))
	}
}

func union(a, b map[string]string) map[string]string {
	u := map[string]string{}
	for k, v := range a {
		u[k] = v
	}
	for k, v := range b {
		u[k] = v
	}
	return u
}

// TestHistoryMatchesGenerator: every version history lists is the state
// at its time, and between versions the document does not change.
func TestHistoryMatchesGenerator(t *testing.T) {
	ctx := context.Background()
	g, err := sample.New(sample.Options{Docs: 2000, Seed: 3, UpdateRate: 0.2, DeleteRate: 0.02, InsertRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	r, cat := sampleRepo(t, g)
	until := g.DayTime(3).Add(-time.Hour)
	base := cat.Stream("s")[0]
	p, err := cat.PlanFrom("s", base, index.Target{Time: until})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{0, 17, 512, 1999, 2010} {
		key := sample.Key(id)
		vs, err := ndjson.History(ctx, r, p, []byte(key), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if id < 2000 && (len(vs) == 0 || vs[0].Op != ndjson.OpSnapshot) {
			t.Fatalf("%s: history does not start with the base: %+v", key, vs)
		}
		for i, v := range vs {
			doc, err := g.Lookup(key, v.Time)
			if err != nil {
				t.Fatal(err)
			}
			if string(doc) != string(v.Doc) {
				t.Fatalf("%s version %d (%s at %s): %.50s, generator %.50s", key, i, v.Op, v.Time, v.Doc, doc)
			}
			// Just before the next version, still this one.
			if i+1 < len(vs) && vs[i+1].Time.After(v.Time) {
				d2, _ := g.Lookup(key, vs[i+1].Time.Add(-time.Second))
				if string(d2) != string(v.Doc) {
					t.Fatalf("%s changed between versions %d and %d without a version", key, i, i+1)
				}
			}
		}
		// --since: the first entry is the version in effect then.
		if len(vs) > 2 {
			since := vs[2].Time.Add(-time.Second)
			vs2, err := ndjson.History(ctx, r, p, []byte(key), since)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := g.Lookup(key, since); string(vs2[0].Doc) != string(want) {
				t.Fatalf("%s since %s: first version %.50s, want %.50s", key, since, vs2[0].Doc, want)
			}
		}
	}
}
