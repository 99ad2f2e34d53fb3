package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/server/auth"
)

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (f *fixture) page(cookie *http.Cookie) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.http.URL+"/", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) login(token string) *http.Response {
	f.t.Helper()
	resp, err := noFollow.PostForm(f.http.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestStatusPageSessions: a session lasts 12 hours, ends when its token is
// revoked, and is only ever made from a read token; the page itself has
// nothing to submit.
func TestStatusPageSessions(t *testing.T) {
	f := newFixture(t)
	r := f.open("admin")
	if _, err := f.backup(r, "shop/users", f.clock.Now().Add(-time.Hour), 0, []byte("{\"_id\":\"a\"}\n")); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"shopBackup", "shopRestore"} {
		if resp := f.login(f.tokens[who]); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Fatalf("login as %s: %d %v", who, resp.StatusCode, resp.Cookies())
		}
	}
	// A bearer token is not a session.
	req, _ := http.NewRequest("GET", f.http.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["reader"])
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET / with a bearer token: %v %v", resp, err)
	}
	// An oversized form is refused before it is parsed.
	resp, err := noFollow.PostForm(f.http.URL+"/login", url.Values{"token": {strings.Repeat("x", 8<<10)}})
	if err != nil || resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
		t.Fatalf("oversized login: %v %v", resp, err)
	}

	resp = f.login(f.tokens["reader"])
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	cookie := resp.Cookies()[0]
	code, body := f.page(cookie)
	if code != http.StatusOK || !strings.Contains(body, `data-stream="shop/users" data-state="ok"`) {
		t.Fatalf("page: %d\n%s", code, body)
	}
	if strings.Contains(body, "<form") || strings.Contains(body, "<script") {
		t.Fatal("the status page has a form or a script")
	}
	f.clock.Set(f.clock.Now().Add(11 * time.Hour))
	if code, _ := f.page(cookie); code != http.StatusOK {
		t.Fatalf("after 11 hours: %d", code)
	}
	f.clock.Set(f.clock.Now().Add(time.Hour + time.Second))
	if code, _ := f.page(cookie); code != http.StatusSeeOther {
		t.Fatalf("after 12 hours: %d, want the session over", code)
	}
	cookie = f.login(f.tokens["reader"]).Cookies()[0]
	if code, _ := f.page(cookie); code != http.StatusOK {
		t.Fatalf("new session: %d", code)
	}
	// Revoking the token (a reloaded tokens file without it) ends its sessions.
	old := f.tokSet
	f.tokSet, _ = auth.Parse(strings.NewReader(""))
	if code, _ := f.page(cookie); code != http.StatusSeeOther {
		t.Fatalf("after revocation: %d", code)
	}
	f.tokSet = old
}

// TestStatusFallsBehind: as the server's clock runs on past a stream's
// newest event, the page and the metrics take it from ok to warning to
// failure, by the policy's RPO levels.
func TestStatusFallsBehind(t *testing.T) {
	f := newFixture(t)
	p, err := ops.ParsePolicy(strings.NewReader("streams: [{match: 'shop/*', rpo: {warning: 5m, failure: 30m}}]"))
	if err != nil {
		t.Fatal(err)
	}
	f.policy = p
	f.restart()
	bk := f.open("backupAll")
	start := f.clock.Now().Add(-time.Hour)
	if _, err := f.backup(bk, "shop/users", start, 0, export); err != nil {
		t.Fatal(err)
	}
	// Events 1..60 a second apart: the newest at start+60s.
	if err := f.log(bk, "shop/users", 1, 60, start); err != nil {
		t.Fatal(err)
	}
	newest := start.Add(time.Minute)
	cookie := f.login(f.tokens["reader"]).Cookies()[0]
	for _, c := range []struct {
		after time.Duration
		state string
		gauge string
	}{
		{4 * time.Minute, "ok", "0"},
		{6 * time.Minute, "warning", "1"},
		{31 * time.Minute, "failure", "2"},
	} {
		f.clock.Set(newest.Add(c.after))
		code, body := f.page(cookie)
		if want := `data-stream="shop/users" data-state="` + c.state + `"`; code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("%v behind: page %d lacks %s\n%s", c.after, code, want, body)
		}
		_, metrics := f.raw("reader", "GET", "/metrics", nil, nil)
		for _, want := range []string{
			`strata_stream_state{stream="shop/users"} ` + c.gauge + "\n",
			fmt.Sprintf("strata_stream_rpo_seconds{stream=%q} %g\n", "shop/users", c.after.Seconds()),
			`strata_policy_limit_seconds{level="failure",objective="rpo",stream="shop/users"} 1800` + "\n",
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("%v behind: metrics lack %q", c.after, want)
			}
		}
	}
	// A reloaded policy (SIGHUP) with a looser failure level takes effect
	// on the next view.
	looser, err := ops.ParsePolicy(strings.NewReader("streams: [{match: 'shop/*', rpo: {warning: 5m, failure: 2h}}]"))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.SetPolicy(looser)
	if _, body := f.page(cookie); !strings.Contains(body, `data-stream="shop/users" data-state="warning"`) {
		t.Fatalf("after SetPolicy: %s", body)
	}
}
