package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
