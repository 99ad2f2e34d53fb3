package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/sample"
)

// TestRecordCommands runs get, history, diff and a partial restore through
// the CLI, text and --json, against the generator's own answers.
func TestRecordCommands(t *testing.T) {
	g, err := sample.New(sample.Options{Docs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.ok(nil, "init")
	day0 := c.ok(nil, "sample", "--docs", "2000")
	c.ok([]byte(day0), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "2026-01-01T00:00:00Z", "--position", "0")
	events := c.ok(nil, "sample", "--docs", "2000", "--day", "1", "--changes")
	c.ok([]byte(events), "log", "--stream", "s", "--stdin")

	at := g.DayTime(0).Add(13 * time.Hour)
	atS := at.Format(time.RFC3339)
	// A key some event changed, one never changed, one deleted by then.
	var changed, deleted string
	g.Events(1, 1, func(e *sample.Event) error {
		if e.Time.After(at) {
			return nil
		}
		if e.Op == sample.OpPut && changed == "" && e.Key < sample.Key(2000) {
			changed = e.Key
		}
		if e.Op == sample.OpDelete {
			deleted = e.Key
		}
		return nil
	})
	for _, key := range []string{changed, sample.Key(7)} {
		want, _ := g.Lookup(key, at)
		if got := c.ok(nil, "get", "--stream", "s", "--key", key, "--at", atS); got != string(want)+"\n" {
			t.Fatalf("get %s: %.80s, want %.80s", key, got, want)
		}
		var j struct {
			Found   bool
			Doc     json.RawMessage
			Version struct{ Op string }
		}
		if err := json.Unmarshal([]byte(c.ok(nil, "get", "--stream", "s", "--key", key, "--at", atS, "--json")), &j); err != nil || !j.Found || string(j.Doc) != string(want) {
			t.Fatalf("get --json %s: %+v %v", key, j, err)
		}
	}
	code, out, errs := c.run(nil, "get", "--stream", "s", "--key", deleted, "--at", atS)
	if code != exitFailure || out != "" || !strings.Contains(errs, "deleted at") {
		t.Fatalf("get of a deleted key: exit %d, %q, %q", code, out, errs)
	}

	var hist []struct {
		Time, Op string
		Position uint64
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "history", "--stream", "s", "--key", changed, "--json")), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) < 2 || hist[0].Op != "snapshot" || hist[1].Op != "put" || hist[1].Position == 0 {
		t.Fatalf("history of %s: %+v", changed, hist)
	}

	// diff: the day-0 snapshot against the state at `at`.
	snaps := c.ok(nil, "snapshots", "--json")
	var ss []struct{ ID string }
	json.Unmarshal([]byte(snaps), &ss)
	lines := strings.Split(strings.TrimSpace(c.ok(nil, "diff", "--stream", "s", "--from", ss[0].ID[:12], "--to", atS, "--json")), "\n")
	a, b := map[string]string{}, map[string]string{}
	for _, s := range []struct {
		m map[string]string
		t time.Time
	}{{a, g.DayTime(0)}, {b, at}} {
		var buf bytes.Buffer
		g.StateAt(&buf, s.t)
		for line := range strings.Lines(buf.String()) {
			s.m[line[8:23]] = line
		}
	}
	var want []string
	for k := range union2(a, b) {
		switch {
		case a[k] == "":
			want = append(want, fmt.Sprintf(`{"key":%q,"change":"added"}`, k))
		case b[k] == "":
			want = append(want, fmt.Sprintf(`{"key":%q,"change":"removed"}`, k))
		case a[k] != b[k]:
			want = append(want, fmt.Sprintf(`{"key":%q,"change":"changed"}`, k))
		}
	}
	sortStrings(want)
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff --json:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// restore --keys-from and --key-prefix.
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte(changed+"\n"+sample.Key(7)+"\n\n"+deleted+"\n"), 0o600)
	got := c.ok(nil, "restore", "--stream", "s", "--at", atS, "--keys-from", keys)
	wantSel := []string{}
	for _, k := range []string{changed, sample.Key(7)} {
		wantSel = append(wantSel, b[k])
	}
	sortStrings(wantSel)
	if got != strings.Join(wantSel, "") {
		t.Fatalf("restore --keys-from: %q", got)
	}
	got = c.ok(nil, "restore", "--stream", "s", "--at", atS, "--key-prefix", "user-000000001")
	if n := strings.Count(got, "\n"); n < 5 || n > 10 {
		t.Fatalf("restore --key-prefix user-000000001: %d documents, want about 10", n)
	}
	if code, _, _ := c.run(nil, "restore", "--stream", "s", "--key-prefix", "u", "--keys-from", keys); code != exitUsage {
		t.Fatalf("both selectors: exit %d, want usage", code)
	}
}

func union2(a, b map[string]string) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func sortStrings(s []string) { slices.Sort(s) }
