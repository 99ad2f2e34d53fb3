package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupRefusesBadNDJSON: an ndjson export that a point-in-time
// restore could not use is refused with its line number, and no snapshot
// (manifest or label) is stored for it.
func TestBackupRefusesBadNDJSON(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	good := string(genNDJSON(3000, 7)) // long enough to span several chunks
	half := len(strings.Join(strings.SplitAfter(good, "\n")[:1500], ""))
	cases := []struct {
		name, export, want string
	}{
		{"not an object", good + "[1,2,3]\n", "line 3001: "},
		{"no key", good + "{\"name\":\"x\"}\n", `line 3001: document has no "_id" field`},
		{"object key", "{\"_id\":{\"$oid\":\"1\"}}\n" + good, "line 1: field \"_id\": a key must be a string or a number"},
		{"binary", good[:half] + "\x00\x9f\x92\x96\xff\n" + good[half:], "line 1501: not UTF-8"},
		{"duplicate, sorted", good + strings.SplitAfter(good, "\n")[2999], "line 3001: key \"00000bb7\" repeats the line before"},
		{"duplicate, unsorted", good + "{\"_id\":\"00000001\",\"v\":2}\n", "line 3001: its key repeats line 2"},
	}
	for _, tc := range cases {
		code, _, errs := c.run([]byte(tc.export), "backup", "--stream", "s", "--format", "ndjson", "--stdin")
		if code == 0 || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "no snapshot written") {
			t.Errorf("%s: exit %d, stderr %q; want a refusal naming %q", tc.name, code, errs, tc.want)
		}
	}
	// The same from a file.
	file := filepath.Join(t.TempDir(), "bad.ndjson")
	os.WriteFile(file, []byte(good+"not json\n"), 0o600)
	if code, _, errs := c.run(nil, "backup", "--stream", "s", "--format", "ndjson", file); code == 0 || !strings.Contains(errs, "line 3001: ") {
		t.Errorf("bad file: exit %d, %s", code, errs)
	}
	if out := c.ok(nil, "snapshots"); strings.Contains(out, " s ") || strings.Contains(out, "s\n") {
		t.Fatalf("a refused backup left a snapshot:\n%s", out)
	}
	for _, dir := range []string{"snapshots", "labels"} {
		entries, _ := os.ReadDir(filepath.Join(c.vars["STRATA_REPO"], dir))
		if len(entries) != 0 {
			t.Fatalf("a refused backup left %d objects under %s/", len(entries), dir)
		}
	}
	// A raw export with a position would count as a point-in-time base that
	// no restore can use.
	if code, _, errs := c.run([]byte("x"), "backup", "--stream", "r", "--stdin", "--position", "5"); code != exitUsage {
		t.Errorf("raw with --position: exit %d (%s), want %d", code, errs, exitUsage)
	}
	if o := c.ok(nil, "check"); !strings.Contains(o, "no problems") {
		t.Fatalf("check after refused backups: %s", o)
	}
}

// TestBackupAllowDuplicateKeys: with --allow-duplicate-keys the export is
// stored as given, and every reader that sees it as documents takes the
// last line with a key.
func TestBackupAllowDuplicateKeys(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	export := "{\"_id\":\"b\",\"v\":1}\n{\"_id\":\"a\",\"v\":1}\n{\"_id\":\"b\",\"v\":2}\n"
	if code, _, errs := c.run([]byte(export), "backup", "--stream", "d", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0"); code == 0 || !strings.Contains(errs, "line 3: its key repeats line 1") {
		t.Fatalf("duplicate without the flag: exit %d %s", code, errs)
	}
	c.ok([]byte(export), "backup", "--stream", "d", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0", "--allow-duplicate-keys")
	if got := c.ok(nil, "restore", "--stream", "d", "--to", "-"); got != export {
		t.Fatalf("restore of the snapshot: %q, want the export as given", got)
	}
	want := "{\"_id\":\"a\",\"v\":1}\n{\"_id\":\"b\",\"v\":2}\n"
	if got := c.ok(nil, "restore", "--stream", "d", "--at", "100", "--to", "-"); got != want {
		t.Fatalf("restore --at: %q, want %q", got, want)
	}
	if got := c.ok(nil, "get", "--stream", "d", "--key", "b"); !strings.Contains(got, `"v":2`) {
		t.Fatalf("get: %q, want the last line's document", got)
	}
}

// TestLogRefusesBadEvents: 'strata log' refuses, with the line number, a
// put whose doc holds another key, an unknown op, and a replayed position
// whose content differs from what the log holds; what came before is kept.
func TestLogRefusesBadEvents(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok([]byte(`{"_id":"a"}`+"\n"), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0")
	first := `{"seq":1,"ts":101,"op":"put","key":"b","doc":{"_id":"b","v":1}}
{"seq":2,"ts":102,"op":"delete","key":"a"}
`
	c.ok([]byte(first), "log", "--stream", "s", "--stdin")
	cases := []struct{ name, events, want string }{
		{"doc with another key", `{"seq":3,"ts":103,"op":"put","key":"c","doc":{"_id":"d"}}`, `event line 1: invalid change event: key "c" differs from the doc's "_id", "d"`},
		{"doc without the key field", `{"seq":3,"ts":103,"op":"put","key":"c","doc":{"id":"c"}}`, `event line 1: invalid change event: doc has no "_id" field`},
		{"doc not an object", `{"seq":3,"ts":103,"op":"put","key":"c","doc":"c"}`, "event line 1: invalid change event: doc: "},
		{"unknown op", `{"seq":3,"ts":103,"op":"upsert","key":"c","doc":{"_id":"c"}}`, `event line 1: op "upsert": want "put" or "delete"`},
		{"replay with another doc", first + `{"seq":1,"ts":101,"op":"put","key":"b","doc":{"_id":"b","v":2}}`, "event line 3: replayed event differs from the stored one: position 1 (document differs)"},
		{"replay with another time", `{"seq":2,"ts":102.5,"op":"delete","key":"a"}`, "event line 1: replayed event differs from the stored one: position 2 (time"},
		{"replay with another op", `{"seq":2,"ts":102,"op":"put","key":"a","doc":{"_id":"a"}}`, "position 2 (op differs)"},
	}
	for _, tc := range cases {
		code, _, errs := c.run([]byte(tc.events+"\n"), "log", "--stream", "s", "--stdin")
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, %s\nwant %q", tc.name, code, errs, tc.want)
		}
	}
	// The identical replay is still skipped, and the log is what the first
	// capture stored.
	if _, _, errs := c.run([]byte(first), "log", "--stream", "s", "--stdin"); !strings.Contains(errs, "0 events stored in 0 segments (0 B sealed), 2 already stored and skipped") {
		t.Errorf("identical replay: %s", errs)
	}
	if got := c.ok(nil, "restore", "--stream", "s", "--at", "102"); got != `{"_id":"b","v":1}`+"\n" {
		t.Errorf("restore after refused events: %q", got)
	}
	// A stream keyed by another field: the log is told which.
	c.ok([]byte(`{"id":"a"}`+"\n"), "backup", "--stream", "k", "--format", "ndjson", "--key-field", "id", "--stdin", "--time", "100", "--position", "0")
	c.ok([]byte(`{"seq":1,"ts":101,"op":"put","key":"b","doc":{"id":"b"}}`+"\n"), "log", "--stream", "k", "--stdin", "--key-field", "id")
	if got := c.ok(nil, "restore", "--stream", "k", "--at", "101"); got != "{\"id\":\"a\"}\n{\"id\":\"b\"}\n" {
		t.Errorf("restore of a stream keyed by id: %q", got)
	}
}
