package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyRotateReencrypt: `key rotate --reencrypt --dry-run` counts and
// changes nothing; a run rotates, rewrites and waits for the grace period;
// a run after it deletes the replaced packs and retires the old
// generation. Both snapshots restore byte-exact with each password under
// their new IDs, check is clean, and the audit trail has both runs.
func TestKeyRotateReencrypt(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.vars["STRATA_NEW_PASSWORD"] = "pw-2"
	c.ok(nil, "key", "add")
	days := [][]byte{genNDJSON(3000, 51), genNDJSON(3000, 52)}
	var ids []string
	for _, d := range days {
		ids = append(ids, strings.TrimSpace(c.ok(d, "backup", "--stream", "db", "--format", "ndjson", "--stdin")))
	}
	other := filepath.Join(t.TempDir(), "pw-2")
	if err := os.WriteFile(other, []byte("pw-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		Generation int               `json:"generation"`
		Packs      int               `json:"packs"`
		PackBytes  int64             `json:"pack_bytes"`
		Snapshots  int               `json:"snapshots"`
		Renamed    map[string]string `json:"renamed"`
		Waiting    []string          `json:"waiting"`
		Done       bool              `json:"done"`
		Retired    *struct {
			Kept []int `json:"kept"`
		} `json:"retired"`
	}
	run := func(args ...string) result {
		t.Helper()
		out := c.ok(nil, append([]string{"key", "rotate", "--reencrypt", "--other-password-file", other, "--grace", "1ms", "--json"}, args...)...)
		var res result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return res
	}
	dry := run("--dry-run")
	if dry.Generation != 1 || dry.Packs == 0 || dry.PackBytes == 0 || dry.Snapshots != 2 || dry.Done {
		t.Fatalf("dry run: %+v", dry)
	}
	if out := c.ok(nil, "key", "list"); strings.Count(out, "\n") < 2 {
		t.Fatalf("key list after a dry run: %s", out)
	}
	first := run()
	if first.Generation != 1 || first.Done || len(first.Waiting) == 0 || len(first.Renamed) != 2 {
		t.Fatalf("first run: %+v", first)
	}
	// While it is under way, a plain rotation is refused.
	if code, _, errs := c.run(nil, "key", "rotate", "--other-password-file", other); code == 0 || !strings.Contains(errs, "re-encryption is under way") {
		t.Fatalf("plain rotation during a re-encryption: exit %d: %s", code, errs)
	}
	time.Sleep(10 * time.Millisecond)
	second := run()
	if !second.Done || second.Retired == nil || len(second.Retired.Kept) != 2 {
		t.Fatalf("second run: %+v", second)
	}
	for _, pw := range []string{"pw-1", "pw-2"} {
		c.vars["STRATA_PASSWORD"] = pw
		for i, id := range ids {
			nid := first.Renamed[id]
			if nid == "" {
				t.Fatalf("snapshot %s was not renamed: %v", id, first.Renamed)
			}
			if got := c.ok(nil, "restore", "--stream", "db", "--snapshot", nid[:12], "--to", "-"); got != string(days[i]) {
				t.Fatalf("password %s: snapshot %d does not restore byte-exact", pw, i)
			}
		}
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check after re-encryption: %s", o)
	}
	if out := c.ok(nil, "audit", "--action", "key-rotate-reencrypt"); strings.Count(out, "key-rotate-reencrypt") != 2 {
		t.Fatalf("audit trail: %s", out)
	}
	c.vars["STRATA_PASSWORD"] = "pw-1"
	// Text output of a finished repository's next re-encryption: a new
	// generation, rewritten and waiting.
	if out := c.ok(nil, "key", "rotate", "--reencrypt", "--other-password-file", other); !strings.Contains(out, "key generation 1 -> 2") || !strings.Contains(out, "not finished") {
		t.Fatalf("text output: %s", out)
	}
}
