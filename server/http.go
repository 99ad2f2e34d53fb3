package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// apiError is an error with its HTTP status and protocol code.
type apiError struct {
	status    int
	code      string
	msg       string
	identical bool
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, wire.CodeBadRequest, format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return errorf(http.StatusForbidden, wire.CodeForbidden, format, args...)
}

// storeError maps a store failure to a response: a missing object is 404,
// anything else is the store's trouble (503), logged with its detail.
func storeError(err error) *apiError {
	switch {
	case errors.Is(err, repo.ErrNotFound):
		return errorf(http.StatusNotFound, wire.CodeNotFound, "object not found")
	case errors.Is(err, repo.ErrRetained):
		return errorf(http.StatusConflict, wire.CodeConflict, "the object is under retention and cannot be deleted yet")
	}
	return errorf(http.StatusServiceUnavailable, wire.CodeUnavailable, "the repository's store failed: %v", err)
}

// request is one request in flight: who made it, and what to record.
type request struct {
	id       *auth.Identity
	start    time.Time
	endpoint string // route pattern, the metrics label
	audit    *wire.AuditRecord
	// bodyDeadline is when reading the body must be done; bodyRead is
	// set once it was read to its end.
	bodyDeadline time.Time
	bodyRead     bool
	// em are the endpoint's metrics, looked up once at registration (nil
	// for pages, which look theirs up per request).
	em *endpointMetrics
}

// call is what one API request allocates: its request and its writer
// together.
type call struct {
	rq request
	sw statusWriter
}

type handler func(w http.ResponseWriter, r *http.Request, rq *request) *apiError

// statusWriter remembers the status and counts the body bytes.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	metrics := promhttp.HandlerFor(s.o.Registry, promhttp.HandlerOpts{})
	s.handle("GET /metrics", auth.Read, func(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
		metrics.ServeHTTP(w, r)
		return nil
	})
	s.handle("GET /v1/objects/{name...}", "", s.getObject)
	s.handle("HEAD /v1/objects/{name...}", "", s.getObject)
	s.handle("PUT /v1/objects/{name...}", "", s.putObject)
	s.handle("DELETE /v1/objects/{name...}", auth.Admin, s.deleteObject)
	s.handle("GET /v1/objects", "", s.listObjects)
	s.handle("GET /v1/whoami", "", func(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
		now := s.o.Now().UTC()
		writeJSON(w, http.StatusOK, wire.Identity{Name: rq.id.Name, Scopes: auth.FormatScopes(rq.id.Scopes), Now: &now})
		return nil
	})
	s.handle("GET /v1/streams", auth.Read, s.listStreams)
	// Lookups of one stream are open to the scopes that work on it
	// (mayLookUp), so a backup-only or restore-only token works alone.
	s.handle("GET /v1/snapshots", "", s.listSnapshots)
	s.handle("GET /v1/plan", "", s.plan)
	s.handle("GET /v1/coverage", "", s.coverage)
	s.handle("POST /v1/forget", auth.Admin, s.forget)
	s.handle("POST /v1/restores", "", s.reportRestore)
	s.handle("POST /v1/checks", auth.Admin, s.reportCheck)
	s.handle("GET /v1/audit", auth.Admin, s.readAudit)
	s.handle("GET /v1/records", auth.Read, s.opsRecords)
	s.pageRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, wire.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

// handle registers h behind authentication, the scope check need (when not
// empty; handlers that check scopes per object pass ""), metrics, the
// request log and the audit trail.
func (s *Server) handle(pattern string, need auth.Kind, h handler) {
	endpoint := pattern
	em := s.metrics.endpoint(endpoint)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &call{rq: request{start: time.Now(), endpoint: endpoint, em: em}, sw: statusWriter{ResponseWriter: w}}
		rq, sw := &c.rq, &c.sw
		rq.bodyDeadline = s.boundBody(w, r)
		var err *apiError
		rq.id, err = s.authenticate(r)
		if err == nil && need != "" && !rq.id.Allows(need, "") {
			err = forbidden("this token has no %s scope", need)
		}
		if err == nil {
			err = h(sw, r, rq)
		}
		if err != nil {
			if r.ContentLength != 0 && !rq.bodyRead {
				// Close rather than read a refused body to its end.
				sw.Header().Set("Connection", "close")
			}
			writeError(sw, err)
		}
		s.finish(r, sw, rq, err)
	})
}

func (s *Server) authenticate(r *http.Request) (*auth.Identity, *apiError) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, errorf(http.StatusUnauthorized, wire.CodeUnauthorized, "missing bearer token")
	}
	id, ok := s.o.Tokens().Authenticate(token)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, wire.CodeUnauthorized, "unknown token")
	}
	return id, nil
}

// finish records a request in the metrics, the log and, for writes,
// refusals, restores and admin actions, the audit trail.
func (s *Server) finish(r *http.Request, sw *statusWriter, rq *request, err *apiError) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	took := time.Since(rq.start)
	if rq.em != nil {
		rq.em.request(status, took)
	} else {
		s.metrics.request(rq.endpoint, status, took)
	}
	who := ""
	if rq.id != nil {
		who = rq.id.Name
	}
	// The request log's attributes are built only when the line is
	// written (--log-level warn skips every successful request).
	if level := slogLevel(status); s.o.Logger.Enabled(r.Context(), level) {
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", clip(r.URL.Path, 1024)), slog.Int("status", status),
			slog.Float64("ms", float64(took.Microseconds())/1000), slog.String("token", who), slog.String("remote", r.RemoteAddr),
			slog.Int64("bytes_out", sw.bytes)}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.msg))
		}
		s.o.Logger.LogAttrs(r.Context(), level, "request", attrs...)
	}

	rec := rq.audit
	if rec == nil && status >= 400 && status != http.StatusNotFound {
		// Every refusal is audited, including unauthenticated ones.
		rec = &wire.AuditRecord{Action: auditAction(rq.endpoint), Object: r.URL.Path}
	}
	if rec == nil {
		return
	}
	rec.Time, rec.Token, rec.Remote, rec.Status = s.o.Now().UTC(), who, r.RemoteAddr, status
	rec.Result = "ok"
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		rec.Result = "refused"
	case status >= 400:
		rec.Result = "failed"
	}
	if err != nil && rec.Detail == "" {
		rec.Detail = err.msg
	}
	if rec.Result != "ok" && status < 500 {
		// Anyone who reaches the port can be refused: bounded (auditLog.addLimited).
		s.audit.addLimited(*rec)
		return
	}
	s.audit.add(*rec)
}

// auditAction names the operation of a route for the audit trail, as the
// handlers name what they record ("put", "forget", "audit-read"), so a
// refusal reads like the operation it refused: an action is a word, never
// the HTTP method and path again (those are the record's object).
func auditAction(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/v1/objects/"):
		if method == "HEAD" {
			return "get"
		}
		return strings.ToLower(method)
	case path == "/v1/objects":
		return "list"
	case path == "/v1/audit":
		return "audit-read"
	}
	name := path[strings.LastIndexByte(path, '/')+1:]
	return strings.TrimSuffix(name, "s") // restores, checks: one report each
}

// bodyTimeout answers a body that stalled or took too long.
func bodyTimeout(err error) *apiError {
	return errorf(http.StatusRequestTimeout, wire.CodeTimeout, "the request body did not arrive in time: %v", err)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	}
	writeJSON(w, e.status, wire.Error{Error: wire.ErrorBody{Code: e.code, Message: e.msg, Identical: e.identical}})
}

// Header values shared by every JSON answer: net/http only reads them,
// and Set or Add replace or copy a value slice, never write into it.
var (
	hdrJSON    = []string{wire.MediaJSON}
	hdrNosniff = []string{"nosniff"}
)

// jsonHeaders sets the headers of a JSON answer of n bytes (n < 0: not
// known yet).
func jsonHeaders(w http.ResponseWriter, n int) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["X-Content-Type-Options"] = hdrNosniff
	if n >= 0 {
		h["Content-Length"] = []string{strconv.Itoa(n)}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	jsonHeaders(w, -1)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// decodeJSON reads a bounded JSON body into v, refusing unknown fields and
// trailing data. The body and what it decodes to are held within the
// memory budget (twice the largest body).
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, rq *request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, wire.MediaJSON) {
		return errorf(http.StatusUnsupportedMediaType, wire.CodeBadRequest, "content type %q: want %s", ct, wire.MediaJSON)
	}
	release, e := s.reserve(r.Context(), 2*wire.MaxJSONBody)
	if e != nil {
		return e
	}
	defer release()
	tb := s.timedBody(w, r, rq)
	defer tb.done()
	body := http.MaxBytesReader(nil, io.NopCloser(tb), wire.MaxJSONBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "request body over %d bytes", wire.MaxJSONBody)
		}
		if timedOut(err) {
			return bodyTimeout(err)
		}
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body: data after the object")
	}
	rq.bodyRead = true
	return nil
}

// slogLevel logs failures of the server itself as errors, refusals and bad
// requests as warnings, the rest as info.
func slogLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
