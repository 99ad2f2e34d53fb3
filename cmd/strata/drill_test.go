package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

// drillStream backs up a day-0 and a day-1 export of the sample data as
// stream, with the log of days 1 and 2 between and after them; tamper, if
// set, rewrites the day-1 events before they are captured.
func drillStream(t *testing.T, c *cli, stream string, tamper func([]byte) []byte) (start int64) {
	t.Helper()
	g := gen(t)
	const docs = "400"
	start = 1767225600
	ev1, ev2 := g("-docs", docs, "-day", "1", "-changes"), g("-docs", docs, "-day", "2", "-changes")
	pos1 := lastSeq(t, ev1)
	c.ok(g("-docs", docs, "-day", "0"), "backup", "--stream", stream, "--format", "ndjson", "--stdin", "--time", strconv.FormatInt(start, 10), "--position", "0")
	c.ok(g("-docs", docs, "-day", "1"), "backup", "--stream", stream, "--format", "ndjson", "--stdin", "--time", strconv.FormatInt(start+86400, 10), "--position", fmt.Sprint(pos1))
	if tamper != nil {
		ev1 = tamper(ev1)
	}
	c.ok(append(ev1, ev2...), "log", "--stream", stream, "--stdin", "--segment-bytes", "16384")
	return start
}

// loseUpdate is a capture that missed an update: the last put of the log
// carries an older document, so the log still decodes and chains, but
// replaying it does not reach the next snapshot's state.
func loseUpdate(t *testing.T) func([]byte) []byte {
	return func(ev []byte) []byte {
		lines := bytes.SplitAfter(ev, []byte("\n"))
		for i := len(lines) - 1; i >= 0; i-- {
			if bytes.Contains(lines[i], []byte(`"op":"put"`)) {
				lines[i] = bytes.Replace(lines[i], []byte(`"doc":{`), []byte(`"doc":{"stale":true,`), 1)
				return bytes.Join(lines, nil)
			}
		}
		t.Fatal("no put event to tamper with")
		return nil
	}
}

func drillRecords(t *testing.T, dir string) []ops.DrillRecord {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "drills", "*.json"))
	var out []ops.DrillRecord
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := ops.DecodeDrillRecord(b)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out = append(out, *rec)
	}
	return out
}

func checkOf(rec ops.DrillRecord, name string) (ops.Check, bool) {
	for _, c := range rec.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return ops.Check{}, false
}

// TestDrillProofs: a clean stream drills green, with its snapshot and
// replay proofs checked and a record beside the snapshots; a stream whose
// capture lost an update fails its replay proof in the drill and in
// check --read-data, both with exit code 3, and the failed drill is
// recorded too.
func TestDrillProofs(t *testing.T) {
	c := newCLI(t)
	dir := c.vars["STRATA_REPO"]
	c.ok(nil, "init")
	start := drillStream(t, c, "shop/users", nil)
	at := strconv.FormatInt(start+3600, 10) // base: the day-0 snapshot; the next one is day 1

	out := c.ok(nil, "drill", "--stream", "shop/*", "--at", at, "--json")
	var recs []ops.DrillRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(recs) != 1 || !recs[0].OK || recs[0].Records == 0 || recs[0].RTOSeconds <= 0 || recs[0].Stream != "shop/users" {
		t.Fatalf("clean drill: %+v", recs)
	}
	for _, name := range []string{"restore", "snapshot-proof", "replay-proof"} {
		if ck, ok := checkOf(recs[0], name); !ok || !ck.OK || ck.Unproven {
			t.Errorf("clean drill: check %s: %+v (present %v)", name, ck, ok)
		}
	}
	if stored := drillRecords(t, dir); len(stored) != 1 || !stored[0].OK || stored[0].Records != recs[0].Records {
		t.Fatalf("stored drill records: %+v", stored)
	}
	// The newest instant: the base is the newest snapshot, there is nothing
	// to replay to, and that is said as unproven, never as proven.
	out = c.ok(nil, "drill", "--stream", "shop/users")
	if !strings.Contains(out, "replay-proof: unproven") || !strings.Contains(out, "snapshot-proof: ok") {
		t.Errorf("drill at the newest instant:\n%s", out)
	}
	c.ok(nil, "drill", "--stream", "shop/users", "--random")
	c.ok(nil, "check", "--read-data")

	// An opaque dump has no proof: its drill restores the bytes and says
	// unproven, never ok, for the proofs.
	c.ok([]byte("an opaque dump\n"), "backup", "--stream", "dump", "--format", "raw", "--stdin")
	out = c.ok(nil, "drill", "--stream", "dump")
	if !strings.Contains(out, "restore: ok") || !strings.Contains(out, "snapshot-proof: unproven") || strings.Contains(out, "proof: ok") {
		t.Errorf("drill of a raw snapshot:\n%s", out)
	}

	start = drillStream(t, c, "shop/lost", loseUpdate(t))
	code, out, errs := c.run(nil, "drill", "--stream", "shop/lost", "--at", strconv.FormatInt(start+3600, 10))
	if code != exitDamage || !strings.Contains(out, "replay-proof: FAILED") || !strings.Contains(errs, "does not match its proof") {
		t.Fatalf("drill of a log that skipped an update: exit %d\n%s\n%s", code, out, errs)
	}
	var failed *ops.DrillRecord
	for _, r := range drillRecords(t, dir) {
		if r.Stream == "shop/lost" {
			failed = &r
		}
	}
	if failed == nil || failed.OK || failed.Error == "" {
		t.Fatalf("failed drill record: %+v", failed)
	}
	if ck, _ := checkOf(*failed, "replay-proof"); ck.OK || ck.Unproven {
		t.Errorf("failed drill's replay check: %+v", ck)
	}
	code, out, _ = c.run(nil, "check", "--read-data")
	if code != exitDamage || !strings.Contains(out, "replay proof of shop/lost") || strings.Contains(out, "replay proof of shop/users") {
		t.Fatalf("check --read-data with a log that skipped an update: exit %d\n%s", code, out)
	}
	// A plain restore of either snapshot still proves itself.
	c.ok(nil, "restore", "--stream", "shop/lost")
}

// TestDrillThroughServer: a drill through the index server with a
// restore-only token records its result on the server; a token that may
// only back up the stream is refused, and so is a record about a stream
// the token may not restore.
func TestDrillThroughServer(t *testing.T) {
	local := newCLI(t)
	dir := local.vars["STRATA_REPO"]
	local.ok(nil, "init")
	start := drillStream(t, local, "shop/users", nil)
	srv, tok := serveWithTokens(t, local, map[string]string{"drill": "restore:shop/*", "writer": "backup:shop/*", "other": "restore:other/*", "admin": "admin"})
	as := func(who string) *cli {
		c := newCLI(t)
		c.vars["STRATA_REPO"] = srv.url
		c.vars["STRATA_TOKEN"] = tok[who]
		return c
	}
	out := as("drill").ok(nil, "drill", "--stream", "shop/users", "--at", strconv.FormatInt(start+3600, 10))
	if !strings.Contains(out, "replay-proof: ok") {
		t.Errorf("drill through the server:\n%s", out)
	}
	as("drill").ok(nil, "drill", "--stream", "shop/users") // the newest snapshot's instant: provable through a server
	if recs := drillRecords(t, dir); len(recs) != 2 || !recs[0].OK || !recs[1].OK {
		t.Fatalf("drill records on the server: %+v", recs)
	}
	if code, _, errs := as("writer").run(nil, "drill", "--stream", "shop/users"); code == 0 {
		t.Errorf("a backup-only token drilled: %s", errs)
	}
	// A record about a stream outside the token's globs is refused by the
	// server, and so is one from a token without a restore scope.
	rec, _ := json.Marshal(ops.DrillRecord{Stream: "shop/users", Time: time.Now().UTC(), OK: true, Checks: []ops.Check{}})
	for who, want := range map[string]int{"other": http.StatusForbidden, "writer": http.StatusForbidden, "drill": http.StatusCreated} {
		req, _ := http.NewRequest(http.MethodPut, srv.url+"/v1/objects/"+repo.DrillName(time.Now().UnixNano()), bytes.NewReader(rec))
		req.Header.Set("Authorization", "Bearer "+tok[who])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("PUT of a drill record of shop/users by %s: %d, want %d", who, resp.StatusCode, want)
		}
	}
	if recs := drillRecords(t, dir); len(recs) != 3 {
		t.Fatalf("%d drill records after the refused writes, want 3", len(recs))
	}
	// check --read-data through the server replays the pair too.
	out = as("admin").ok(nil, "check", "--read-data")
	if strings.Contains(out, "replay proof") || !strings.Contains(out, "no problems found") {
		t.Errorf("check --read-data through the server:\n%s", out)
	}
}
