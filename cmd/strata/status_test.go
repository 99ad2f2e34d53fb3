package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
)

// statusPolicy is the policy the status tests grade by: a stream's RPO is
// a warning past 5 minutes and a failure past 30.
const statusPolicy = `
streams:
  - match: "shop/*"
    rpo: {warning: 5m, failure: 30m}
    snapshot_age: {warning: 26h, failure: 50h}
    rto: {warning: 10m, failure: 1h}
`

// addStream stores a snapshot of stream taken an hour before newest, at
// position 0, and a log of 30 events whose last is at newest.
func addStream(c *cli, stream string, newest time.Time) {
	c.t.Helper()
	start := newest.Add(-time.Hour)
	c.ok(genNDJSON(50, uint64(len(stream))), "backup", "--stream", stream, "--format", "ndjson", "--time", start.Format(time.RFC3339Nano), "--position", "0", "--stdin")
	var events bytes.Buffer
	for p := 1; p <= 30; p++ {
		fmt.Fprintf(&events, `{"seq":%d,"ts":%q,"op":"put","key":"k%03d","doc":{"_id":"k%03d","n":%d}}`+"\n",
			p, start.Add(time.Duration(p)*2*time.Minute).Format(time.RFC3339Nano), p, p, p)
	}
	c.ok(events.Bytes(), "log", "--stream", stream, "--stdin", "--segment-bytes", "1024")
}

// putRecord writes a drill or scrub record straight into the repository,
// as `strata drill` and `strata scrub` do.
func putRecord(t *testing.T, dir, name string, v any) {
	t.Helper()
	st, err := local.OpenExisting(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), name, b); err != nil {
		t.Fatal(err)
	}
}

func statusOf(t *testing.T, c *cli, args ...string) (int, *ops.Report) {
	t.Helper()
	code, out, errs := c.run(nil, append([]string{"status", "--json"}, args...)...)
	var rep ops.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
	return code, &rep
}

func streamState(t *testing.T, rep *ops.Report, stream string) ops.State {
	t.Helper()
	for _, s := range rep.Streams {
		if s.Stream == stream {
			return s.State
		}
	}
	t.Fatalf("stream %s missing from status", stream)
	return 0
}

// TestStatusCommand: streams that fall behind their RPO move status from
// ok (exit 0) to warning (1) to failure (2); a failed drill is a failure;
// the same report comes through the index server with a read token.
func TestStatusCommand(t *testing.T) {
	c := newCLI(t)
	dir := c.vars["STRATA_REPO"]
	c.ok(nil, "init")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(statusPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	addStream(c, "shop/orders", now.Add(-time.Minute))
	code, rep := statusOf(t, c, "--policy", policy)
	if code != 0 || rep.State != ops.OK || streamState(t, rep, "shop/orders") != ops.OK {
		t.Fatalf("fresh stream: exit %d, %+v", code, rep)
	}
	if s := rep.Streams[0]; len(s.Windows) != 1 || s.Snapshots != 1 || s.RPOSeconds == nil || *s.RPOSeconds < 60 || *s.RPOSeconds > 600 {
		t.Fatalf("fresh stream: %+v", s)
	}

	addStream(c, "shop/late", now.Add(-10*time.Minute))
	code, rep = statusOf(t, c, "--policy", policy)
	if code != 1 || rep.State != ops.Warning || streamState(t, rep, "shop/late") != ops.Warning || streamState(t, rep, "shop/orders") != ops.OK {
		t.Fatalf("a stream 10 minutes behind: exit %d, %+v", code, rep)
	}
	addStream(c, "shop/stale", now.Add(-40*time.Minute))
	code, out, _ := c.run(nil, "status", "--policy", policy)
	if code != 2 || !strings.Contains(out, "FAILURE shop/stale: rpo:") || !strings.Contains(out, "WARNING shop/late: rpo:") || !strings.Contains(out, "state: failure") {
		t.Fatalf("a stream 40 minutes behind: exit %d\n%s", code, out)
	}
	// Without a policy only hard facts count.
	if code, rep := statusOf(t, c); code != 0 || rep.State != ops.OK {
		t.Fatalf("no policy: exit %d, %+v", code, rep)
	}
	// A failed drill of the fresh stream fails it, policy or not.
	putRecord(t, dir, repo.DrillName(now.UnixNano()), ops.DrillRecord{Stream: "shop/orders", Time: now, OK: false, Error: "replay proof: digest differs"})
	if code, rep := statusOf(t, c); code != 2 || streamState(t, rep, "shop/orders") != ops.Failure {
		t.Fatalf("failed drill: exit %d, %+v", code, rep)
	}
	// A bad policy is refused before anything is read.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("streams: [{match: 'x', rpo: {warning: 2h, failure: 1h}}]"), 0o600)
	if code, _, errs := c.run(nil, "status", "--policy", bad); code != exitUsage || !strings.Contains(errs, "warning level") {
		t.Fatalf("bad policy: exit %d, %s", code, errs)
	}

	// Through the server, with a read token: the same states.
	srv, tok := startStatusServer(t, c, policy)
	remote := newCLI(t)
	remote.vars["STRATA_REPO"] = srv.url
	remote.vars["STRATA_TOKEN"] = tok["reader"]
	code, rep = statusOf(t, remote, "--policy", policy)
	if code != 2 || streamState(t, rep, "shop/orders") != ops.Failure || streamState(t, rep, "shop/late") != ops.Warning || streamState(t, rep, "shop/stale") != ops.Failure {
		t.Fatalf("status through the server: exit %d, %+v", code, rep)
	}
	for _, s := range rep.Streams {
		if (s.Stream == "shop/orders") != (s.LastDrill != nil && !s.LastDrill.OK) {
			t.Fatalf("status through the server: drill record of %s: %+v", s.Stream, s.LastDrill)
		}
		if s.Segments == 0 || len(s.Windows) != 1 {
			t.Fatalf("status through the server: %+v", s)
		}
	}
}

// startStatusServer serves c's repository with the policy, and returns
// tokens "reader" (read) and "writer" (backup only).
func startStatusServer(t *testing.T, c *cli, policy string) (*liveServer, map[string]string) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	tok := map[string]string{}
	for name, scope := range map[string]string{"reader": "read", "writer": "backup:shop/*"} {
		tok[name] = strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", name, "--scope", scope))
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return startServe(t, c.vars["STRATA_REPO"], tokens, fmt.Sprintf("127.0.0.1:%d", port), "--policy", policy), tok
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}

// login signs in to the status page with token and returns the response.
func login(t *testing.T, base, token string) *http.Response {
	t.Helper()
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
