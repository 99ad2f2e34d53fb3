package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/server"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

var password = []byte("server-test")

// clock is a settable trusted clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// fixture is a repository in memory behind a real server on loopback, with
// one token per scope set.
type fixture struct {
	t      testing.TB
	st     *mem.Store
	srv    *server.Server
	http   *httptest.Server
	tokens map[string]string
	tokSet *auth.Set
	clock  *clock
	policy *ops.Policy // the status page's and metrics' policy; set before start
}

var scopeSets = map[string]string{
	"admin":       "admin",
	"reader":      "read",
	"shopBackup":  "backup:shop/*",
	"shopRestore": "restore:shop/*",
	"backupAll":   "backup:*",
	"ops":         "read,backup:shop/*,restore:shop/*",
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := mem.New()
	if _, err := repo.Init(t.Context(), st, password, repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, DataShards: 2, ParityShards: 1}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, tokens: map[string]string{}, clock: &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}}
	path := filepath.Join(t.TempDir(), "tokens")
	for name, scopes := range scopeSets {
		sc, err := auth.ParseScopes(scopes)
		if err != nil {
			t.Fatal(err)
		}
		if f.tokens[name], err = auth.Create(path, name, sc); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if f.tokSet, err = auth.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	f.start()
	return f
}

func (f *fixture) start() {
	f.t.Helper()
	srv, err := server.New(f.t.Context(), server.Options{Store: f.st, Tokens: func() *auth.Set { return f.tokSet }, Now: f.clock.Now, AuditFlush: time.Hour, Policy: f.policy})
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
	f.http = httptest.NewServer(srv.Handler())
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.http != nil {
		f.http.Close()
		f.srv.Close(context.Background())
		f.http = nil
	}
}

func (f *fixture) restart() {
	f.stop()
	f.start()
}

func (f *fixture) client(who string) *client.Client {
	f.t.Helper()
	c, err := client.New(f.http.URL, f.tokens[who], client.Options{Attempts: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// open opens the repository through the server as who.
func (f *fixture) open(who string) *repo.Repository {
	f.t.Helper()
	r, err := repo.Open(f.t.Context(), f.client(who).Store(), password)
	if err != nil {
		f.t.Fatalf("open as %s: %v", who, err)
	}
	return r
}

func (f *fixture) backup(r *repo.Repository, stream string, at time.Time, pos uint64, data []byte) (repo.ID, error) {
	id, _, err := engine.Backup(f.t.Context(), r, bytes.NewReader(data), engine.BackupOptions{Stream: stream, Format: engine.FormatRaw, Time: at, Position: &pos})
	return id, err
}

func (f *fixture) log(r *repo.Repository, stream string, from, to uint64, t0 time.Time) error {
	w, err := engine.OpenLog(f.t.Context(), r, engine.LogOptions{Stream: stream})
	if err != nil {
		return err
	}
	for p := from; p <= to; p++ {
		e := repo.Event{Seq: p, Time: t0.Add(time.Duration(p) * time.Second).UnixNano(), Op: repo.OpPut, Key: []byte(fmt.Sprint("k", p%7)), Value: []byte(fmt.Sprint(p))}
		if err := w.Append(&e); err != nil {
			return err
		}
	}
	_, err = w.Close()
	return err
}

func (f *fixture) objects() []string {
	var names []string
	f.st.List(f.t.Context(), "", func(oi repo.ObjectInfo) error {
		if !strings.HasPrefix(oi.Name, repo.AuditPrefix) {
			names = append(names, oi.Name)
		}
		return nil
	})
	return names
}

// raw sends one request as who ("" for none) and returns status and body.
func (f *fixture) raw(who, method, path string, body io.Reader, hdr map[string]string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func status(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	if err == nil {
		return 200
	}
	return -1
}

var export = bytes.Repeat([]byte("0123456789abcdef"), 4096)

// TestScopeMatrix: every scope set against every kind of request. Refused
// requests get 401 or 403 and store nothing.
func TestScopeMatrix(t *testing.T) {
	f := newFixture(t)
	t0 := f.clock.Now().Add(-time.Hour)
	admin := f.open("admin")
	snapID, err := f.backup(admin, "shop/users", t0, 10, export)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.log(admin, "shop/users", 11, 40, t0); err != nil {
		t.Fatal(err)
	}

	backupCase := func(stream string) func(who string) error {
		return func(who string) error {
			r := f.open(who)
			before := f.objects()
			_, err := f.backup(r, stream, t0.Add(time.Minute), 50, []byte("fresh "+who+stream))
			if err != nil && len(f.objects()) != len(before) {
				// Shared data may land before the label is refused only
				// for tokens that hold some backup scope; the CLI checks
				// the scope first (MayBackup).
				if !strings.Contains(scopeSets[who], "backup") {
					t.Errorf("%s: refused backup left objects behind", who)
				}
			}
			return err
		}
	}
	ctx := t.Context()
	next := uint64(40)
	cases := []struct {
		name string
		do   func(who string) error
		ok   []string // everyone else gets 403
	}{
		{"backup shop/users", backupCase("shop/users"), []string{"admin", "shopBackup", "backupAll", "ops"}},
		{"backup other/db", backupCase("other/db"), []string{"admin", "backupAll"}},
		{"log shop/users", func(who string) error {
			// New positions each time: positions already stored are skipped without a write.
			next += 5
			return f.log(f.open(who), "shop/users", next-4, next, t0)
		}, []string{"admin", "shopBackup", "backupAll", "ops"}},
		{"plan", func(who string) error {
			_, err := f.client(who).Plan(ctx, "shop/users", index.Target{Position: 20, ByPos: true})
			return err
		}, []string{"admin", "reader", "ops", "shopRestore"}},
		{"plan other/db", func(who string) error {
			_, err := f.client(who).Plan(ctx, "other/db", index.Target{Position: 20, ByPos: true})
			if status(err) == http.StatusUnprocessableEntity {
				return nil // allowed, and nothing to plan from
			}
			return err
		}, []string{"admin", "reader", "ops"}},
		{"coverage", func(who string) error { _, err := f.client(who).Coverage(ctx, "shop/users"); return err },
			[]string{"admin", "reader", "ops", "shopRestore", "shopBackup", "backupAll"}},
		{"coverage other/db", func(who string) error { _, err := f.client(who).Coverage(ctx, "other/db"); return err },
			[]string{"admin", "reader", "ops", "backupAll"}},
		{"snapshots shop/users", func(who string) error {
			_, err := f.client(who).Snapshots(ctx, "shop/users")
			return err
		}, []string{"admin", "reader", "ops", "shopRestore", "shopBackup", "backupAll"}},
		{"read snapshot", func(who string) error {
			_, err := f.client(who).Store().Get(ctx, repo.SnapshotsPrefix+snapID.String())
			return err
		}, []string{"admin", "shopRestore", "shopBackup", "backupAll", "ops"}}, // a backup reads its parent
		{"restore", func(who string) error {
			r := f.open(who)
			p, err := f.client("admin").PlanFor(ctx, r, "shop/users", index.Target{Position: 10, ByPos: true})
			if err != nil {
				return err
			}
			_, err = engine.Restore(ctx, r, p.Base, io.Discard, engine.RestoreOptions{})
			return err
			// A backup scope reads its parent's list blobs in the shared
			// packs, so it reads back its own streams' data too.
		}, []string{"admin", "shopRestore", "ops", "shopBackup", "backupAll"}},
		{"delete", func(who string) error {
			return f.client(who).Store().Delete(ctx, repo.IndexPrefix+strings.Repeat("0", 64))
		}, []string{"admin"}},
		{"forget", func(who string) error {
			_, err := f.client(who).Forget(ctx, wire.ForgetRequest{Stream: "shop/users", KeepLast: 5, DryRun: true})
			return err
		}, []string{"admin"}},
		{"audit", func(who string) error {
			return f.client(who).Audit(ctx, time.Time{}, func(wire.AuditRecord) error { return nil })
		}, []string{"admin"}},
	}
	for _, tc := range cases {
		for who := range scopeSets {
			err := tc.do(who)
			want := http.StatusForbidden
			for _, ok := range tc.ok {
				if ok == who {
					want = 200
				}
			}
			if got := status(err); got != want {
				t.Errorf("%s as %s: status %d (%v), want %d", tc.name, who, got, err, want)
			}
		}
	}
	// A listing of every stream shows a stream-scoped token its own
	// streams only; read and admin see them all.
	if _, err := f.backup(admin, "other/db", t0, 1, []byte("another stream")); err != nil {
		t.Fatal(err)
	}
	for who, want := range map[string]string{"shopRestore": "shop/users", "shopBackup": "shop/users", "reader": "other/db,shop/users", "admin": "other/db,shop/users"} {
		snaps, err := f.client(who).Snapshots(ctx, "")
		if err != nil {
			t.Fatalf("snapshots as %s: %v", who, err)
		}
		var streams []string
		for _, s := range snaps {
			if !slices.Contains(streams, s.Label.Stream) {
				streams = append(streams, s.Label.Stream)
			}
		}
		slices.Sort(streams)
		if got := strings.Join(streams, ","); got != want {
			t.Errorf("snapshots as %s list streams %s, want %s", who, got, want)
		}
	}

	// No token, and a token the server does not know.
	if code, _ := f.raw("", "GET", "/v1/streams", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	f.tokens["stranger"] = "strata_notatokenthisserverknows"
	if code, _ := f.raw("stranger", "GET", "/v1/streams", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("unknown token: %d", code)
	}
	before := len(f.objects())
	if code, _ := f.raw("stranger", "PUT", "/v1/objects/index/"+strings.Repeat("1", 64), strings.NewReader("x"), nil); code != http.StatusUnauthorized {
		t.Errorf("unknown token upload: %d", code)
	}
	if len(f.objects()) != before {
		t.Error("an unauthenticated upload stored something")
	}
}

// TestBadRequests: malformed, oversized, truncated, replayed and traversing
// requests get a clear 4xx and store nothing.
func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	admin := f.open("admin")
	snapID, err := f.backup(admin, "shop/users", f.clock.Now().Add(-time.Minute), 1, export)
	if err != nil {
		t.Fatal(err)
	}
	snapBytes, err := f.st.Get(t.Context(), repo.SnapshotsPrefix+snapID.String())
	if err != nil {
		t.Fatal(err)
	}
	futureLabel := fmt.Sprintf(`{"version":1,"stream":"shop/users","time":%q,"format":"raw","size":1,"new_blobs":0,"stored_bytes":0}`, f.clock.Now().Add(time.Hour).Format(time.RFC3339))
	okLabel := strings.Replace(futureLabel, f.clock.Now().Add(time.Hour).Format(time.RFC3339), f.clock.Now().Format(time.RFC3339), 1)
	otherID := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, who, method, path, body string
		hdr                           map[string]string
		want                          int
		code                          string
	}{
		{"replayed snapshot", "backupAll", "PUT", "/v1/objects/snapshots/" + snapID.String(), string(snapBytes), nil, 409, wire.CodeExists},
		{"traversal", "admin", "GET", "/v1/objects/../config", "", nil, 404, ""},
		{"traversal in a stream", "admin", "GET", "/v1/objects?prefix=logs/../keys/@", "", nil, 400, wire.CodeBadRequest},
		{"dot-dot stream", "reader", "GET", "/v1/plan?stream=shop/../etc&position=1", "", nil, 400, wire.CodeBadRequest},
		{"unknown object kind", "admin", "GET", "/v1/objects/etc/passwd", "", nil, 400, wire.CodeBadRequest},
		{"upper-case hex", "backupAll", "PUT", "/v1/objects/index/" + strings.ToUpper(otherID), "x", nil, 400, wire.CodeBadRequest},
		{"corrupt index upload", "backupAll", "PUT", "/v1/objects/index/" + otherID, "not what the name promises", nil, 422, wire.CodeCorrupt},
		{"snapshot before its label", "backupAll", "PUT", "/v1/objects/snapshots/" + otherID, "x", nil, 409, wire.CodeConflict},
		{"label from the future", "backupAll", "PUT", "/v1/objects/labels/" + otherID, futureLabel, nil, 400, wire.CodeBadRequest},
		{"label with unknown field", "backupAll", "PUT", "/v1/objects/labels/" + otherID, strings.Replace(okLabel, `"version":1`, `"version":1,"received_by_me":true`, 1), nil, 400, wire.CodeBadRequest},
		{"label of another stream's scope", "shopBackup", "PUT", "/v1/objects/labels/" + otherID, strings.Replace(okLabel, "shop/users", "other/db", 1), nil, 403, wire.CodeForbidden},
		{"config write", "admin", "PUT", "/v1/objects/config", "x", nil, 403, wire.CodeForbidden},
		{"audit write", "admin", "PUT", "/v1/objects/audit/1.jsonl", "x", nil, 403, wire.CodeForbidden},
		{"huge upload", "backupAll", "PUT", "/v1/objects/index/" + otherID, "x", map[string]string{"Content-Length": fmt.Sprint(wire.MaxObjectBody + 1)}, 413, wire.CodeTooLarge},
		{"malformed JSON", "admin", "POST", "/v1/forget", `{"stream":`, nil, 400, wire.CodeBadRequest},
		{"unknown JSON field", "admin", "POST", "/v1/forget", `{"stream":"shop/users","keep_everything":true}`, nil, 400, wire.CodeBadRequest},
		{"empty policy", "admin", "POST", "/v1/forget", `{"stream":"shop/users"}`, nil, 400, wire.CodeBadRequest},
		{"bad time", "reader", "GET", "/v1/plan?stream=shop/users&at=yesterday", "", nil, 400, wire.CodeBadRequest},
		{"not restorable", "reader", "GET", "/v1/plan?stream=shop/users&position=99", "", nil, 422, wire.CodeNotRestorable},
		{"bad range", "admin", "GET", "/v1/objects/config", "", map[string]string{"Range": "bytes=9-2"}, 416, wire.CodeBadRequest},
	} {
		before := f.objects()
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, f.http.URL+tc.path, body)
		req.URL.Opaque = "" // keep ".." as sent
		req.Header.Set("Authorization", "Bearer "+f.tokens[tc.who])
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		if cl, ok := tc.hdr["Content-Length"]; ok {
			fmt.Sscan(cl, &req.ContentLength)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The huge upload: the server may answer and close before reading.
			if tc.want == 413 {
				continue
			}
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || tc.code != "" && !strings.Contains(string(b), `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, b, tc.want, tc.code)
		}
		if got := f.objects(); len(got) != len(before) {
			t.Errorf("%s: objects went from %d to %d", tc.name, len(before), len(got))
		}
	}
	// A truncated upload: the body ends before its Content-Length.
	conn, err := dialTCP(f.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /v1/objects/index/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\nonly a little", otherID, f.tokens["backupAll"])
	conn.CloseWrite()
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(reply), " 400 ") || !strings.Contains(string(reply), "truncated upload") {
		t.Errorf("truncated upload: %q", reply)
	}
	if _, err := f.st.Stat(t.Context(), repo.IndexPrefix+otherID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("truncated upload stored: %v", err)
	}
	// A client's replay of an identical upload counts as done.
	if err := f.client("backupAll").Store().Put(t.Context(), repo.SnapshotsPrefix+snapID.String(), snapBytes); err != nil {
		t.Errorf("replay through the client: %v", err)
	}
	// A different body under an existing name never overwrites (labels
	// are the objects whose names do not fix their content).
	other := strings.Replace(okLabel, `"size":1`, `"size":2`, 1)
	if err := f.client("backupAll").Store().Put(t.Context(), repo.LabelName(snapID), []byte(other)); status(err) != 409 {
		t.Errorf("overwrite: %v", err)
	}
}

// TestTrustedTimeAndRestart: forget decides by the server's receive times,
// whatever times clients claim; a restarted server rebuilds the same
// catalog, and the audit trail names who did what.
func TestTrustedTimeAndRestart(t *testing.T) {
	f := newFixture(t)
	admin, bk := f.open("admin"), f.open("backupAll")
	base := f.clock.Now()
	// Received an hour apart, but a compromised client dates the newest
	// upload years back and the oldest near the server's now.
	claims := []time.Time{base.Add(4 * time.Minute), base.Add(-24 * time.Hour), base.Add(-3 * 365 * 24 * time.Hour)}
	var ids []repo.ID
	for i, claim := range claims {
		f.clock.Set(base.Add(time.Duration(i) * time.Hour))
		id, err := f.backup(bk, "db", claim, uint64(i), []byte(fmt.Sprint("export ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := f.log(bk, "db", 1, 30, base.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	cov, err := f.client("reader").Coverage(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	f.restart()
	cov2, err := f.client("reader").Coverage(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cov.Windows, cov.Gaps) != fmt.Sprint(cov2.Windows, cov2.Gaps) {
		t.Errorf("coverage changed over a restart:\n%v\n%v", cov, cov2)
	}
	snaps, err := f.client("reader").Snapshots(t.Context(), "db")
	if err != nil || len(snaps) != 3 {
		t.Fatalf("after restart: %d snapshots, %v", len(snaps), err)
	}
	for _, s := range snaps {
		if s.Label.Received == nil || s.Label.By != "backupAll" {
			t.Errorf("snapshot %s: label not stamped: %+v", s.ID, s.Label)
		}
	}
	res, err := f.client("admin").Forget(t.Context(), wire.ForgetRequest{Stream: "db", KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keep) != 1 || res.Keep[0].ID != ids[2].String() {
		t.Fatalf("forget kept %v, want the snapshot received last (%s), whatever its claimed time", res.Keep, ids[2].Short())
	}
	admin = f.open("admin") // the server moved to a new port
	cat, err := f.client("admin").Catalog(t.Context(), admin, "db")
	if err != nil || len(cat.Snapshots) != 1 {
		t.Fatalf("after forget: %d snapshots, %v", len(cat.Snapshots), err)
	}
	if _, err := f.st.Stat(t.Context(), repo.LabelName(ids[0])); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("forgotten snapshot's label remains: %v", err)
	}

	// The audit trail, read through the server: backups by backupAll,
	// the forget by admin, each with its object and result.
	var recs []wire.AuditRecord
	if err := f.client("admin").Audit(t.Context(), time.Time{}, func(r wire.AuditRecord) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.Action+"/"+r.Token+"/"+r.Result]++
	}
	if count["backup/backupAll/ok"] != 3 || count["forget/admin/ok"] != 1 || count["log/backupAll/ok"] < 1 {
		t.Errorf("audit trail: %v", count)
	}
	// Refusals are audited too.
	f.client("reader").Forget(t.Context(), wire.ForgetRequest{Stream: "db", KeepLast: 1})
	recs = recs[:0]
	server.ReadAudit(t.Context(), f.st, time.Time{}, func(r wire.AuditRecord) error { recs = append(recs, r); return nil })
	f.srv.Close(t.Context()) // flush
	recs = recs[:0]
	if err := server.ReadAudit(t.Context(), f.st, time.Time{}, func(r wire.AuditRecord) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	refused := false
	for _, r := range recs {
		if r.Token == "reader" && r.Status == 403 && r.Result == "refused" {
			refused = true
		}
	}
	if !refused {
		t.Error("the refused forget is not in the audit trail")
	}
	// Removing an audit object breaks the chain, and the reader says so.
	var names []string
	f.st.List(t.Context(), repo.AuditPrefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil })
	if len(names) < 3 {
		t.Fatalf("%d audit objects", len(names))
	}
	f.st.Delete(t.Context(), names[1])
	err = server.ReadAudit(t.Context(), f.st, time.Time{}, func(wire.AuditRecord) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "chain is broken") {
		t.Errorf("a removed audit object went unnoticed: %v", err)
	}
}

// TestMetrics: /metrics carries the series the issue names.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	bk := f.open("backupAll")
	if _, err := f.backup(bk, "shop/users", f.clock.Now(), 5, export); err != nil {
		t.Fatal(err)
	}
	if err := f.log(bk, "shop/users", 6, 9, f.clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.client("ops").ReportRestore(t.Context(), wire.RestoreReport{Stream: "shop/users", Seconds: 1.5, Bytes: 10})
	f.client("admin").ReportCheck(t.Context(), wire.CheckReport{Problems: []string{"x"}})
	code, body := f.raw("reader", "GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		"strata_backups_total 1", "strata_backup_bytes_total 65536", "strata_dedup_ratio",
		"strata_restores_total{result=\"ok\"} 1", "strata_restore_duration_seconds_count 1",
		`strata_log_lag_seconds{stream="shop/users"}`, "strata_check_problems 1", `strata_checks_total{result="damaged"} 1`,
		`strata_http_requests_total{code="201",endpoint="PUT /v1/objects/{name...}"}`, "strata_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code, _ := f.raw("", "GET", "/metrics", nil, nil); code != 401 {
		t.Errorf("metrics without a token: %d", code)
	}
	if code, body := f.raw("", "GET", "/healthz", nil, nil); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func dialTCP(addr string) (*net.TCPConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// auditBytes is the size of every audit object in the store.
func (f *fixture) auditBytes() (n int64) {
	f.st.List(f.t.Context(), repo.AuditPrefix, func(oi repo.ObjectInfo) error { n += oi.Size; return nil })
	return n
}

// TestAuditFloodBounded: 300 requests without a token, each with a 15 KB
// path, and 300 refused restore reports with the longest fields add a
// bounded number of bytes to the audit trail (PROTOCOL.md, "Audit trail"):
// the first refusals are recorded with their paths clipped, the rest are
// counted in summary records.
func TestAuditFloodBounded(t *testing.T) {
	f := newFixture(t)
	before := f.auditBytes()
	long := "/v1/objects/" + strings.Repeat("a", 15000)
	for range 300 {
		if code, _ := f.raw("", "GET", long, nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
	}
	huge := wire.RestoreReport{Stream: "other/db", Target: strings.Repeat("t", 512), Error: strings.Repeat("e", 4096)}
	c := f.client("shopRestore")
	for range 300 {
		if err := c.ReportRestore(t.Context(), huge); status(err) != http.StatusForbidden {
			t.Fatalf("report for another stream: %v", err)
		}
	}
	// Once the window is over, the next write carries the summaries.
	f.clock.Set(f.clock.Now().Add(2 * time.Minute))
	var early int
	if err := f.client("admin").Audit(t.Context(), time.Time{}, func(r wire.AuditRecord) error {
		if r.Action == "refusals-summary" {
			early++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if early != 2 {
		t.Errorf("%d summaries written when the window ended, want 2 (one per client)", early)
	}
	f.stop() // writes the buffered records and the summaries
	added := f.auditBytes() - before
	if added > 96<<10 {
		t.Fatalf("600 refused requests with 15 KB paths and 4 KB reports added %d bytes to the audit trail", added)
	}
	var recorded, summarized int
	var summaries []string
	err := server.ReadAudit(t.Context(), f.st, time.Time{}, func(r wire.AuditRecord) error {
		if len(r.Object) > 300 || len(r.Detail) > 1100 {
			t.Errorf("record not clipped: object %d bytes, detail %d bytes", len(r.Object), len(r.Detail))
		}
		if r.Action == "refusals-summary" {
			var n int
			fmt.Sscanf(r.Detail, "%d more", &n)
			summarized += n
			summaries = append(summaries, r.Token+r.Remote)
		} else if r.Result == "refused" {
			recorded++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if recorded+summarized != 600 || recorded > 60 {
		t.Fatalf("%d refusals recorded one by one and %d summarized, want 600 in all and at most 60 whole", recorded, summarized)
	}
	if !slices.Contains(summaries, "127.0.0.1") || !slices.Contains(summaries, "shopRestore") {
		t.Errorf("summaries are not per client: %q", summaries)
	}
	t.Logf("600 refused requests added %d bytes to the audit trail (%d recorded whole)", added, recorded)
}

// TestPlanClock holds the rule of PROTOCOL.md §6 and FORMAT.md §16 ("Which
// clock"): plans place snapshots by the time they claim (the source's
// clock), so a snapshot received a day later but dated inside the log is
// the base for the instants from its date on and not before; retention
// decides by the server's receive time.
func TestPlanClock(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	admin := f.open("admin")
	t0 := f.clock.Now().Add(-2 * time.Hour)
	idA, err := f.backup(admin, "shop/users", t0, 0, []byte("state at position 0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.log(admin, "shop/users", 1, 100, t0); err != nil {
		t.Fatal(err)
	}
	c := f.client("admin")
	plan := func(at time.Time) *wire.Plan {
		t.Helper()
		p, err := c.Plan(ctx, "shop/users", index.Target{Time: at})
		if err != nil {
			t.Fatalf("plan at %s: %v", at, err)
		}
		return p
	}
	if p := plan(t0.Add(60 * time.Second)); p.Base.ID != idA.String() || p.From != 1 {
		t.Fatalf("before the backfill: base %s from %d", p.Base.ID, p.From)
	}

	// A day later by the server's clock, a snapshot dated t0+30s arrives.
	f.clock.Set(f.clock.Now().Add(24 * time.Hour))
	received := f.clock.Now()
	idB, err := f.backup(admin, "shop/users", t0.Add(30*time.Second), 30, []byte("state at position 30"))
	if err != nil {
		t.Fatal(err)
	}
	if p := plan(t0.Add(60 * time.Second)); p.Base.ID != idB.String() || p.From != 31 || p.Base.Label.Received == nil || !p.Base.Label.Received.Equal(received) {
		t.Fatalf("after the backfill, at t0+60s: base %s from %d (received %v), want %s from 31, received %s", p.Base.ID, p.From, p.Base.Label.Received, idB, received)
	}
	if p := plan(t0.Add(20 * time.Second)); p.Base.ID != idA.String() || p.From != 1 {
		t.Fatalf("after the backfill, at t0+20s: base %s from %d, want the first snapshot", p.Base.ID, p.From)
	}

	// Retention: B is the newest by the server's clock, A by neither.
	res, err := c.Forget(ctx, wire.ForgetRequest{Stream: "shop/users", KeepLast: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keep) != 1 || res.Keep[0].ID != idB.String() || !res.Keep[0].Time.Equal(received) {
		t.Fatalf("forget kept %+v, want %s by its receive time %s", res.Keep, idB, received)
	}
}

// TestClientErrorsOneLine: what a server echoes of a request in an error
// message (here a name with a newline and an escape sequence) reaches the
// client's error quoted, on one line.
func TestClientErrorsOneLine(t *testing.T) {
	f := newFixture(t)
	_, err := f.client("admin").Store().Get(t.Context(), "index/x\n2026-01-01 forged\x1b[2K")
	if err == nil || strings.ContainsAny(err.Error(), "\n\x1b") || !strings.Contains(err.Error(), `\n2026-01-01 forged\x1b[2K`) {
		t.Fatalf("error %q", err)
	}
}
