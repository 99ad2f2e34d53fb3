package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
)

// liveServer is `strata serve` running in-process on a loopback port.
type liveServer struct {
	url    string
	cancel context.CancelFunc
	done   chan int
	log    *testenv.SyncBuffer
}

// startServe runs `strata serve` on the repository at dir until stopped.
func startServe(t *testing.T, dir, tokens, addr string) *liveServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &liveServer{url: "http://" + addr, cancel: cancel, done: make(chan int, 1), log: &testenv.SyncBuffer{}}
	env := &environment{getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: io.Discard, stderr: s.log}
	go func() {
		s.done <- run(ctx, []string{"serve", "--repo", dir, "--listen", addr, "--tokens", tokens}, env)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited %d:\n%s", code, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop is SIGTERM's path: cancel, then in-flight requests finish.
func (s *liveServer) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if code := <-s.done; code != 0 {
		t.Errorf("serve exited %d:\n%s", code, s.log.String())
	}
}

// TestServerEndToEnd: the CLI against `strata serve` on loopback — remote
// backup, log capture, restore and restore --at, coverage, snapshots; a
// token outside its scope refused with nothing stored; forget, prune and
// check as admin; the audit trail and metrics; and a server restart that
// rebuilds the same catalog.
func TestServerEndToEnd(t *testing.T) {
	local := newCLI(t)
	dir := local.vars["STRATA_REPO"]
	local.ok(nil, "init")
	tokens := filepath.Join(t.TempDir(), "tokens")
	tok := map[string]string{}
	for name, scope := range map[string]string{"ci": "backup:shop/*,restore:shop/*,read", "admin": "admin", "intruder": "backup:other/*,read"} {
		tok[name] = strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", name, "--scope", scope))
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := startServe(t, dir, tokens, addr)
	as := func(who string) *cli {
		c := newCLI(t)
		c.vars["STRATA_REPO"] = srv.url
		c.vars["STRATA_TOKEN"] = tok[who]
		return c
	}
	ci, admin := as("ci"), as("admin")

	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	data := genNDJSON(5000, 7)
	id := strings.TrimSpace(ci.ok(data, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Format(time.RFC3339), "--position", "0", "--stdin"))
	if len(id) != 64 {
		t.Fatalf("remote backup printed %q", id)
	}
	var events bytes.Buffer
	for p := 1; p <= 300; p++ {
		fmt.Fprintf(&events, `{"seq":%d,"ts":%q,"op":"put","key":"%08x","doc":{"_id":"%08x","n":%d,"s":"changed"}}`+"\n",
			p, t0.Add(time.Duration(p)*time.Minute).Format(time.RFC3339), p*3, p*3, p)
	}
	ci.ok(events.Bytes(), "log", "--stream", "shop/users", "--stdin", "--segment-bytes", "4096")

	// Restores through the server equal restores straight from the storage.
	if got := ci.ok(nil, "restore", "--stream", "shop/users"); got != string(data) {
		t.Fatal("remote restore of the snapshot differs from the export")
	}
	// At the newest event itself nothing proves that the server did not
	// hide a later segment: the client refuses (the storage lists it all).
	newest := t0.Add(300 * time.Minute).Format(time.RFC3339)
	if code, _, stderr := ci.run(nil, "restore", "--stream", "shop/users", "--at", newest); code == 0 || !strings.Contains(stderr, "does not prove that it reaches its target") {
		t.Fatalf("remote restore at the newest event: exit %d, %s", code, stderr)
	}
	local.ok(nil, "restore", "--stream", "shop/users", "--at", newest)
	for _, at := range []string{t0.Add(90 * time.Minute).Format(time.RFC3339), t0.Add(299*time.Minute + 30*time.Second).Format(time.RFC3339)} {
		remote := ci.ok(nil, "restore", "--stream", "shop/users", "--at", at)
		direct := local.ok(nil, "restore", "--stream", "shop/users", "--at", at)
		if remote != direct || !strings.Contains(remote, `"s":"changed"`) {
			t.Fatalf("restore --at %s through the server differs from the direct one", at)
		}
	}
	if plan := ci.ok(nil, "restore", "--stream", "shop/users", "--at-position", "150", "--dry-run"); !strings.Contains(plan, "base snapshot "+id[:8]) {
		t.Fatalf("remote dry run: %s", plan)
	}
	var cov struct {
		Windows []struct {
			ToPos uint64 `json:"to_position"`
		}
	}
	if err := json.Unmarshal([]byte(ci.ok(nil, "coverage", "--stream", "shop/users", "--json")), &cov); err != nil || len(cov.Windows) != 1 || cov.Windows[0].ToPos != 300 {
		t.Fatalf("remote coverage: %+v %v", cov, err)
	}
	if out := ci.ok(nil, "snapshots", "--stream", "shop/users"); !strings.Contains(out, id[:16]) {
		t.Fatalf("remote snapshots: %s", out)
	}

	// Out of scope: refused before anything is uploaded.
	before := countFiles(t, dir)
	code, _, errOut := as("intruder").run(data, "backup", "--stream", "shop/users", "--stdin")
	if code == 0 || !strings.Contains(errOut, "may not back up stream shop/users") {
		t.Fatalf("intruder backup: exit %d: %s", code, errOut)
	}
	if code, _, errOut := as("intruder").run(nil, "restore", "--stream", "shop/users"); code == 0 || !strings.Contains(errOut, "403") {
		t.Fatalf("intruder restore: exit %d: %s", code, errOut)
	}
	if code, _, _ := ci.run(nil, "forget", "--stream", "shop/users", "--keep-last", "1"); code == 0 {
		t.Fatal("forget with a backup token succeeded")
	}
	if after := countFiles(t, dir); after != before {
		t.Fatalf("refused requests changed the repository: %d files, then %d", before, after)
	}
	if code, _, errOut := as("nobody").run(nil, "snapshots"); code == 0 || !strings.Contains(errOut, "STRATA_TOKEN") {
		t.Fatalf("no token: exit %d: %s", code, errOut)
	}

	// A second snapshot, then admin work: forget, prune, check.
	ci.ok(data[:len(data)/2], "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Add(301*time.Minute).Format(time.RFC3339), "--position", "300", "--stdin")
	if out := admin.ok(nil, "forget", "--stream", "shop/users", "--keep-last", "1", "--prune", "--grace", "0s"); !strings.Contains(out, "removed snapshot "+id[:8]) {
		t.Fatalf("remote forget: %s", out)
	}
	if out := admin.ok(nil, "check", "--read-data"); !strings.Contains(out, "no problems found") {
		t.Fatalf("remote check: %s", out)
	}

	// The audit trail, through the server and straight from the storage.
	audit := admin.ok(nil, "audit")
	for _, want := range []string{"backup", "ci", "log", "forget", "restore", "check", "intruder", "refused"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q:\n%s", want, audit)
		}
	}
	if code, _, _ := ci.run(nil, "audit"); code == 0 {
		t.Error("a backup token read the audit trail")
	}
	req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok["admin"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// (No log lag series now: forget removed the whole log behind the newest snapshot.)
	for _, want := range []string{"strata_backups_total 2", `strata_restores_total{result="ok"}`, "strata_checks_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Restart: the catalog is rebuilt from the repository, nothing lost.
	covBefore := ci.ok(nil, "coverage", "--stream", "shop/users")
	srv.stop(t)
	if !strings.Contains(srv.log.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", srv.log.String())
	}
	startServe(t, dir, tokens, addr)
	if after := ci.ok(nil, "coverage", "--stream", "shop/users"); stripLag(after) != stripLag(covBefore) {
		t.Fatalf("coverage changed over a restart:\n%s\n%s", covBefore, after)
	}
	if got := ci.ok(nil, "restore", "--stream", "shop/users"); got != string(data[:len(data)/2]) {
		t.Fatal("restore after a server restart differs")
	}
	if local := local.ok(nil, "audit"); !strings.Contains(local, "forget") {
		t.Errorf("audit read from the storage lacks the forget:\n%s", local)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "/audit/") {
			n++
		}
		return nil
	})
	return n
}

func stripLag(s string) string {
	if i := strings.Index(s, "(lag"); i >= 0 {
		return s[:i]
	}
	return s
}
