package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// check --json prints one object with counts, notes, repaired and
// problems (empty lists, not null), and keeps check's exit codes.
func TestCheckJSON(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	id := strings.TrimSpace(c.ok(genNDJSON(100, 1), "backup", "--stream", "s", "--format", "ndjson", "--stdin"))
	var j struct {
		ReadData bool           `json:"read_data"`
		Counts   map[string]int `json:"counts"`
		Notes    []string       `json:"notes"`
		Repaired []string       `json:"repaired"`
		Problems []string       `json:"problems"`
		OK       bool           `json:"ok"`
	}
	out := c.ok(nil, "check", "--json", "--read-data")
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	if !j.OK || !j.ReadData || j.Counts["snapshots"] != 1 || j.Counts["blobs"] == 0 || j.Counts["packs"] == 0 ||
		j.Problems == nil || len(j.Problems) != 0 || j.Notes == nil || j.Repaired == nil {
		t.Fatalf("check --json on a healthy repository: %+v\n%s", j, out)
	}
	os.Remove(filepath.Join(c.vars["STRATA_REPO"], "snapshots", id))
	code, out, errs := c.run(nil, "check", "--json")
	j.Problems = nil
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != exitDamage || j.OK || len(j.Problems) == 0 {
		t.Fatalf("check --json with a snapshot manifest deleted: exit %d, %v, %+v\n%s%s", code, err, j, out, errs)
	}
	// The text output stays the default.
	if code, out, _ := c.run(nil, "check"); code != exitDamage || !strings.Contains(out, "problem: ") {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
}

// token list --json prints an array of {"name","scopes"}; an empty file's
// list is [].
func TestTokenListJSON(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "tokens")
	c.ok(nil, "token", "create", "--tokens", file, "--name", "ci", "--scope", "backup:shop/*,read")
	c.ok(nil, "token", "create", "--tokens", file, "--name", "ops", "--scope", "admin")
	var got []struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	out := c.ok(nil, "token", "list", "--tokens", file, "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("token list --json: %v\n%s", err, out)
	}
	want := map[string][]string{"ci": {"backup:shop/*", "read"}, "ops": {"admin"}}
	if len(got) != 2 {
		t.Fatalf("token list --json: %s", out)
	}
	for _, g := range got {
		if !reflect.DeepEqual(g.Scopes, want[g.Name]) {
			t.Errorf("token %q: scopes %v, want %v", g.Name, g.Scopes, want[g.Name])
		}
	}
	c.ok(nil, "token", "revoke", "--tokens", file, "--name", "ci")
	c.ok(nil, "token", "revoke", "--tokens", file, "--name", "ops")
	if out := strings.TrimSpace(c.ok(nil, "token", "list", "--tokens", file, "--json")); out != "[]" {
		t.Fatalf("token list --json of no tokens: %q", out)
	}
	if out := c.ok(nil, "token", "list", "--tokens", file); !strings.HasPrefix(out, "NAME") {
		t.Fatalf("token list text: %q", out)
	}
}

// jsonExempt names the commands without --json, and why: each writes data
// or log lines, not a result to read.
var jsonExempt = map[string]string{
	"strata sample":   "writes the example data itself",
	"strata serve":    "a server: its log is JSON lines already",
	"strata s3 serve": "a server: its log is JSON lines already",
	"strata man":      "writes man pages",
	"strata help":     "help text",
}

// Every runnable command that prints has --json, apart from jsonExempt
// and cobra's completion scripts.
func TestEveryCommandHasJSON(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			walk(s)
		}
		p := c.CommandPath()
		if !c.Runnable() || c.Hidden || !c.HasParent() || strings.HasPrefix(p, "strata completion") || c.Flags().Lookup("json") != nil {
			return
		}
		if _, ok := jsonExempt[p]; !ok && c.HasAvailableSubCommands() == false {
			t.Errorf("%s has no --json", p)
		}
	}
	walk(newRoot(&environment{getenv: func(string) string { return "" }}))
}

// Each printing command's --json decodes into its documented shape:
// an object, an array for listings, NDJSON for audit's and diff's records.
func TestJSONEverywhere(t *testing.T) {
	c := newCLI(t)
	object := func(args ...string) map[string]any {
		t.Helper()
		out := c.ok(nil, append(args, "--json")...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("strata %v --json: not one object: %v\n%s", args, err, out)
		}
		return m
	}
	array := func(stdin []byte, args ...string) []any {
		t.Helper()
		out := c.ok(stdin, append(args, "--json")...)
		var a []any
		if err := json.Unmarshal([]byte(out), &a); err != nil || a == nil {
			t.Fatalf("strata %v --json: not an array: %v\n%s", args, err, out)
		}
		return a
	}
	ndjson := func(args ...string) int {
		t.Helper()
		out := c.ok(nil, append(args, "--json")...)
		n := 0
		for line := range strings.Lines(out) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("strata %v --json: line %d is not an object: %v\n%s", args, n+1, err, out)
			}
			n++
		}
		return n
	}
	want := func(m map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("no %q in %v", k, m)
			}
		}
	}

	want(object("init"), "id", "location", "stores", "data_shards", "parity_shards", "cipher")
	want(object("version"), "version", "format")
	day0 := c.ok(nil, "sample", "--docs", "300")
	out := c.ok([]byte(day0), "backup", "--stream", "s", "--stdin", "--time", "2026-01-01T00:00:00Z", "--position", "0", "--json")
	var snap map[string]any
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	want(snap, "id", "stream", "time", "format", "size", "blobs", "new_blobs", "stored_bytes")
	var lj map[string]any
	events := c.ok(nil, "sample", "--docs", "300", "--day", "1", "--changes")
	if err := json.Unmarshal([]byte(c.ok([]byte(events), "log", "--stream", "s", "--stdin", "--json")), &lj); err != nil {
		t.Fatalf("log --json: %v", err)
	}
	want(lj, "stream", "stored", "segments", "gaps", "stored_bytes")
	if a := array(nil, "snapshots"); len(a) != 1 {
		t.Errorf("snapshots --json: %v", a)
	}
	want(object("coverage", "--stream", "s"), "windows", "gaps")
	want(object("restore", "--stream", "s", "--at", "2026-01-01T12:00:00Z", "--dry-run"), "stream", "at", "base", "from_position", "segments", "read_bytes")
	want(object("check"), "counts", "problems", "ok")
	want(object("get", "--stream", "s", "--key", "user-0000000007"), "found", "doc")
	array(nil, "history", "--stream", "s", "--key", "user-0000000007")
	ndjson("diff", "--stream", "s", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T12:00:00Z")
	ndjson("audit")
	want(object("forget", "--stream", "s", "--keep-last", "1", "--dry-run"), "stream", "dry_run", "keep", "remove", "remove_segments", "deferred")
	want(object("prune", "--dry-run"), "marked", "deleted", "deferred")

	c.vars["STRATA_NEW_PASSWORD"] = "pw-2"
	added := object("key", "add")
	if a := array(nil, "key", "list"); len(a) != 2 {
		t.Errorf("key list --json: %v", a)
	}
	want(object("key", "remove", added["id"].(string)[:12]), "id")
	want(object("key", "passwd"), "id")
	c.vars["STRATA_PASSWORD"] = "pw-2"

	tokens := filepath.Join(t.TempDir(), "tokens")
	want(object("token", "create", "--tokens", tokens, "--name", "ci", "--scope", "read"), "name", "token", "scopes")
	array(nil, "token", "list", "--tokens", tokens)
	want(object("token", "revoke", "--tokens", tokens, "--name", "ci"), "name")

	users := filepath.Join(t.TempDir(), "users")
	want(object("s3", "user", "add", "--users", users, "--name", "u"), "name", "access_key", "secret_key", "buckets", "read_only")
	if a := array(nil, "s3", "user", "list", "--users", users); len(a) != 1 {
		t.Errorf("s3 user list --json: %v", a)
	}
	want(object("s3", "user", "remove", "--users", users, "--name", "u"), "name")
}
