package sample

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// model folds events into a map, independently of the generator's state.
type model map[string]string

func (m model) bytes() []byte {
	var b bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(m[k])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func parseExport(t *testing.T, export []byte) model {
	t.Helper()
	m := model{}
	prev := ""
	for line := range strings.Lines(string(export)) {
		var d struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil || d.ID == "" {
			t.Fatalf("export line %q: %v", line, err)
		}
		if d.ID <= prev {
			t.Fatalf("keys not ascending: %q after %q", d.ID, prev)
		}
		prev = d.ID
		m[d.ID] = strings.TrimSuffix(line, "\n")
	}
	return m
}

// TestEventsTurnOneDayIntoTheNext: day 0 plus every event with a time at or
// before T is the generator's state at T, and the state at a day's instant
// is that day's export; events are valid event lines with contiguous seq.
func TestEventsTurnOneDayIntoTheNext(t *testing.T) {
	g, err := New(Options{Docs: 2000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var day0 bytes.Buffer
	if err := g.Export(&day0, 0); err != nil {
		t.Fatal(err)
	}
	m := parseExport(t, day0.Bytes())
	if len(m) != 2000 {
		t.Fatalf("day 0 has %d documents, want 2000", len(m))
	}
	var lines bytes.Buffer
	for d := 1; d <= 3; d++ {
		if err := g.Changes(&lines, d); err != nil {
			t.Fatal(err)
		}
	}
	type ev struct {
		Seq uint64          `json:"seq"`
		TS  int64           `json:"ts"`
		Op  string          `json:"op"`
		Key string          `json:"key"`
		Doc json.RawMessage `json:"doc"`
	}
	var evs []ev
	for line := range strings.Lines(lines.String()) {
		var e ev
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if e.Seq != uint64(len(evs))+1 {
			t.Fatalf("seq %d after %d events", e.Seq, len(evs))
		}
		if len(evs) > 0 && e.TS < evs[len(evs)-1].TS {
			t.Fatalf("time goes back at seq %d", e.Seq)
		}
		evs = append(evs, e)
	}
	if want := g.Position(3); uint64(len(evs)) != want {
		t.Fatalf("%d events, Position(3) = %d", len(evs), want)
	}
	// 2000 docs: 20 updates, 10 inserts, 10 deletes a day (of the live count).
	if len(evs) < 110 || len(evs) > 130 {
		t.Fatalf("%d events over three days, want about 120", len(evs))
	}
	check := func(at time.Time) {
		t.Helper()
		var got bytes.Buffer
		if err := g.StateAt(&got, at); err != nil {
			t.Fatal(err)
		}
		want := model{}
		maps.Copy(want, m)
		for _, e := range evs {
			if e.TS > at.Unix() {
				break
			}
			if e.Op == "put" {
				want[e.Key] = string(e.Doc)
			} else {
				delete(want, e.Key)
			}
		}
		if !bytes.Equal(got.Bytes(), want.bytes()) {
			t.Fatalf("state at %s differs from day 0 + events", at)
		}
	}
	for i := 0; i < len(evs); i += 7 {
		at := time.Unix(evs[i].TS, 0)
		check(at)
		check(at.Add(-time.Second))
	}
	for d := 0; d <= 3; d++ {
		check(g.DayTime(d))
		var exp bytes.Buffer
		g.Export(&exp, d)
		var st bytes.Buffer
		g.StateAt(&st, g.DayTime(d))
		if !bytes.Equal(exp.Bytes(), st.Bytes()) {
			t.Fatalf("day %d export differs from the state at its instant", d)
		}
	}
}

// TestDeterministic: the same options give the same bytes; another seed
// gives others.
func TestDeterministic(t *testing.T) {
	out := func(seed uint64) string {
		g, err := New(Options{Docs: 300, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		g.Export(&b, 2)
		g.Changes(&b, 2)
		return b.String()
	}
	if out(3) != out(3) {
		t.Fatal("two runs with one seed differ")
	}
	if out(3) == out(4) {
		t.Fatal("two seeds give the same data")
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{{Docs: -1}, {Docs: MaxDocs + 1}, {UpdateRate: 0.9, DeleteRate: 0.2}, {DeleteRate: -0.1}} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v) = %v, want ErrOptions", o, err)
		}
	}
	g, _ := New(Options{Docs: 10})
	if err := g.StateAt(&bytes.Buffer{}, DefaultStart.Add(-time.Second)); !errors.Is(err, ErrOptions) {
		t.Errorf("state before day 0: %v", err)
	}
	if err := g.Events(0, 1, func(*Event) error { return nil }); !errors.Is(err, ErrOptions) {
		t.Errorf("events of day 0: %v", err)
	}
}
