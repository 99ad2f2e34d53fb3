package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/server/wire"
)

// liveServer is `strata serve` running in-process on a loopback port.
type liveServer struct {
	url    string
	cancel context.CancelFunc
	done   chan int
	log    *testenv.SyncBuffer
}

// startServe runs `strata serve` on the repository at dir until stopped,
// with any extra flags.
func startServe(t *testing.T, dir, tokens, addr string, extra ...string) *liveServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &liveServer{url: "http://" + addr, cancel: cancel, done: make(chan int, 1), log: &testenv.SyncBuffer{}}
	env := &environment{getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: io.Discard, stderr: s.log}
	go func() {
		s.done <- run(ctx, append([]string{"serve", "--repo", dir, "--listen", addr, "--tokens", tokens}, extra...), env)
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

// serveWithTokens creates a token in c's repository for each name →
// scope, starts strata serve on it with extra flags on a free port, and
// returns the server and the tokens by name.
func serveWithTokens(t *testing.T, c *cli, scopes map[string]string, extra ...string) (*liveServer, map[string]string) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	tok := map[string]string{}
	for name, scope := range scopes {
		tok[name] = strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", name, "--scope", scope))
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return startServe(t, c.vars["STRATA_REPO"], tokens, fmt.Sprintf("127.0.0.1:%d", port), extra...), tok
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
	half := wholeLines(data, len(data)/2)
	ci.ok(half, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Add(301*time.Minute).Format(time.RFC3339), "--position", "300", "--stdin")
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
	if got := ci.ok(nil, "restore", "--stream", "shop/users"); got != string(half) {
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

// TestServerSingleScopes: every single-scope token through the CLI against
// `strata serve`. backup:GLOB alone backs up (first and second backup of a
// stream: parent lookup and dedup) and captures a log; restore:GLOB alone
// restores, plans, lists its own streams' snapshots and reads their
// coverage; read alone looks up every stream. What a scope does not carry
// is refused with a clear error, never a crash.
func TestServerSingleScopes(t *testing.T) {
	local := newCLI(t)
	local.ok(nil, "init")
	srv, tok := serveWithTokens(t, local, map[string]string{"backup": "backup:shop/*", "restore": "restore:shop/*", "read": "read",
		"backup-read": "backup:shop/*,read", "admin": "admin"})
	as := func(who string) *cli {
		c := newCLI(t)
		c.vars["STRATA_REPO"] = srv.url
		c.vars["STRATA_TOKEN"] = tok[who]
		return c
	}
	refused := func(who string, args ...string) {
		t.Helper()
		code, _, errOut := as(who).run(nil, args...)
		if code == 0 || !strings.Contains(errOut, "403") && !strings.Contains(errOut, "may not") {
			t.Errorf("%s: strata %s: exit %d, want a refusal:\n%s", who, strings.Join(args, " "), code, errOut)
		}
	}
	newBlobs := func(stderr string) (blobs, fresh int) {
		t.Helper()
		// "snapshot X of S: SIZE in N chunks, M new, ..."
		i := strings.Index(stderr, " in ")
		if i < 0 || func() error { _, err := fmt.Sscanf(stderr[i:], " in %d chunks, %d new", &blobs, &fresh); return err }() != nil {
			t.Fatalf("backup summary: %q", stderr)
		}
		return blobs, fresh
	}

	// backup:shop/* alone: first backup, second backup against its parent,
	// a log capture, and its own stream's lookups.
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	data0 := genNDJSON(4000, 11)
	bk := as("backup")
	code, _, errOut := bk.run(data0, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Format(time.RFC3339), "--position", "0", "--stdin")
	if code != 0 {
		t.Fatalf("first backup with backup:shop/*: exit %d\n%s", code, errOut)
	}
	data1 := append(append([]byte{}, data0...), newKeys(genNDJSON(20, 12))...)
	code, id1, errOut := bk.run(data1, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Add(time.Hour).Format(time.RFC3339), "--position", "0", "--stdin")
	if code != 0 {
		t.Fatalf("second backup with backup:shop/*: exit %d\n%s", code, errOut)
	}
	if blobs, fresh := newBlobs(errOut); fresh*4 > blobs {
		t.Errorf("second backup stored %d of %d chunks anew: it did not deduplicate against its parent", fresh, blobs)
	}
	var events bytes.Buffer
	for p := 1; p <= 120; p++ {
		fmt.Fprintf(&events, `{"seq":%d,"ts":%q,"op":"put","key":"%08x","doc":{"_id":"%08x","n":%d}}`+"\n",
			p, t0.Add(time.Hour+time.Duration(p)*time.Second).Format(time.RFC3339), p, p, p)
	}
	bk.ok(events.Bytes(), "log", "--stream", "shop/users", "--stdin", "--segment-bytes", "2048")
	if out := bk.ok(nil, "snapshots", "--stream", "shop/users"); !strings.Contains(out, strings.TrimSpace(id1)[:16]) {
		t.Errorf("backup token's snapshots: %s", out)
	}
	bk.ok(nil, "coverage", "--stream", "shop/users")
	// The parent's list blobs sit in shared packs, so reading them back is
	// part of the backup scope (PROTOCOL.md, "Scopes"): a restore of the
	// token's own streams works too, other streams' do not.
	bk.ok(nil, "restore", "--stream", "shop/users", "--to", filepath.Join(t.TempDir(), "out"))
	refused("backup", "restore", "--stream", "other/db")
	refused("backup", "restore", "--stream", "shop/users", "--at-position", "50", "--dry-run")
	refused("backup", "backup", "--stream", "other/db", "--stdin")

	// backup:shop/*,read: a further backup still deduplicates (reading the
	// parent's list blobs needs no restore scope).
	code, _, errOut = as("backup-read").run(data1, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Add(3*time.Hour).Format(time.RFC3339), "--stdin")
	if code != 0 {
		t.Fatalf("backup with backup:shop/*,read: exit %d\n%s", code, errOut)
	}
	if blobs, fresh := newBlobs(errOut); fresh*4 > blobs {
		t.Errorf("backup+read stored %d of %d chunks anew", fresh, blobs)
	}

	// Another stream the restore token must not see.
	admin := as("admin")
	otherID := strings.TrimSpace(admin.ok(genNDJSON(10, 13), "backup", "--stream", "other/db", "--stdin"))

	// restore:shop/* alone: restores, plans, its own snapshots and coverage.
	rs := as("restore")
	if got := rs.ok(nil, "restore", "--stream", "shop/users"); got != string(data1) {
		t.Error("restore with restore:shop/* differs from the export")
	}
	at := t0.Add(time.Hour + 60*time.Second).Format(time.RFC3339)
	if remote, direct := rs.ok(nil, "restore", "--stream", "shop/users", "--at", at), local.ok(nil, "restore", "--stream", "shop/users", "--at", at); remote != direct {
		t.Error("restore --at with restore:shop/* differs from the direct one")
	}
	if plan := rs.ok(nil, "restore", "--stream", "shop/users", "--at-position", "50", "--dry-run"); !strings.Contains(plan, "base snapshot") {
		t.Errorf("restore token's plan: %s", plan)
	}
	all := rs.ok(nil, "snapshots")
	if !strings.Contains(all, "shop/users") || strings.Contains(all, otherID[:16]) {
		t.Errorf("restore token's snapshots show other streams or miss its own:\n%s", all)
	}
	rs.ok(nil, "snapshots", "--stream", "shop/users")
	var cov struct {
		Windows []struct {
			ToPos uint64 `json:"to_position"`
		}
	}
	if err := json.Unmarshal([]byte(rs.ok(nil, "coverage", "--stream", "shop/users", "--json")), &cov); err != nil || !slices.ContainsFunc(cov.Windows, func(w struct {
		ToPos uint64 `json:"to_position"`
	}) bool {
		return w.ToPos == 120
	}) {
		t.Errorf("restore token's coverage: %+v %v", cov, err)
	}
	refused("restore", "backup", "--stream", "shop/users", "--stdin")
	refused("restore", "restore", "--stream", "other/db")
	refused("restore", "snapshots", "--stream", "other/db")
	refused("restore", "coverage", "--stream", "other/db")

	// read alone: every stream's lookups, and nothing else.
	rd := as("read")
	rd.ok(nil, "coverage", "--stream", "shop/users")
	rd.ok(nil, "coverage", "--stream", "other/db")
	refused("read", "restore", "--stream", "shop/users")
	refused("read", "backup", "--stream", "shop/users", "--stdin")
	refused("read", "log", "--stream", "shop/users", "--stdin")
}

// TestAuditRowsCannotBeForged: newlines, tabs and escape sequences in a
// refused URL path (sent without any token) and in a restore report's
// fields are stored as they came but printed escaped, so `strata audit`
// shows exactly one row per record.
func TestAuditRowsCannotBeForged(t *testing.T) {
	local := newCLI(t)
	local.ok(nil, "init")
	srv, tok := serveWithTokens(t, local, map[string]string{"restore": "restore:shop/*", "admin": "admin"})
	forged := "\n2026-01-01T00:00:00Z\tadmin\tdelete\t204\tok\tshop/users\tsnapshots/x\tforged\x1b[2K\u202e"
	resp, err := http.Get(srv.url + "/v1/objects/x" + url.PathEscape(forged))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged path without a token: %d", resp.StatusCode)
	}
	c, err := client.New(srv.url, tok["restore"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReportRestore(t.Context(), wire.RestoreReport{Stream: "shop/users", Target: "x" + forged, Error: "y" + forged}); err != nil {
		t.Fatal(err)
	}
	admin := newCLI(t)
	admin.vars["STRATA_REPO"], admin.vars["STRATA_TOKEN"] = srv.url, tok["admin"]
	table := admin.ok(nil, "audit")
	rows := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(rows) != 3 { // the header, the refusal, the report
		t.Fatalf("2 records printed as %d rows:\n%s", len(rows)-1, table)
	}
	for _, row := range rows[1:] {
		if !strings.HasPrefix(row, "20") || strings.ContainsAny(row, "\t\r\x1b\u202e") {
			t.Errorf("row not escaped: %q", row)
		}
	}
	if !strings.Contains(table, `x\n2026-01-01T00:00:00Z\tadmin`) || !strings.Contains(table, `\x1b[2K\u202e`) {
		t.Errorf("the forged text is not shown escaped:\n%s", table)
	}
}

// FuzzPrintable: printable leaves no character that breaks or hides a line,
// always yields UTF-8, and changes nothing in plain text.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"shop/users", "a\nb\tc", "\x1b[31mred", "\u202egnp.exe", "\xff\xfe", `back\slash`, "\u2028", "é\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := printable(s)
		if !utf8.ValidString(p) {
			t.Fatalf("printable(%q) = %q: not UTF-8", s, p)
		}
		for _, r := range p {
			if hidesText(r) {
				t.Fatalf("printable(%q) = %q keeps %U", s, p, r)
			}
		}
		plain := utf8.ValidString(s) && !strings.ContainsRune(s, '\\')
		for _, r := range s {
			plain = plain && !hidesText(r)
		}
		if plain != (p == s) && !(p == s && !plain && !strings.ContainsRune(s, utf8.RuneError)) {
			t.Fatalf("printable(%q) = %q", s, p)
		}
	})
}

// TestServerFutureDates: through a server, a backup dated too far after
// the server's clock is refused before it uploads anything, and in `strata
// log` an event dated so is refused alone, with its line, after the events
// before it are sealed and stored.
func TestServerFutureDates(t *testing.T) {
	local := newCLI(t)
	dir := local.vars["STRATA_REPO"]
	local.ok(nil, "init")
	tokens := filepath.Join(t.TempDir(), "tokens")
	token := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "db", "--scope", "backup:shop/*,restore:shop/*"))
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port))
	c := newCLI(t)
	c.vars["STRATA_REPO"], c.vars["STRATA_TOKEN"] = srv.url, token

	now := time.Now().UTC()
	before := countFiles(t, dir)
	code, _, errOut := c.run(genNDJSON(2000, 3), "backup", "--stream", "shop/users", "--format", "ndjson", "--time", now.Add(time.Hour).Format(time.RFC3339), "--stdin")
	if code == 0 || !strings.Contains(errOut, "after the server's clock") {
		t.Fatalf("backup dated an hour ahead: exit %d:\n%s", code, errOut)
	}
	if after := countFiles(t, dir); after != before {
		t.Fatalf("a backup refused for its date uploaded %d objects", after-before)
	}

	t0 := now.Add(-2 * time.Hour)
	c.ok(genNDJSON(200, 4), "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Format(time.RFC3339), "--position", "0", "--stdin")
	var events bytes.Buffer
	for p := 1; p <= 60; p++ {
		ts := t0.Add(time.Duration(p) * time.Minute)
		if p == 41 {
			ts = now.Add(time.Hour)
		}
		fmt.Fprintf(&events, `{"seq":%d,"ts":%q,"op":"put","key":"%08x","doc":{"_id":"%08x","n":%d}}`+"\n", p, ts.Format(time.RFC3339), p, p, p)
	}
	code, _, errOut = c.run(events.Bytes(), "log", "--stream", "shop/users", "--stdin", "--segment-bytes", "1024")
	if code == 0 || !strings.Contains(errOut, "event line 41") || !strings.Contains(errOut, "after the server's clock") {
		t.Fatalf("log with a future event on line 41: exit %d:\n%s", code, errOut)
	}
	var cov struct {
		Windows []struct {
			ToPos uint64 `json:"to_position"`
		}
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "shop/users", "--json")), &cov); err != nil || len(cov.Windows) != 1 || cov.Windows[0].ToPos != 40 {
		t.Fatalf("after the refused event the log should reach position 40: %+v %v", cov, err)
	}
}
