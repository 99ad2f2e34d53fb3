package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// auditLog buffers audit records and writes them to the repository as
// numbered NDJSON objects, audit/<unix ns:19>.jsonl, each starting with a
// line naming the BLAKE3 of the object before it. The objects are only ever
// added (under Object Lock they are immutable too), and the chain makes a
// removed or altered object visible to `strata audit`.
//
// Records are written at least every flush interval and when the server
// stops; a server that crashes loses at most the records of the last
// interval. The objects they describe are stored before the request
// returns regardless.
type auditLog struct {
	st     repo.Store
	now    func() time.Time
	logger *slog.Logger

	mu  sync.Mutex // guards buf and refusals
	buf []wire.AuditRecord
	// refusals bounds what refused and failed requests write (see
	// addLimited): anyone who can reach the port can make them.
	refusals refusalLimiter
	flushMu  sync.Mutex // serializes writes; guards prev and lastNS
	prev     string     // hex BLAKE3 of the newest audit object; "" before the first
	lastNS   int64
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	failed   func() // counts a failed write (metrics)
}

// auditHeader is the first line of every audit object.
type auditHeader struct {
	Prev string `json:"prev"`
}

const auditBatch = 500 // records that trigger an early write

func openAuditLog(ctx context.Context, st repo.Store, now func() time.Time, logger *slog.Logger) (*auditLog, error) {
	a := &auditLog{st: st, now: now, logger: logger, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), failed: func() {}}
	var last string
	if err := st.List(ctx, repo.AuditPrefix, func(oi repo.ObjectInfo) error { last = oi.Name; return nil }); err != nil {
		return nil, err
	}
	if last != "" {
		b, err := st.Get(ctx, last)
		if err != nil {
			return nil, err
		}
		h := blake3.Sum256(b)
		a.prev = fmt.Sprintf("%x", h[:])
		o, _ := repo.ParseObject(last) // a name that does not parse leaves 0: the next batch is stamped now
		a.lastNS = o.Stamp
	}
	return a, nil
}

// Bounds on what one record and what refusals can write to the audit
// trail (PROTOCOL.md, "Audit trail"). A record is at most about 2 KiB; in
// each refusalWindow at most refusalBudget refused or failed requests are
// recorded one by one, and the rest are counted in at most
// refusalKeys+1 summary records, so requests that anyone can send add at
// most about 64 KiB a minute to a repository whose audit objects may never
// be deleted.
const (
	maxAuditObject = 256  // bytes of an object name or URL path kept
	maxAuditDetail = 1024 // bytes of a detail kept
	maxAuditAction = 64
	maxAuditRemote = 64
	refusalWindow  = time.Minute
	refusalBudget  = 60
	refusalKeys    = 64
)

// clip shortens s to at most n bytes, on a UTF-8 boundary, saying how long
// it was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	suffix := fmt.Sprintf("…(%d bytes)", len(s))
	cut := max(n-len(suffix), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + suffix
}

// bound clips every free-text field of a record.
func bound(rec *wire.AuditRecord) {
	rec.Object = clip(rec.Object, maxAuditObject)
	rec.Detail = clip(rec.Detail, maxAuditDetail)
	rec.Action = clip(rec.Action, maxAuditAction)
	rec.Remote = clip(rec.Remote, maxAuditRemote)
	rec.Stream = clip(rec.Stream, maxAuditObject)
	rec.Token = clip(rec.Token, maxAuditObject)
}

// refusalLimiter counts refused and failed requests per window: the first
// refusalBudget are recorded whole, the rest only counted per client (the
// token's name, or the remote host without a token), in at most
// refusalKeys counters plus one for everyone else.
type refusalLimiter struct {
	start    time.Time
	recorded int
	counts   map[string]*refusalCount
}

type refusalCount struct {
	token, remote string
	n             int
	statuses      map[int]int
	first, last   time.Time
}

// summaries returns one record per counted client, and starts a new window.
func (l *refusalLimiter) summaries(now time.Time) []wire.AuditRecord {
	var out []wire.AuditRecord
	keys := slices.Sorted(maps.Keys(l.counts))
	for _, k := range keys {
		c := l.counts[k]
		var st []string
		for _, code := range slices.Sorted(maps.Keys(c.statuses)) {
			st = append(st, fmt.Sprintf("%d×%d", c.statuses[code], code))
		}
		out = append(out, wire.AuditRecord{Time: now.UTC(), Token: c.token, Remote: c.remote, Action: "refusals-summary",
			Result: "refused", Detail: fmt.Sprintf("%d more refused or failed requests not recorded one by one, %s to %s: status %s",
				c.n, c.first.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339), strings.Join(st, ", "))})
	}
	*l = refusalLimiter{start: now}
	return out
}

// admit reports whether a refused or failed request is recorded whole;
// otherwise it is counted.
func (l *refusalLimiter) admit(rec *wire.AuditRecord) bool {
	if l.start.IsZero() {
		l.start = rec.Time
	}
	if l.recorded < refusalBudget {
		l.recorded++
		return true
	}
	if l.counts == nil {
		l.counts = map[string]*refusalCount{}
	}
	key, token, remote := "t:"+rec.Token, rec.Token, ""
	if rec.Token == "" {
		remote = rec.Remote
		if h, _, err := net.SplitHostPort(rec.Remote); err == nil {
			remote = h
		}
		key = "r:" + remote
	}
	c := l.counts[key]
	if c == nil {
		if len(l.counts) >= refusalKeys {
			key, token, remote = "*", "", "*"
			c = l.counts[key]
		}
		if c == nil {
			c = &refusalCount{token: token, remote: remote, statuses: map[int]int{}, first: rec.Time}
			l.counts[key] = c
		}
	}
	c.n++
	c.last = rec.Time
	if len(c.statuses) < 16 || c.statuses[rec.Status] > 0 {
		c.statuses[rec.Status]++
	}
	return false
}

// add buffers a record of a request that succeeded or that the server
// failed (5xx): those are always recorded, clipped.
func (a *auditLog) add(rec wire.AuditRecord) {
	bound(&rec)
	a.mu.Lock()
	a.buf = append(a.buf, rec)
	n := len(a.buf)
	a.mu.Unlock()
	a.kickIf(n)
}

// addLimited buffers the record of a refused or failed (4xx) request within
// the window's budget, and otherwise only counts it.
func (a *auditLog) addLimited(rec wire.AuditRecord) {
	bound(&rec)
	a.mu.Lock()
	if a.refusals.admit(&rec) {
		a.buf = append(a.buf, rec)
	}
	n := len(a.buf)
	a.mu.Unlock()
	a.kickIf(n)
}

func (a *auditLog) kickIf(n int) {
	if n >= auditBatch {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func (a *auditLog) run(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		case <-a.kick:
		}
		if err := a.flush(context.Background(), false); err != nil {
			a.logger.Error("audit trail write failed; the records stay buffered and are retried", "error", err)
		}
	}
}

// flush writes the buffered records as one object. On failure they are
// kept for the next attempt.
// The counted refusals are written as summaries when their window ends,
// and on the last flush.
func (a *auditLog) flush(ctx context.Context, last bool) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	if now := a.now(); last || !a.refusals.start.IsZero() && now.Sub(a.refusals.start) >= refusalWindow {
		a.buf = append(a.buf, a.refusals.summaries(now)...)
	}
	recs := a.buf
	a.buf = nil
	a.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.Encode(auditHeader{Prev: a.prev})
	for _, r := range recs {
		enc.Encode(r)
	}
	ns := max(a.now().UnixNano(), a.lastNS+1)
	if err := a.st.Put(ctx, repo.AuditName(ns), b.Bytes()); err != nil {
		a.failed()
		a.mu.Lock()
		a.buf = append(recs, a.buf...)
		a.mu.Unlock()
		return err
	}
	h := blake3.Sum256(b.Bytes())
	a.prev, a.lastNS = fmt.Sprintf("%x", h[:]), ns
	return nil
}

func (a *auditLog) close(ctx context.Context) error {
	close(a.stop)
	<-a.done
	return a.flush(ctx, true)
}

// ReadAudit calls fn for every audit record at or after since, oldest
// first, from the store, checking the chain between the objects it reads.
// A broken chain is reported through fn's caller as an error naming the
// object, after the records before it.
func ReadAudit(ctx context.Context, st repo.Store, since time.Time, fn func(wire.AuditRecord) error) error {
	var names []string
	if err := st.List(ctx, repo.AuditPrefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return err
	}
	prev := ""
	for i, name := range names {
		b, err := st.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		if !sc.Scan() {
			return fmt.Errorf("%s: empty audit object", name)
		}
		var h auditHeader
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			return fmt.Errorf("%s: bad header: %v", name, err)
		}
		if i > 0 && h.Prev != prev {
			return fmt.Errorf("%s: the audit chain is broken: it follows an object other than %s (an audit object was removed or altered)", name, names[i-1])
		}
		sum := blake3.Sum256(b)
		prev = fmt.Sprintf("%x", sum[:])
		for sc.Scan() {
			var rec wire.AuditRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("%s: bad record: %v", name, err)
			}
			if rec.Time.Before(since) {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	return nil
}

// readAudit serves GET /v1/audit?since=TIME as NDJSON, after writing what
// is buffered, so the answer includes this very moment's records.
func (s *Server) readAudit(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return badRequest("since: want RFC 3339: %v", err)
		}
		since = t
	}
	rq.audit = &wire.AuditRecord{Action: "audit-read"}
	if err := s.audit.flush(r.Context(), false); err != nil {
		return storeError(err)
	}
	w.Header().Set("Content-Type", wire.MediaNDJSON)
	enc := json.NewEncoder(w)
	n := 0
	err := ReadAudit(r.Context(), s.st, since, func(rec wire.AuditRecord) error { n++; return enc.Encode(rec) })
	if err != nil {
		if n == 0 && !errors.Is(err, context.Canceled) {
			return errorf(http.StatusConflict, wire.CodeCorrupt, "%v", err)
		}
		// Mid-stream: end without the end line, so the client reports it.
		enc.Encode(map[string]string{"error": err.Error()})
		return nil
	}
	enc.Encode(wire.ListLine{End: true, Count: n})
	return nil
}
