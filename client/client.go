package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// Sentinel errors; an *Error wraps the one that fits its status.
var (
	ErrUnauthorized = errors.New("the server does not know this token (STRATA_TOKEN)")
	ErrForbidden    = errors.New("the token's scopes do not allow this")
)

// Error is an error response from the server.
type Error struct {
	Status    int
	Code      string
	Message   string
	Identical bool
	Op        string // "PUT data/…"
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: server said %d %s: %s", e.Op, e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return repo.ErrNotFound
	}
	if e.Code == wire.CodeNotRestorable {
		return index.ErrNotRestorable
	}
	return nil
}

// Options configure a Client.
type Options struct {
	// CAFile, when set, is a PEM file of the certificates that may sign the
	// server's (for a private CA or a self-signed server certificate).
	CAFile string
	// Attempts is how often an idempotent API request is tried; default 4.
	// The object API (Store) is retried by the repo/retry decorator instead.
	Attempts int
	// Timeout bounds each request's response headers; default 60s.
	Timeout time.Duration
	// PlanPage is how many segments PlanFor asks for per page of a plan;
	// default DefaultPlanPage.
	PlanPage int
}

// Client is a connection to one server. It is safe for concurrent use.
type Client struct {
	base     string // scheme://host:port
	location string
	token    string
	hc       *http.Client
	attempts int
	planPage int
	// prefetched holds segment manifests PlanFor fetched ahead of the
	// restore's Gets (prefetch.go).
	prefetched prefetched
}

// New parses an http:// or https:// server URL.
func New(location, token string, o Options) (*Client, error) {
	u, err := url.Parse(location)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("%q: want http(s)://HOST:PORT of a strata server (the token comes from STRATA_TOKEN)", location)
	}
	if token == "" {
		return nil, fmt.Errorf("%s: no token: set STRATA_TOKEN (or STRATA_TOKEN_FILE)", location)
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.PlanPage <= 0 {
		o.PlanPage = DefaultPlanPage
	}
	tr := &http.Transport{
		Proxy:                 nil, // the server is addressed directly
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
		ForceAttemptHTTP2:     true,
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: u.Scheme + "://" + u.Host, location: location, token: token,
		hc: &http.Client{Transport: tr}, attempts: o.Attempts, planPage: min(o.PlanPage, wire.MaxPlanSegments)}, nil
}

// Location is the server URL the client was made with.
func (c *Client) Location() string { return c.location }

// call sends one request and returns the response for a 2xx status; other
// statuses become *Error. With retry, connection failures and 502/503/504
// are retried under retry.Do's backoff: every request sent with retry is
// idempotent or, for uploads, safe to replay (the server answers a replay
// with Identical). The object API (Store) never sets it: the retry
// decorator that location.Open puts around every remote store does, as the
// repo.Store contract wants.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte, hdr http.Header, retryIt bool) (*http.Response, error) {
	if !retryIt {
		return c.callOnce(ctx, method, path, q, body, hdr)
	}
	var resp *http.Response
	err := retry.Do(ctx, retry.Policy{Attempts: c.attempts, Base: 100 * time.Millisecond, Max: 2 * time.Second}, func() error {
		var err error
		resp, err = c.callOnce(ctx, method, path, q, body, hdr)
		return err
	})
	return resp, err
}

// callOnce sends one request. A transport failure is transient (a later
// identical request may succeed), as are 502, 503 and 504 (*Error.Transient).
func (c *Client) callOnce(ctx context.Context, method, path string, q url.Values, body []byte, hdr http.Header) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	op := method + " " + strings.TrimPrefix(path, "/v1/objects/")
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &transportError{fmt.Errorf("%s: %w", op, err)}
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	apiErr := decodeError(resp, op)
	resp.Body.Close()
	return nil, apiErr
}

// transportError is a request that got no response: transient.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// Transient reports true: the request may succeed when sent again.
func (e *transportError) Transient() bool { return true }

// Transient reports whether the server asked to try again later (502, 503
// or 504); repo/retry reads it.
func (e *Error) Transient() bool {
	return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
}

func decodeError(resp *http.Response, op string) *Error {
	e := &Error{Status: resp.StatusCode, Op: op, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: resp.Status}
	var body wire.Error
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Identical = body.Error.Code, oneLine(body.Error.Message), body.Error.Identical
	}
	return e
}

// oneLine quotes a server's message when it holds anything that is not
// printable (newlines, escape sequences, bidirectional overrides), so
// what the server echoes of a request cannot forge lines where the error
// is shown.
func oneLine(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) < 0 && utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

// getJSON fetches a JSON document into v.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.call(ctx, http.MethodGet, path, q, nil, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: bad response: %w", path, err)
	}
	return nil
}

// postJSON sends v and decodes the answer into out (when not nil).
func (c *Client) postJSON(ctx context.Context, path string, v, out any, retry bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := c.call(ctx, http.MethodPost, path, nil, b, http.Header{"Content-Type": {wire.MediaJSON}}, retry)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return fmt.Errorf("POST %s: bad response: %w", path, err)
	}
	return nil
}

// Streams lists the server's streams.
func (c *Client) Streams(ctx context.Context) ([]wire.Stream, error) {
	var out []wire.Stream
	return out, c.getJSON(ctx, "/v1/streams", nil, &out)
}

// Snapshots lists the snapshots of stream ("" for all), oldest first.
func (c *Client) Snapshots(ctx context.Context, stream string) ([]wire.Snapshot, error) {
	var out []wire.Snapshot
	q := url.Values{}
	if stream != "" {
		q.Set("stream", stream)
	}
	return out, c.getJSON(ctx, "/v1/snapshots", q, &out)
}

// Coverage asks for a stream's restorable windows and gaps.
func (c *Client) Coverage(ctx context.Context, stream string) (*wire.Coverage, error) {
	var cov wire.Coverage
	return &cov, c.getJSON(ctx, "/v1/coverage", url.Values{"stream": {stream}}, &cov)
}

// Records returns the newest drill record of every stream and the newest
// scrub record (read), for `strata status` to grade with its own policy.
func (c *Client) Records(ctx context.Context) (*ops.Records, error) {
	var out ops.Records
	return &out, c.getJSON(ctx, "/v1/records", nil, &out)
}

// Forget asks the server to apply a retention policy (admin).
func (c *Client) Forget(ctx context.Context, req wire.ForgetRequest) (*wire.ForgetResponse, error) {
	var out wire.ForgetResponse
	return &out, c.postJSON(ctx, "/v1/forget", req, &out, false)
}

// ReportRestore tells the server a restore ended.
func (c *Client) ReportRestore(ctx context.Context, r wire.RestoreReport) error {
	return c.postJSON(ctx, "/v1/restores", r, nil, true)
}

// ReportCheck tells the server a check ended (admin).
func (c *Client) ReportCheck(ctx context.Context, r wire.CheckReport) error {
	return c.postJSON(ctx, "/v1/checks", r, nil, true)
}

// Audit calls fn for every audit record at or after since (admin).
func (c *Client) Audit(ctx context.Context, since time.Time, fn func(wire.AuditRecord) error) error {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	resp, err := c.call(ctx, http.MethodGet, "/v1/audit", q, nil, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	n := 0
	for {
		var line struct {
			wire.AuditRecord
			End   bool   `json:"end"`
			Count int    `json:"count"`
			Error string `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("audit: the listing ended early after %d records: %w", n, err)
		}
		switch {
		case line.Error != "":
			return fmt.Errorf("audit: %s", line.Error)
		case line.End:
			if line.Count != n {
				return fmt.Errorf("audit: got %d records, the server sent %d", n, line.Count)
			}
			return nil
		}
		n++
		if err := fn(line.AuditRecord); err != nil {
			return err
		}
	}
}

// ErrTooFarAhead: a snapshot or an event is dated later than the server's
// clock allows (wire.MaxClockSkew); the server would refuse it.
var ErrTooFarAhead = errors.New("dated after the server's clock allows")

// Whoami returns the token's name and scopes.
func (c *Client) Whoami(ctx context.Context) (*auth.Identity, error) {
	id, _, err := c.whoami(ctx)
	return id, err
}

func (c *Client) whoami(ctx context.Context) (*auth.Identity, *ServerClock, error) {
	var w wire.Identity
	if err := c.getJSON(ctx, "/v1/whoami", nil, &w); err != nil {
		return nil, nil, err
	}
	got := time.Now()
	scopes, err := auth.ParseScopes(w.Scopes)
	if err != nil {
		return nil, nil, fmt.Errorf("whoami: %w", err)
	}
	var clock *ServerClock
	if w.Now != nil {
		clock = &ServerClock{at: *w.Now, local: got}
	}
	return &auth.Identity{Name: w.Name, Scopes: scopes}, clock, nil
}

// ServerClock is the server's trusted clock as seen from the client: the
// time the server answered, advanced by the client's monotonic clock since
// the answer arrived. That is never ahead of the server's own clock (the
// answer took time to arrive), so a date it admits the server admits too,
// unless the two clocks drift apart by more than the round trip.
type ServerClock struct {
	at    time.Time
	local time.Time // carries the monotonic reading
}

// Synced is when (by the client's clock) the server's clock was read.
func (sc *ServerClock) Synced() time.Time { return sc.local }

// Now is a lower bound of the server's clock now.
func (sc *ServerClock) Now() time.Time { return sc.at.Add(time.Since(sc.local)) }

// Admit returns an error wrapping ErrTooFarAhead when t is later than the
// server would accept now (wire.TooFarAhead).
func (sc *ServerClock) Admit(t time.Time) error {
	if now := sc.Now(); wire.TooFarAhead(t, now) {
		return fmt.Errorf("%s is %s after the server's clock (%s), more than the %s allowed: %w",
			t.UTC().Format(time.RFC3339Nano), t.Sub(now).Round(time.Second), now.UTC().Format(time.RFC3339), wire.MaxClockSkew, ErrTooFarAhead)
	}
	return nil
}

// MayBackup checks, before any upload, that the token may write stream
// and, when at is not zero, that the server accepts a snapshot dated at,
// so a backup the server would refuse at its end uploads nothing. It
// returns the server's clock, for checking later dates (events).
func (c *Client) MayBackup(ctx context.Context, stream string, at time.Time) (*ServerClock, error) {
	id, clock, err := c.whoami(ctx)
	if err != nil {
		return nil, err
	}
	if !id.Allows(auth.Backup, stream) {
		return nil, fmt.Errorf("token %q (%s) may not back up stream %s: %w", id.Name, auth.FormatScopes(id.Scopes), stream, ErrForbidden)
	}
	if clock == nil {
		return nil, fmt.Errorf("whoami: the server did not send its clock")
	}
	if !at.IsZero() {
		if err := clock.Admit(at); err != nil {
			return nil, fmt.Errorf("snapshot of %s dated %w", stream, err)
		}
	}
	return clock, nil
}
