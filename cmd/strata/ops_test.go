package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
)

// streams lists every stream with its newest snapshot and window; stats
// adds up the bytes, per stream or for all.
func TestStreamsAndStats(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	day0 := c.ok(nil, "sample", "--docs", "500")
	c.ok([]byte(day0), "backup", "--stream", "a", "--stdin", "--time", "2026-01-01T00:00:00Z", "--position", "0")
	c.ok([]byte(day0), "backup", "--stream", "a", "--stdin", "--time", "2026-01-01T06:00:00Z", "--position", "0")
	c.ok([]byte(c.ok(nil, "sample", "--docs", "500", "--day", "1", "--changes")), "log", "--stream", "a", "--stdin")
	c.ok(genNDJSON(100, 1), "backup", "--stream", "b", "--stdin", "--time", "2026-01-02T00:00:00Z")

	var streams []streamJSON
	if err := json.Unmarshal([]byte(c.ok(nil, "streams", "--json")), &streams); err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 || streams[0].Stream != "a" || streams[0].Snapshots != 2 || streams[0].Segments == 0 ||
		streams[0].Newest == nil || streams[0].Window == nil || streams[1].Stream != "b" || streams[1].Segments != 0 {
		t.Fatalf("streams --json: %+v", streams)
	}
	// Both snapshots are at position 0 and the log runs on from there: one
	// window, from the first snapshot.
	if got, want := streams[0].Window.From.RFC3339, "2026-01-01T00:00:00Z"; got != want || streams[0].Newest.Time.Format(time.RFC3339) != "2026-01-01T06:00:00Z" {
		t.Errorf("stream a: window from %s, want %s; newest snapshot %v", got, want, streams[0].Newest.Time)
	}
	if out := c.ok(nil, "streams"); !strings.Contains(out, "STREAM") || !strings.Contains(out, "\na ") || !strings.Contains(out, "\nb ") {
		t.Errorf("streams:\n%s", out)
	}

	var all, a statsJSON
	json.Unmarshal([]byte(c.ok(nil, "stats", "--json")), &all)
	json.Unmarshal([]byte(c.ok(nil, "stats", "--stream", "a", "--json")), &a)
	if all.Streams != 2 || all.Snapshots != 3 || a.Streams != 1 || a.Snapshots != 2 || a.Segments == 0 || a.Segments != all.Segments {
		t.Fatalf("stats: all %+v, a %+v", all, a)
	}
	// The same export twice: the second adds next to nothing, so the
	// ratio is close to 2, and logical bytes are twice the export.
	if a.LogicalBytes != 2*int64(len(day0)) || a.DedupRatio < 1.8 || a.LogStoredBytes == 0 || a.StoredBytes != a.SnapshotStoredBytes+a.LogStoredBytes {
		t.Errorf("stats --stream a: %+v (export %d bytes)", a, len(day0))
	}
	if code, _, _ := c.run(nil, "stats", "--stream", "nope"); code != exitNotRestorable {
		t.Errorf("stats --stream nope: exit %d, want %d", code, exitNotRestorable)
	}
}

// The audit trail has one record per logical operation (a backup is one
// "backup", not a put per shard), filters by stream, token and action, and
// serve takes --log-level.
func TestAuditOnePerOperation(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	dir := c.vars["STRATA_REPO"]
	tokens := filepath.Join(t.TempDir(), "tokens")
	ci := strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", "ci", "--scope", "backup:*,read"))
	c.ok(nil, "token", "create", "--tokens", tokens, "--name", "ops", "--scope", "admin")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if code, _, errs := c.run(nil, "serve", "--repo", dir, "--tokens", tokens, "--listen", addr, "--log-level", "loud"); code != exitUsage {
		t.Errorf("serve --log-level loud: exit %d (%s)", code, errs)
	}
	srv := startServe(t, dir, tokens, addr)
	remote := &cli{t: t, vars: map[string]string{"STRATA_PASSWORD": "pw-1", "STRATA_REPO": srv.url, "STRATA_TOKEN": ci}}
	remote.ok(genNDJSON(3000, 1), "backup", "--stream", "x", "--stdin")
	remote.ok(genNDJSON(3000, 2), "backup", "--stream", "y", "--stdin")
	srv.stop(t) // writes the records still buffered

	count := map[string]int{}
	for line := range strings.Lines(c.ok(nil, "audit", "--json")) {
		var r struct{ Action, Token, Object, Result string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r.Action, "/") || strings.Contains(r.Action, " ") {
			t.Errorf("action %q is not an operation's name", r.Action)
		}
		if r.Result == "ok" && (strings.HasPrefix(r.Object, "data/") || strings.HasPrefix(r.Object, "index/") || strings.HasPrefix(r.Object, "labels/")) {
			t.Errorf("a record per uploaded object: %+v", r)
		}
		count[r.Action+"/"+r.Token]++
	}
	if count["backup/ci"] != 2 {
		t.Errorf("audit: %v, want 2 backups by ci", count)
	}
	filtered := c.ok(nil, "audit", "--json", "--stream", "y", "--who", "ci", "--action", "backup")
	if n := strings.Count(filtered, "\n"); n != 1 || !strings.Contains(filtered, `"stream":"y"`) {
		t.Errorf("audit --stream y --who ci --action backup: %d records\n%s", n, filtered)
	}
	if out := c.ok(nil, "audit", "--who", "nobody"); strings.Count(out, "\n") != 1 {
		t.Errorf("audit --who nobody: want the header alone\n%s", out)
	}
}
