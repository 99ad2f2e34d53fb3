package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// TestRestoreBesideReplacedSegment: a re-encryption killed between storing
// a segment's replacement manifest and deleting the old one leaves both
// (FORMAT.md §4.1, twins). Before any rerun, restores at every position
// give what they gave before, coverage shows no conflict and check no
// problem; the rerun deletes the old manifest and restores stay the same.
func TestRestoreBesideReplacedSegment(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok([]byte(`{"_id":"a","v":0}`+"\n"), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0")
	var ev bytes.Buffer
	const n = 120
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&ev, `{"seq":%d,"ts":%d,"op":"put","key":"k%d","doc":{"_id":"k%d","v":%d}}`+"\n", i, 100+i, i%5, i%5, i)
	}
	c.ok(ev.Bytes(), "log", "--stream", "s", "--stdin", "--segment-bytes", "1024")
	at := func(pos int) string { return c.ok(nil, "restore", "--stream", "s", "--at-position", fmt.Sprint(pos)) }
	want := map[int]string{}
	positions := []int{1, 7, n / 2, n - 3, n}
	for _, p := range positions {
		want[p] = at(p)
	}

	// What the kill leaves: a replacement of a middle segment stored, the
	// old manifest not yet deleted.
	ctx := context.Background()
	r, st := c.repository()
	logs, err := index.ListLogs(ctx, st, "s")
	if err != nil {
		t.Fatal(err)
	}
	segs := logs["s"].Segments
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	k := segs[len(segs)/2]
	s, err := r.LoadSegment(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	ns := *s
	ns.Replaces, ns.Created = &k.ID, ns.Created.Add(time.Second)
	if _, err := r.SaveSegment(ctx, &ns); err != nil {
		t.Fatal(err)
	}

	for _, p := range positions {
		if got := at(p); got != want[p] {
			t.Fatalf("beside the replaced segment, restore at position %d:\n%s\nwant\n%s", p, got, want[p])
		}
	}
	var cov struct {
		Windows   []any
		Gaps      []any
		Conflicts []string
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "s", "--json")), &cov); err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || len(cov.Conflicts) != 0 {
		t.Fatalf("coverage %+v", cov)
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") || !strings.Contains(o, "re-encryption cut short") {
		t.Fatalf("check beside the replaced segment: %s", o)
	}
	// The rerun completes it; the old manifest goes.
	c.ok(nil, "key", "rotate", "--reencrypt", "--grace", "1ms")
	if logs, err = index.ListLogs(ctx, st, "s"); err != nil || len(logs["s"].Twins) != 0 {
		t.Fatalf("after the rerun: twins %v (%v)", logs["s"].Twins, err)
	}
	for _, p := range positions {
		if got := at(p); got != want[p] {
			t.Fatalf("after the rerun, restore at position %d differs", p)
		}
	}

	// Another writer's manifest of the same name, replacing nothing: all
	// three commands say overlap.
	if r, err = repo.Open(ctx, st, []byte(c.vars["STRATA_PASSWORD"])); err != nil {
		t.Fatal(err)
	}
	if logs, err = index.ListLogs(ctx, st, "s"); err != nil {
		t.Fatal(err)
	}
	k = logs["s"].Segments[len(segs)/2]
	if s, err = r.LoadSegment(ctx, k); err != nil {
		t.Fatal(err)
	}
	ns = *s
	ns.Replaces, ns.Created = nil, ns.Created.Add(time.Second)
	if _, err := r.SaveSegment(ctx, &ns); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "s", "--json")), &cov); err != nil {
		t.Fatal(err)
	}
	if len(cov.Conflicts) != 1 {
		t.Fatalf("coverage of two writers' same-name segments: %+v", cov)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "s", "--at-position", fmt.Sprint(n)); code == 0 || !strings.Contains(errs, "overlapping") {
		t.Fatalf("restore across two writers' same-name segments: exit %d: %s", code, errs)
	}
	if code, out, _ := c.run(nil, "check"); code == 0 || !strings.Contains(out, "overlapping") {
		t.Fatalf("check of two writers' same-name segments: exit %d: %s", code, out)
	}
}
