package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/internal/testenv"
)

// rollbackCommand returns the arguments of the command a forced restore
// printed to put its target back, without the leading "strata".
func rollbackCommand(t *testing.T, stderr string) []string {
	t.Helper()
	_, after, ok := strings.Cut(stderr, "to put it back:\n  ")
	if !ok {
		t.Fatalf("no rollback command in:\n%s", stderr)
	}
	line, _, _ := strings.Cut(after, "\n")
	if strings.ContainsAny(line, `'"\`) {
		t.Fatalf("the test splits the command on spaces; it is quoted: %s", line)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "strata" || f[1] != "restore" {
		t.Fatalf("rollback command %q", line)
	}
	return f[1:]
}

// rollbackStreams lists the streams of the repository that hold rollback
// points, with their snapshot counts.
func rollbackStreams(t *testing.T, c *cli) map[string]int {
	t.Helper()
	var snaps []struct{ Stream string }
	if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range snaps {
		if strings.Contains(s.Stream, ".rollback.") {
			out[s.Stream]++
		}
	}
	return out
}

func TestRollbackStreamName(t *testing.T) {
	at := time.Date(2026, 12, 5, 19, 55, 24, 900, time.FixedZone("x", 3600))
	if got, err := rollbackStream("cache/main", at); err != nil || got != "cache/main.rollback.20261205T185524Z" {
		t.Fatalf("rollbackStream = %q, %v", got, err)
	}
	if _, err := rollbackStream(strings.Repeat("s", 180), at); err == nil || !strings.Contains(err.Error(), "--no-rollback-point") {
		t.Fatalf("a name too long for a rollback point: %v", err)
	}
	if got := shellJoin("strata", "--repo", "/a b/it's", "x"); got != `strata --repo '/a b/it'\''s' x` {
		t.Fatalf("shellJoin = %s", got)
	}
	if got := commandURL("redis://u:secret@127.0.0.1:1/2"); got != "redis://u@127.0.0.1:1/2" {
		t.Fatalf("commandURL = %s", got)
	}
}

// TestRollbackPointRedis: a forced restore over live data first snapshots
// it, and the command it prints puts the target back exactly; an empty
// target and --no-rollback-point take none; a snapshot that fails stops
// the restore before it touches the target.
func TestRollbackPointRedis(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	sc := src.Client(t)
	redisWrites(sc, "src", 20)
	want := sc.State()
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok(nil, "backup", "--stream", "kv", "--source", "redis://"+src.Addr)

	dst := redistest.Start(t, redistest.Options{})
	dc := dst.Client(t)
	redisWrites(dc, "live", 7)
	dc.Must("SET", "only-live", "x")
	dc.Must("PEXPIRE", "only-live", 3600_000)
	before := dc.State()

	// The target's user may restore (INFO, REPLICAOF) but not be read as a
	// replica (PSYNC): the rollback point fails, and nothing starts.
	dc.Must("ACL", "SETUSER", "restorer", "on", ">Hunter2-pw", "~*", "+info", "+replicaof", "+ping")
	limited := "redis://restorer:Hunter2-pw@" + dst.Addr
	code, _, errs := c.run(nil, "restore", "--stream", "kv", "--target", limited, "--force")
	if code == 0 || !strings.Contains(errs, "no rollback point, so the restore did not start") || strings.Contains(errs, "Hunter2") {
		t.Fatalf("restore whose rollback point fails: exit %d\n%s", code, errs)
	}
	if got := dc.State(); got != before {
		t.Fatalf("the target changed though the rollback point failed:\n got %s\nwant %s", got, before)
	}
	if n := len(rollbackStreams(t, c)); n != 0 {
		t.Fatalf("%d rollback streams after a failed rollback point", n)
	}

	code, _, errs = c.run(nil, "restore", "--stream", "kv", "--target", "redis://"+dst.Addr, "--force")
	if code != 0 {
		t.Fatalf("forced restore: exit %d\n%s", code, errs)
	}
	if got := dc.State(); got != want {
		t.Fatalf("forced restore:\n got %s\nwant %s", got, want)
	}
	t.Logf("forced restore said:\n%s", errs)
	undo := rollbackCommand(t, errs)
	rb := rollbackStreams(t, c)
	if len(rb) != 1 {
		t.Fatalf("rollback streams %v", rb)
	}
	for name := range rb {
		if !strings.HasPrefix(name, "kv.rollback.") || !strings.Contains(strings.Join(undo, " "), "--stream "+name) {
			t.Fatalf("rollback stream %s, command %v", name, undo)
		}
	}
	if code, _, errs := c.run(nil, undo...); code != 0 {
		t.Fatalf("strata %v: exit %d\n%s", undo, code, errs)
	}
	if got := dc.State(); got != before {
		t.Fatalf("after the rollback command:\n got %s\nwant %s", got, before)
	}

	// --no-rollback-point takes none; nor does an empty target.
	n := len(rollbackStreams(t, c))
	_, _, errs = c.run(nil, "restore", "--stream", "kv", "--target", "redis://"+dst.Addr, "--force", "--no-rollback-point")
	if got := dc.State(); got != want || strings.Contains(errs, "rollback point") {
		t.Fatalf("--no-rollback-point: %s\n%s", got, errs)
	}
	empty := redistest.Start(t, redistest.Options{})
	c.ok(nil, "restore", "--stream", "kv", "--target", "redis://"+empty.Addr, "--force")
	if got := len(rollbackStreams(t, c)); got != n {
		t.Fatalf("rollback streams went from %d to %d without a target to roll back", n, got)
	}
	// A restore that fails after the rollback point names it in its error.
	redisWrites(dc, "again", 2)
	held := dc.State()
	c.ok([]byte(`{"_id":"a"}`+"\n"), "backup", "--stream", "nd", "--format", "ndjson", "--stdin")
	code, _, errs = c.run(nil, "restore", "--stream", "nd", "--target", "redis://"+dst.Addr, "--force")
	if code == 0 || !strings.Contains(errs, "not a redis base") || !strings.Contains(errs, "what it held before is in rollback point nd.rollback.") || dc.State() != held {
		t.Fatalf("a forced restore that fails: exit %d\n%s", code, errs)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "kv", "--to", "-", "--no-rollback-point"); code != exitUsage {
		t.Fatalf("--no-rollback-point without --target: exit %d %s", code, errs)
	}
}

// TestRollbackPointEtcd: the same round trip on etcd, and a restore whose
// rollback point cannot be named does not start.
func TestRollbackPointEtcd(t *testing.T) {
	src := etcdtest.Start(t)
	sc := src.Client(t)
	ctx := t.Context()
	for i := range 30 {
		if _, err := sc.Put(ctx, fmt.Sprintf("app/k%02d", i), fmt.Sprint("src-", i)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := src.Dump(t)
	c := newCLI(t)
	c.ok(nil, "init")
	long := strings.Repeat("e", 180)
	for _, s := range []string{"e", long} {
		c.ok(nil, "backup", "--stream", s, "--source", src.URL)
	}

	dst := etcdtest.Start(t)
	dcl := dst.Client(t)
	for i := range 12 {
		if _, err := dcl.Put(ctx, fmt.Sprintf("app/k%02d", i*3), fmt.Sprint("live-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dcl.Put(ctx, "other/only-live", "x"); err != nil {
		t.Fatal(err)
	}
	before, _ := dst.Dump(t)

	code, _, errs := c.run(nil, "restore", "--stream", long, "--target", dst.URL, "--force")
	if got, _ := dst.Dump(t); code == 0 || !strings.Contains(errs, "no rollback point") || !maps.Equal(got, before) {
		t.Fatalf("restore without room for a rollback point: exit %d\n%s", code, errs)
	}

	code, _, errs = c.run(nil, "restore", "--stream", "e", "--target", dst.URL, "--force")
	if code != 0 {
		t.Fatalf("forced restore: exit %d\n%s", code, errs)
	}
	if got, _ := dst.Dump(t); !maps.Equal(got, want) {
		t.Fatalf("forced restore: got %v, want %v", got, want)
	}
	t.Logf("forced restore said:\n%s", errs)
	undo := rollbackCommand(t, errs)
	c.ok(nil, undo...)
	if got, _ := dst.Dump(t); !maps.Equal(got, before) {
		t.Fatalf("after the rollback command: got %v, want %v", got, before)
	}
	n := len(rollbackStreams(t, c))
	c.ok(nil, "restore", "--stream", "e", "--target", dst.URL, "--force", "--no-rollback-point")
	if got, _ := dst.Dump(t); !maps.Equal(got, want) || len(rollbackStreams(t, c)) != n {
		t.Fatalf("--no-rollback-point: %v, %d rollback streams (was %d)", got, len(rollbackStreams(t, c)), n)
	}
}

// TestRollbackPointMongo: the same round trip on MongoDB (FerretDB), on a
// target database that holds the collections the restore writes.
func TestRollbackPointMongo(t *testing.T) {
	srv := mongotest.Start(t, mongotest.Options{})
	mongoWrites(t, srv.Client.Database("src"), "s", 12)
	want := mongoState(t, srv.Client, "src")
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok(nil, "backup", "--stream", "m", "--source", srv.URI+"src")

	mongoWrites(t, srv.Client.Database("live"), "l", 9)
	before := mongoState(t, srv.Client, "live")
	code, _, errs := c.run(nil, "restore", "--stream", "m", "--target", srv.URI+"live", "--force")
	if code != 0 {
		t.Fatalf("forced restore: exit %d\n%s", code, errs)
	}
	if got := mongoState(t, srv.Client, "live"); got != want {
		t.Fatalf("forced restore:\n got %s\nwant %s", got, want)
	}
	c.ok(nil, rollbackCommand(t, errs)...)
	if got := mongoState(t, srv.Client, "live"); got != before {
		t.Fatalf("after the rollback command:\n got %s\nwant %s", got, before)
	}
}

// TestRollbackPointThroughServer: through an index server the rollback
// point is a backup like any other, so the token must be allowed to write
// the rollback stream; a token that may only restore gets a refusal before
// the target is touched, and the printed command names the server.
func TestRollbackPointThroughServer(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	redisWrites(src.Client(t), "src", 5)
	local := newCLI(t)
	dir := local.vars["STRATA_REPO"]
	local.ok(nil, "init")
	local.ok(nil, "backup", "--stream", "kv", "--source", "redis://"+src.Addr)
	tokens := filepath.Join(t.TempDir(), "tokens")
	restoreOnly := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "r", "--scope", "restore:kv*,read"))
	both := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "rb", "--scope", "restore:kv*,backup:kv.rollback.*,read"))
	wide := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "w", "--scope", "restore:kv*,backup:kv*,read"))
	// A stream whose newest instant a server's plan cannot prove.
	local.ok([]byte(`{"_id":"a"}`+"\n"), "backup", "--stream", "kv-nd", "--format", "ndjson", "--time", "1767225600", "--position", "0", "--stdin")
	local.ok([]byte(`{"seq":1,"ts":1767225601,"op":"put","key":"b","doc":{"_id":"b"}}`+"\n"), "log", "--stream", "kv-nd", "--stdin")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port))

	dst := redistest.Start(t, redistest.Options{})
	dc := dst.Client(t)
	redisWrites(dc, "live", 3)
	before := dc.State()
	c := newCLI(t)
	c.vars["STRATA_REPO"], c.vars["STRATA_TOKEN"] = srv.url, restoreOnly
	code, _, errs := c.run(nil, "restore", "--stream", "kv", "--target", "redis://"+dst.Addr, "--force")
	if code == 0 || !strings.Contains(errs, "no rollback point") || dc.State() != before {
		t.Fatalf("restore with a token that may not write the rollback point: exit %d\n%s", code, errs)
	}
	// A plan the client must refuse takes no rollback point first.
	c.vars["STRATA_TOKEN"] = wide
	code, _, errs = c.run(nil, "restore", "--stream", "kv-nd", "--at", "1767225601", "--target", "redis://"+dst.Addr, "--force")
	if code != exitDamage || !strings.Contains(errs, "does not prove") || strings.Contains(errs, "taking a rollback point") || dc.State() != before {
		t.Fatalf("an unprovable plan: exit %d\n%s", code, errs)
	}
	if n := len(rollbackStreams(t, local)); n != 0 {
		t.Fatalf("%d rollback streams after refused restores", n)
	}
	c.vars["STRATA_TOKEN"] = both
	code, _, errs = c.run(nil, "restore", "--stream", "kv", "--target", "redis://"+dst.Addr, "--force")
	if code != 0 || dc.State() == before {
		t.Fatalf("forced restore through the server: exit %d\n%s", code, errs)
	}
	undo := rollbackCommand(t, errs)
	if !strings.Contains(strings.Join(undo, " "), "--repo "+srv.url+" ") {
		t.Fatalf("the rollback command does not name the server: %v", undo)
	}
	c.ok(nil, undo...)
	if got := dc.State(); got != before {
		t.Fatalf("after the rollback command:\n got %s\nwant %s", got, before)
	}
}
