package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequests drives the JSON and query decoders of the API with arbitrary
// bodies and query strings: the server answers every one with a status
// below 500 (bad input is the client's, never a crash or the server's fault).
func FuzzRequests(f *testing.F) {
	fx := newFixture(f)
	f.Add([]byte(`{"stream":"shop/users","keep_last":1,"dry_run":true}`), "stream=shop/users&at=2026-11-01T00:00:00Z")
	f.Add([]byte(`{"stream":"x","seconds":-1}`), "stream=x&position=18446744073709551615")
	f.Add([]byte(`{"stream":"a","keep_within_pitr":"99999999999h"}`), "stream=../x&at=1e300")
	f.Add([]byte(`[`), "prefix=logs/a/@")
	h := fx.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		for _, rq := range []struct{ method, path string }{
			{"POST", "/v1/forget"}, {"POST", "/v1/restores"}, {"POST", "/v1/checks"},
			{"GET", "/v1/plan?" + query}, {"GET", "/v1/coverage?" + query}, {"GET", "/v1/objects?" + query},
		} {
			req := httptest.NewRequest(rq.method, "http://x/", bytes.NewReader(body))
			req.URL.RawQuery = ""
			if i := bytes.IndexByte([]byte(rq.path), '?'); i >= 0 {
				req.URL.Path, req.URL.RawQuery = rq.path[:i], rq.path[i+1:]
			} else {
				req.URL.Path = rq.path
			}
			req.Header.Set("Authorization", "Bearer "+fx.tokens["admin"])
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= http.StatusInternalServerError {
				t.Fatalf("%s %s with %q: %d %s", rq.method, rq.path, body, w.Code, w.Body)
			}
		}
	})
}
