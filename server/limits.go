package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/netutil"

	"github.com/strata-backup/strata/server/wire"
)

// Defaults of the limits that bound the server's memory and connections
// (PROTOCOL.md, "Limits and memory").
const (
	DefaultMaxConns = 256
	// DefaultMemory holds the largest upload (reserved twice) with room for
	// others; a budget below MinMemory refuses the largest uploads (413).
	DefaultMemory          = 640 << 20
	MinMemory              = 2*wire.MaxObjectBody + 2*wire.MaxJSONBody
	DefaultBodyIdleTimeout = 30 * time.Second
	DefaultBodyTimeout     = 10 * time.Minute
	DefaultMemoryWait      = 30 * time.Second
	readHeaderTimeout      = 10 * time.Second
	keepAliveTimeout       = 2 * time.Minute
	// ConnOverhead is what one connection may hold besides its budgeted
	// bodies: over HTTP/1.1 a request head (16 KiB and the runtime's 4 KiB
	// slack), the read and write buffers, a goroutine stack and TLS state;
	// over HTTP/2 up to h2Streams such requests and the flow-control
	// buffer for bodies not read yet (h2ConnBuffer). Rounded up.
	ConnOverhead = 512 << 10
	h2Streams    = 8
	h2ConnBuffer = 256 << 10
	h2StreamBuf  = 128 << 10
)

// MemoryBound is the most the server holds for requests at once with
// these options: the memory budget plus every connection's overhead. The
// catalog (about 300 bytes a snapshot or segment) and the Go runtime come
// on top; `strata serve` gives the runtime a soft limit of this bound plus
// the catalog and 64 MiB (debug.SetMemoryLimit).
func (o Options) MemoryBound() int64 {
	return o.Memory + int64(o.MaxConns)*ConnOverhead
}

func (o *Options) setLimitDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Memory <= 0 {
		o.Memory = DefaultMemory
	}
	if o.BodyIdleTimeout <= 0 {
		o.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.MemoryWait <= 0 {
		o.MemoryWait = DefaultMemoryWait
	}
}

// HTTPServer returns an http.Server for the handler with the protocol's
// limits: request headers within 10 s and 16 KiB, idle keep-alive
// connections closed after 2 minutes, over HTTP/2 at most 8 requests at
// once on a connection. Bodies get their own timeouts per
// request (timedBody). Serve it on Listener(ln), which caps connections.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       keepAliveTimeout,
		MaxHeaderBytes:    wire.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
		// HTTP/2 (over TLS) multiplexes requests on one connection: a few,
		// with small receive buffers, so ConnOverhead holds for it too.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: h2Streams, MaxReceiveBufferPerConnection: h2ConnBuffer,
			MaxReceiveBufferPerStream: h2StreamBuf},
	}
}

// Listener caps the connections accepted from ln at Options.MaxConns: the
// next one waits in the kernel's backlog until one closes.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, s.o.MaxConns)
}

// headerBytes is the size of a request's head as it came on the wire: the
// request line and every header line.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	if r.Host != "" && r.Header.Get("Host") == "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// limitHeaders refuses a request whose head is over wire.MaxHeaderBytes:
// net/http reads up to 4 KiB more than its MaxHeaderBytes before it
// refuses, and the protocol promises 16 KiB.
func (s *Server) limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headerBytes(r); n > wire.MaxHeaderBytes {
			w.Header().Set("Connection", "close")
			writeError(w, errorf(http.StatusRequestHeaderFieldsTooLarge, wire.CodeTooLarge, "request headers of %d bytes, over the limit %d", n, wire.MaxHeaderBytes))
			s.o.Logger.Warn("request headers too large", "bytes", n, "remote", r.RemoteAddr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// boundBody puts a deadline of BodyTimeout on whatever reads a request's
// body, the handler or net/http discarding what a handler left unread, so
// no body holds a connection longer. A request refused before its body is
// read closes its connection instead of reading the rest (handle).
func (s *Server) boundBody(w http.ResponseWriter, r *http.Request) time.Time {
	deadline := time.Now().Add(s.o.BodyTimeout)
	if r.ContentLength != 0 {
		// Not every ResponseWriter has a connection (tests use recorders).
		_ = http.NewResponseController(w).SetReadDeadline(deadline)
	}
	return deadline
}

// timedBody reads a request body under two deadlines: no byte for
// BodyIdleTimeout, or the whole body not in by BodyTimeout, ends the read
// with a deadline error (a 408 answer). A stalled upload then holds its
// connection and its memory for seconds, not forever. done lifts the
// deadline once the body is in, so a long store write is not cut.
type timedBody struct {
	r        io.Reader
	rc       *http.ResponseController
	idle     time.Duration
	deadline time.Time
}

func (s *Server) timedBody(w http.ResponseWriter, r *http.Request, rq *request) *timedBody {
	return &timedBody{r: r.Body, rc: http.NewResponseController(w), idle: s.o.BodyIdleTimeout, deadline: rq.bodyDeadline}
}

func (b *timedBody) Read(p []byte) (int, error) {
	d := time.Now().Add(b.idle)
	if d.After(b.deadline) {
		d = b.deadline
	}
	_ = b.rc.SetReadDeadline(d)
	return b.r.Read(p)
}

func (b *timedBody) done() { _ = b.rc.SetReadDeadline(time.Time{}) }

// timedOut reports whether a body read ended at its deadline.
func timedOut(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// reserve takes n bytes of the memory budget for a body or an object the
// request holds, waiting up to MemoryWait for others to finish; release
// gives them back. A server that stays busy answers 503, which clients
// retry.
func (s *Server) reserve(ctx context.Context, n int64) (release func(), e *apiError) {
	if n <= 0 {
		return func() {}, nil
	}
	if n > s.o.Memory {
		return nil, errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "%d bytes, over the server's memory budget", n)
	}
	wctx, cancel := context.WithTimeout(ctx, s.o.MemoryWait)
	defer cancel()
	if err := s.budget.Acquire(wctx, n); err != nil {
		s.metrics.busy()
		return nil, errorf(http.StatusServiceUnavailable, wire.CodeUnavailable, "the server is busy: no memory for %d bytes within %s; retry", n, s.o.MemoryWait)
	}
	return func() { s.budget.Release(n) }, nil
}
