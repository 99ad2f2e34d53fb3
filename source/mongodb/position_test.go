package mongodb

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/repo"
)

func TestParseTimestamp(t *testing.T) {
	good := map[string]Timestamp{
		"1767225600:3":                         {1767225600, 3},
		" 1767225600 : 3 ":                     {1767225600, 3},
		"1767225600.3":                         {1767225600, 3},
		"Timestamp({t: 1767225600, i: 3})":     {1767225600, 3},
		"Timestamp({ i: 3, t: 1767225600 })":   {1767225600, 3},
		`Timestamp({"t": 1767225600, "i": 3})`: {1767225600, 3},
		"Timestamp(1767225600, 3)":             {1767225600, 3},
		"{t:1767225600,i:3}":                   {1767225600, 3},
		"4294967295:4294967295":                {4294967295, 4294967295},
		"0:0":                                  {},
	}
	for s, want := range good {
		got, err := ParseTimestamp(s)
		if err != nil || got != want {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{
		"", "5", "12345", "1:", ":1", "1:2:3", "4294967296:0", "1:4294967296", "-1:2", "+1:2", "1:0x2",
		"Timestamp(1)", "Timestamp(1, 2", "Timestamp({t: 1})", "{t: 1, i: 2, t: 3}", "{t: 1, x: 2}",
		"{t: 1, i: 2", "{t 1, i 2}", "1.2.3", "Timestamp({t: 1, i: 2}", "1 : 2 3",
	} {
		if got, err := ParseTimestamp(s); !errors.Is(err, ErrNotTimestamp) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want ErrNotTimestamp", s, got, err)
		}
	}
}

// FuzzParseTimestamp: user input never panics, and what parses prints as
// T:I that parses back to the same timestamp.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"1:2", "1.2", "Timestamp({t: 1, i: 2})", "Timestamp(1, 2)", "{t:1,i:2}", "12", "Timestamp(", "{", `{"t":1,'i':2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTimestamp(s)
		if err != nil {
			if !errors.Is(err, ErrNotTimestamp) {
				t.Fatalf("%q: error %v without ErrNotTimestamp", s, err)
			}
			return
		}
		back, err := ParseTimestamp(fmt.Sprintf("%d:%d", ts.T, ts.I))
		if err != nil || back != ts {
			t.Fatalf("%q: %v printed back as %v, %v", s, ts, back, err)
		}
	})
}

// TestRestoreAtOplogTimestamp: a timestamp between two writes restores the
// state after the first exactly; one between the base and the first entry
// restores the base; one beyond the captured log, or before the base, is
// refused.
func TestRestoreAtOplogTimestamp(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "app")
	ctx := t.Context()
	r := newRepo(t)
	c := src.Client.Database("app").Collection("items")
	insert := func(i int) {
		t.Helper()
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	last := func() Timestamp {
		t.Helper()
		ts, _, err := LastTimestamp(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	insert(0)
	seeded := last()
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	waitBase(t, logs)
	stateBase := dumpState(t, src.Client, "app")
	// A second apart, so that timestamps lie strictly between the writes.
	time.Sleep(1100 * time.Millisecond)
	insert(1)
	first := last()
	stateFirst := dumpState(t, src.Client, "app")
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: int32(1)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	second := last()
	stateSecond := dumpState(t, src.Client, "app")
	cat := waitCaptured(t, r, cli, logs)
	stop()
	if !second.After(first) || first.T == second.T {
		t.Fatalf("writes at %s and %s: want a second apart", first, second)
	}

	at := func(ts Timestamp, db string) (uint64, state) {
		t.Helper()
		pos, err := PositionAt(ctx, r, cat, "s", ts)
		if err != nil {
			t.Fatalf("PositionAt(%s): %v", ts, err)
		}
		restoreInto(t, cat, r, tgt, index.Target{Position: pos, ByPos: true}, RestoreOptions{Database: db})
		return pos, dumpState(t, tgt.Client, db)
	}
	between := Timestamp{T: first.T, I: first.I + 1}
	pFirst, got := at(between, "between")
	sameState(t, "between the writes", got, stateFirst)
	if p, got := at(first, "first"); p != pFirst {
		t.Errorf("at the first write: position %d, between it and the next %d", p, pFirst)
	} else {
		sameState(t, "at the first write", got, stateFirst)
	}
	pSecond, got := at(second, "second")
	sameState(t, "at the second write", got, stateSecond)
	if pSecond != pFirst+1 {
		t.Errorf("positions %d and %d for consecutive writes", pFirst, pSecond)
	}
	// After the base (exact at the seeding write, more than a second before
	// the first entry) and before the first entry: the base.
	inBase := Timestamp{T: first.T - 1, I: math.MaxUint32}
	if !inBase.After(seeded) {
		t.Fatalf("seeded at %s, first write at %s", seeded, first)
	}
	pBase, got := at(inBase, "base")
	sameState(t, "before the first entry", got, stateBase)
	if pBase != pFirst-1 {
		t.Errorf("base position %d, first entry at %d", pBase, pFirst)
	}
	for _, ts := range []Timestamp{{T: second.T + 100}, {T: second.T, I: second.I + 1}, {T: 1}} {
		if p, err := PositionAt(ctx, r, cat, "s", ts); !errors.Is(err, index.ErrNotRestorable) {
			t.Errorf("PositionAt(%s) = %d, %v; want ErrNotRestorable", ts, p, err)
		}
	}
}

// TestPositionAtVector is FORMAT.md §23.4's example: a base at position 0
// exact at 99.5 and entries at 1, 2, 3 with timestamps 100.1, 100.2, 102.1,
// one segment each, so the search crosses segments.
func TestPositionAtVector(t *testing.T) {
	ctx := t.Context()
	r := newRepo(t)
	var base bytes.Buffer
	bw := NewBaseWriter(&base)
	if _, err := bw.Close(Timestamp{99, 5}, Timestamp{99, 5}, false); err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	if _, _, err := engine.Backup(ctx, r, &base, engine.BackupOptions{Stream: "s", Format: engine.FormatNDJSON, Position: &zero,
		Describe: func(s *repo.Snapshot) { s.Time = time.Unix(99, 0).UTC() }}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "s", SegmentBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range []Timestamp{{100, 1}, {100, 2}, {102, 1}} {
		e := parseRec(t, fmt.Sprintf(`{"op":"i","ns":"shop.users","o":{"_id":%d},"ts":{"$timestamp":{"t":%d,"i":%d}}}`, i, ts.T, ts.I))
		ev, err := OplogEvent(uint64(i+1), int64(ts.T)*1e9, e, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cat.Log("s").Segments); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	for ts, want := range map[Timestamp]uint64{{100, 2}: 2, {101, 7}: 2, {99, 5}: 0, {99, 9}: 0, {100, 1}: 1, {102, 1}: 3, {100, 3}: 2} {
		if got, err := PositionAt(ctx, r, cat, "s", ts); err != nil || got != want {
			t.Errorf("PositionAt(%s) = %d, %v; want %d", ts, got, err, want)
		}
	}
	for _, ts := range []Timestamp{{99, 4}, {102, 2}, {0, 0}} {
		if got, err := PositionAt(ctx, r, cat, "s", ts); !errors.Is(err, index.ErrNotRestorable) {
			t.Errorf("PositionAt(%s) = %d, %v; want ErrNotRestorable", ts, got, err)
		}
	}
}
