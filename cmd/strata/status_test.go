package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
// position 0, and a log of 30 events whose last is at newest; with gap,
// positions 16 to 19 are missing from the log.
func addStream(c *cli, stream string, newest time.Time, gap ...bool) {
	c.t.Helper()
	start := newest.Add(-time.Hour)
	c.ok(genNDJSON(50, uint64(len(stream))), "backup", "--stream", stream, "--format", "ndjson", "--time", start.Format(time.RFC3339Nano), "--position", "0", "--stdin")
	var events bytes.Buffer
	for p := 1; p <= 30; p++ {
		if len(gap) > 0 && gap[0] && p >= 16 && p <= 19 {
			continue
		}
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
func startStatusServer(t *testing.T, c *cli, policy string, extra ...string) (*liveServer, map[string]string) {
	t.Helper()
	return serveWithTokens(t, c, map[string]string{"reader": "read", "writer": "backup:shop/*"}, append([]string{"--policy", policy}, extra...)...)
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

// requireTool finds a program the operations tests drive (chromium,
// promtool). It skips when the program is absent, except in CI (CI=true or
// STRATA_REQUIRE_DATABASES=1), where .ci/run installs it and its absence
// is a broken setup.
func requireTool(t *testing.T, envVar, name, pkg string) string {
	t.Helper()
	if bin := os.Getenv(envVar); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" || os.Getenv("STRATA_REQUIRE_DATABASES") == "1" {
		t.Fatalf("%s not found under CI: .ci/run installs Debian's %s", name, pkg)
	}
	t.Skipf("%s not found: apt-get install %s to run this test", name, pkg)
	return ""
}

var rowRE = regexp.MustCompile(`<tr class="row-(\w+)" data-stream="([^"]+)" data-state="(\w+)">`)

// pageStates reads each stream's state from the page's rows.
func pageStates(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		if m[1] != m[3] {
			t.Fatalf("row of %s: class %s but state %s", m[2], m[1], m[3])
		}
		out[m[2]] = m[3]
	}
	return out
}

func getPage(t *testing.T, base string, cookie *http.Cookie) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestStatusPage: the status page behind its login form, as a stream falls
// behind (ok, then warning, then failure), the same states in the metrics,
// and the page rendered by a real browser (headless chromium) that signs
// in through the form itself, whose DOM holds every stream with its state.
func TestStatusPage(t *testing.T) {
	c := newCLI(t)
	dir := c.vars["STRATA_REPO"]
	c.ok(nil, "init")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(statusPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	addStream(c, "shop/orders", now.Add(-time.Minute))
	putRecord(t, dir, repo.DrillName(now.UnixNano()), ops.DrillRecord{Stream: "shop/orders", Time: now, At: now.Add(-2 * time.Minute), OK: true, RTOSeconds: 4.2})
	putRecord(t, dir, repo.ScrubName(now.UnixNano()), ops.ScrubRecord{Time: now, PacksRead: 12, BadShards: 1, Repaired: 1})
	// One day of timeline, so the streams' hour of history shows.
	srv, tok := startStatusServer(t, c, policy, "--status-days", "1")

	// Without a session: the login form, and nothing else.
	code, _, h := getPage(t, srv.url, nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("GET / without a cookie: %d %v", code, h)
	}
	if code, _, _ := getPage(t, srv.url, &http.Cookie{Name: "strata_session", Value: "forged"}); code != http.StatusSeeOther {
		t.Fatalf("GET / with a forged cookie: %d", code)
	}
	for _, bad := range []string{"", "strata_nottoken", tok["writer"]} {
		resp := login(t, srv.url, bad)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Fatalf("login with %q: %d, cookies %v", bad, resp.StatusCode, resp.Cookies())
		}
	}
	resp := login(t, srv.url, tok["reader"])
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Value == tok["reader"] || strings.Contains(cookie.Value, "strata_") {
		t.Fatalf("session cookie: %+v", cookie)
	}
	page := func() map[string]string {
		t.Helper()
		code, body, h := getPage(t, srv.url, &http.Cookie{Name: cookie.Name, Value: cookie.Value})
		if code != http.StatusOK || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || strings.Contains(body, "<script") {
			t.Fatalf("GET / signed in: %d %v\n%s", code, h, body)
		}
		return pageStates(t, body)
	}
	if got := page(); len(got) != 1 || got["shop/orders"] != "ok" {
		t.Fatalf("page with a fresh stream: %v", got)
	}

	// Streams written through the server, one behind its RPO warning
	// level, then one behind its failure level.
	writer := newCLI(t)
	writer.vars["STRATA_REPO"], writer.vars["STRATA_TOKEN"] = srv.url, tok["writer"]
	addStream(writer, "shop/late", now.Add(-10*time.Minute))
	if got := page(); got["shop/late"] != "warning" || got["shop/orders"] != "ok" {
		t.Fatalf("page with a stream 10 minutes behind: %v", got)
	}
	addStream(writer, "shop/stale", now.Add(-40*time.Minute), true)
	want := map[string]string{"shop/orders": "ok", "shop/late": "warning", "shop/stale": "failure"}
	if got := page(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("page with a stream 40 minutes behind: %v, want %v", got, want)
	}

	// The metrics say the same.
	req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok["reader"])
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, line := range []string{
		`strata_stream_state{stream="shop/late"} 1`,
		`strata_stream_state{stream="shop/stale"} 2`,
		`strata_stream_state{stream="shop/orders"} 0`,
		`strata_policy_limit_seconds{level="warning",objective="rpo",stream="shop/late"} 300`,
		`strata_drill_last_success{stream="shop/orders"} 1`,
		`strata_drill_rto_seconds{stream="shop/orders"} 4.2`,
		`strata_scrub_bad_shards{keyed="false"} 1`,
		`strata_stream_gaps{stream="shop/stale"} 1`,
	} {
		if !strings.Contains(string(mb), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}

	// A real browser signs in itself. Headless chromium fills in no form
	// without a script, so a page of the test's own (same site: loopback,
	// another port) posts the read token to the server's login form on
	// load; chromium keeps the session cookie the server sets and follows
	// the redirect to the status page with it, as a person's browser does.
	chromium := requireTool(t, "STRATA_CHROMIUM", "chromium", "chromium")
	starter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><body><form id="f" method="post" action="%s/login"><input type="hidden" name="token" value="%s"></form>`+
			`<script>document.getElementById("f").submit()</script></body></html>`, srv.url, tok["reader"])
	}))
	defer starter.Close()
	browse := func(what ...string) string {
		t.Helper()
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
			"--disable-background-networking", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--window-size=1400,560",
			"--virtual-time-budget=10000"}, what...)
		cmd := exec.CommandContext(t.Context(), chromium, append(args, starter.URL+"/")...)
		cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS=/dev/null")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", what, err, errb.String())
		}
		return out.String()
	}
	dom := browse("--dump-dom")
	if got := pageStates(t, dom); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chromium's DOM: states %v, want %v\n%s", got, want, dom)
	}
	for _, s := range []string{"signed in as <b>reader</b>", `id="overall" data-state="failure"`, `<svg class="timeline"`, `class="win"`, `class="snap"`, `class="gap"`, "12 packs read, 1 bad shards"} {
		if !strings.Contains(dom, s) {
			t.Errorf("chromium's DOM lacks %q", s)
		}
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	browse("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != 1400 || cfg.Height != 560 {
		t.Fatalf("screenshot: %+v %v", cfg, err)
	}
	if os.Getenv("STRATA_UPDATE_SCREENSHOT") == "1" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
