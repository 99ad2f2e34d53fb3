package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests drives the JSON and query decoders of the API with arbitrary
// bodies and query strings, as admin and as stream-scoped tokens (the
// per-stream lookup checks): the server answers every one with a status
// below 500 (bad input is the client's, never a crash or the server's
// fault), and a stream-scoped token never gets a stream outside its glob.
func FuzzRequests(f *testing.F) {
	fx := newFixture(f)
	f.Add([]byte(`{"stream":"shop/users","keep_last":1,"dry_run":true}`), "stream=shop/users&at=2026-11-01T00:00:00Z")
	f.Add([]byte(`{"stream":"x","seconds":-1}`), "stream=x&position=18446744073709551615")
	f.Add([]byte(`{"stream":"a","keep_within_pitr":"99999999999h"}`), "stream=../x&at=1e300")
	f.Add([]byte(`[`), "prefix=logs/a/@")
	f.Add([]byte(`{}`), "stream=shop/users&position=5&limit=1&after=AQEAAAAAAAAAAAAAAAAAAAAA")
	f.Add([]byte(`{}`), "stream=shop/users&at=2026-11-01T00:00:00Z&limit=4294967296&after=")
	h := fx.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		for _, rq := range []struct{ method, path, who string }{
			{"POST", "/v1/forget", "admin"}, {"POST", "/v1/restores", "admin"}, {"POST", "/v1/checks", "admin"},
			{"GET", "/v1/plan?" + query, "admin"}, {"GET", "/v1/coverage?" + query, "admin"}, {"GET", "/v1/objects?" + query, "admin"},
			{"POST", "/v1/restores", "shopRestore"}, {"GET", "/v1/plan?" + query, "shopRestore"},
			{"GET", "/v1/coverage?" + query, "shopBackup"}, {"GET", "/v1/snapshots?" + query, "shopRestore"},
		} {
			req := httptest.NewRequest(rq.method, "http://x/", bytes.NewReader(body))
			req.URL.RawQuery = ""
			if i := bytes.IndexByte([]byte(rq.path), '?'); i >= 0 {
				req.URL.Path, req.URL.RawQuery = rq.path[:i], rq.path[i+1:]
			} else {
				req.URL.Path = rq.path
			}
			req.Header.Set("Authorization", "Bearer "+fx.tokens[rq.who])
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= http.StatusInternalServerError {
				t.Fatalf("%s %s with %q: %d %s", rq.method, rq.path, body, w.Code, w.Body)
			}
			if rq.who != "admin" && w.Code < 300 {
				if s := req.URL.Query().Get("stream"); s != "" && !strings.HasPrefix(s, "shop/") {
					t.Fatalf("%s %s as %s: %d for a stream outside shop/*", rq.method, rq.path, rq.who, w.Code)
				}
			}
		}
	})
}
