package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// streamParam reads and checks ?stream=.
func streamParam(r *http.Request) (string, *apiError) {
	return streamOf(r.URL.Query())
}

// streamOf reads and checks stream= of a parsed query.
func streamOf(q url.Values) (string, *apiError) {
	s := q.Get("stream")
	if err := repo.ValidStream(s); err != nil {
		return "", badRequest("stream: %v", err)
	}
	return s, nil
}

func (s *Server) listStreams(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	infos := s.cat.streams()
	out := make([]wire.Stream, 0, len(infos))
	for name, si := range infos {
		st := wire.Stream{Name: name, Snapshots: si.snapshots, Segments: si.segments}
		if !si.newest.IsZero() {
			t := si.newest
			st.Newest = &t
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b wire.Stream) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) snapshotOf(ref index.SnapshotRef) wire.Snapshot {
	l, _ := s.cat.label(ref.ID)
	return wire.Snapshot{ID: ref.ID.String(), Label: l}
}

// mayLookUp decides a lookup of one stream (PROTOCOL.md, "Scopes"): read
// covers every stream; otherwise the scopes that work on the stream carry
// the lookups that work needs, listed in kinds (a backup its parent, a
// restore its plan and coverage).
func mayLookUp(id *auth.Identity, stream string, kinds ...auth.Kind) *apiError {
	if id.Allows(auth.Read, "") {
		return nil
	}
	for _, k := range kinds {
		if id.Allows(k, stream) {
			return nil
		}
	}
	return forbidden("this token may not look up stream %s", stream)
}

// seesStream reports whether a listing of every stream shows stream to id.
func seesStream(id *auth.Identity, stream string) bool {
	return id.Allows(auth.Read, "") || id.Allows(auth.Backup, stream) || id.Allows(auth.Restore, stream)
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	var refs []index.SnapshotRef
	stream := r.URL.Query().Get("stream")
	if stream != "" {
		if err := repo.ValidStream(stream); err != nil {
			return badRequest("stream: %v", err)
		}
		if e := mayLookUp(rq.id, stream, auth.Backup, auth.Restore); e != nil {
			return e
		}
	} else if !seesStream(rq.id, "") {
		return forbidden("this token has no read, backup or restore scope")
	}
	s.cat.read(func(c *index.Catalog) { refs = c.Stream(stream) })
	out := make([]wire.Snapshot, 0, len(refs))
	for _, ref := range refs {
		// Without ?stream= a token without read sees the streams its
		// backup and restore globs match, and no others.
		if stream == "" && !seesStream(rq.id, ref.Stream) {
			continue
		}
		out = append(out, s.snapshotOf(ref))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// planTarget parses at= (RFC 3339 or unix seconds) or position=
// (index.ParseTarget).
func planTarget(q url.Values) (index.Target, *apiError) {
	t, err := index.ParseTarget(q.Get("at"), q.Get("position"))
	if err != nil {
		return index.Target{}, badRequest("%v", err)
	}
	if t == nil {
		return index.Target{}, badRequest("give at=TIME or position=N")
	}
	return *t, nil
}

// planPage parses limit= and after= (PROTOCOL.md §5, "Pages"): limit 0
// when absent (the whole plan), a cursor when after is given.
func planPage(q url.Values) (limit int, after *wire.PlanCursor, e *apiError) {
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > wire.MaxPlanSegments {
			return 0, nil, badRequest("limit: want 1 to %d segments", wire.MaxPlanSegments)
		}
		limit = int(n)
	}
	if v, ok := q["after"]; ok {
		c, err := wire.ParsePlanCursor(v[0])
		if err != nil {
			return 0, nil, badRequest("after: %v; ask for the plan again from its first page", err)
		}
		after = &c
	}
	return limit, after, nil
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	q := r.URL.Query()
	stream, e := streamOf(q)
	if e != nil {
		return e
	}
	if e := mayLookUp(rq.id, stream, auth.Restore); e != nil {
		return e
	}
	t, e := planTarget(q)
	if e != nil {
		return e
	}
	limit, after, e := planPage(q)
	if e != nil {
		return e
	}
	start := time.Now()
	var p *index.Plan
	var err error
	s.cat.read(func(c *index.Catalog) { p, err = c.Plan(stream, t) })
	s.metrics.planned(time.Since(start))
	if err != nil {
		if errors.Is(err, index.ErrNotRestorable) || errors.Is(err, index.ErrNoSnapshot) {
			return errorf(http.StatusUnprocessableEntity, wire.CodeNotRestorable, "%v", err)
		}
		return errorf(http.StatusInternalServerError, wire.CodeInternal, "%v", err)
	}
	// The page: segs[first:end], continuing from the segment before it.
	segs := p.Segments
	first, next, prevTime := 0, p.From, int64(0)
	if after != nil {
		// The cursor must be this plan's: a catalog that changed since the
		// first page, or an altered cursor, is refused, never continued.
		i := after.Index
		if i >= uint64(len(segs)) || wire.PlanCursorCheck(stream, t, p.Base.ID, p.From, i, segs[i-1].ID) != after.Check {
			return badRequest("after: the cursor does not continue the plan of %s at %s (the catalog changed since its first page, or the cursor was altered); ask for the plan again from its first page", stream, t)
		}
		first = int(i)
		next, prevTime = segs[first-1].Last+1, segs[first-1].LastTime
	}
	end := len(segs)
	head := wire.Plan{Stream: p.Stream, Target: p.Target.String(), From: p.From}
	if limit > 0 && end-first > limit {
		end = first + limit
		c := wire.PlanCursor{Index: uint64(end), Check: wire.PlanCursorCheck(stream, t, p.Base.ID, p.From, uint64(end), segs[end-1].ID)}
		head.Next = c.String()
	}
	// The segments as a plan log: no name is formatted, ~40 bytes each.
	bufs := planBufs.Get().(*planBuf)
	defer bufs.put()
	bufs.log = wire.AppendPlanLogAfter(bufs.log[:0], next, prevTime, segs[first:end])
	bufs.out = appendPlan(bufs.out[:0], head, s.cat.snapshotJSON(p.Base.ID), bufs.log)
	jsonHeaders(w, len(bufs.out))
	w.WriteHeader(http.StatusOK)
	w.Write(bufs.out)
	return nil
}

// planBuf holds a plan answer's buffers: a daily-snapshot plan's log is
// ~180 KB and its answer ~240 KB, garbage on every request otherwise.
type planBuf struct{ log, out []byte }

var planBufs = sync.Pool{New: func() any { return new(planBuf) }}

// maxPooledPlan bounds the buffers the pool keeps: a rare huge plan is
// not kept alive by it.
const maxPooledPlan = 4 << 20

func (b *planBuf) put() {
	if cap(b.log) > maxPooledPlan || cap(b.out) > maxPooledPlan {
		return
	}
	planBufs.Put(b)
}

// appendPlan appends the answer encoding/json writes for head with base
// (the JSON of head.Base) and log (newline included), base64-encoding log
// in place: encoding/json would build the answer in a buffer of its own,
// and the plan log is nearly all of it.
func appendPlan(b []byte, head wire.Plan, base, log []byte) []byte {
	b = append(b, `{"stream":`...)
	b = appendJSONString(b, head.Stream)
	b = append(b, `,"target":`...)
	b = appendJSONString(b, head.Target)
	b = append(b, `,"base":`...)
	b = append(b, base...)
	b = append(b, `,"from":`...)
	b = strconv.AppendUint(b, head.From, 10)
	if head.Next != "" {
		b = append(b, `,"next":`...)
		b = appendJSONString(b, head.Next)
	}
	b = append(b, `,"log":"`...)
	b = base64.StdEncoding.AppendEncode(b, log)
	return append(b, "\"}\n"...)
}

// appendJSONString appends s as encoding/json writes a string: quoted as
// is when every byte is printable ASCII that needs no escape (streams,
// targets and cursors always are), else by encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (s *Server) coverage(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	stream, e := streamParam(r)
	if e != nil {
		return e
	}
	if e := mayLookUp(rq.id, stream, auth.Restore, auth.Backup); e != nil {
		return e
	}
	// The answer is the stream's cached JSON with the lag measured now:
	// what writeJSON(wire.CoverageOf(cov, now)) writes.
	ce := s.cat.coverageOf(stream)
	if ce.json == nil {
		writeJSON(w, http.StatusOK, wire.CoverageOf(ce.cov, s.o.Now()))
		return nil
	}
	bufs := planBufs.Get().(*planBuf)
	defer bufs.put()
	b := append(bufs.out[:0], ce.json...)
	if !ce.cov.Newest.IsZero() {
		b = append(b, `,"lag_seconds":`...)
		b = appendJSONFloat(b, s.o.Now().Sub(ce.cov.Newest).Seconds())
	}
	b = append(b, "}\n"...)
	bufs.out = b
	jsonHeaders(w, len(b))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}

// appendJSONFloat appends f as encoding/json writes a float64: the
// shortest decimal that reads back, in exponent form below 1e-6 or from
// 1e21 on, with a one-digit negative exponent unpadded.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, '0') // unreachable: a lag is a difference of two instants
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// forget applies a retention policy by the server's receive times. Only
// manifests and labels are deleted; prune (client-side, with the key)
// removes data.
func (s *Server) forget(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	var req wire.ForgetRequest
	if e := s.decodeJSON(w, r, rq, &req); e != nil {
		return e
	}
	if err := repo.ValidStream(req.Stream); err != nil {
		return badRequest("stream: %v", err)
	}
	p := engine.ForgetPolicy{KeepLast: req.KeepLast, KeepHourly: req.KeepHourly, KeepDaily: req.KeepDaily,
		KeepWeekly: req.KeepWeekly, KeepMonthly: req.KeepMonthly}
	if req.KeepWithinPITR != "" {
		d, err := time.ParseDuration(req.KeepWithinPITR)
		if err != nil {
			return badRequest("keep_within_pitr: %v", err)
		}
		p.KeepWithinPITR = d
	}
	rq.audit = &wire.AuditRecord{Action: "forget", Stream: req.Stream}
	if req.DryRun {
		rq.audit.Action = "forget-dry-run"
	}
	now := s.o.Now().UTC()
	res, err := engine.Forget(r.Context(), s.st, s.cat.trusted(), engine.ForgetOptions{Stream: req.Stream, Policy: p, Now: now, DryRun: req.DryRun})
	if res != nil && !req.DryRun {
		s.applyForget(res)
	}
	if errors.Is(err, engine.ErrEmptyPolicy) {
		return badRequest("%v", err)
	}
	if err != nil {
		return errorf(http.StatusConflict, wire.CodeConflict, "%v", err)
	}
	out := wire.ForgetResponse{Keep: []wire.Decision{}, Remove: []wire.Decision{}, RemoveSegments: []string{}, Deferred: res.Deferred, Now: now}
	if out.Deferred == nil {
		out.Deferred = []string{}
	}
	for _, k := range res.Keep {
		out.Keep = append(out.Keep, wire.Decision{ID: k.ID.String(), Time: k.Time, Reasons: res.Reasons[k.ID]})
	}
	for _, k := range res.Remove {
		out.Remove = append(out.Remove, wire.Decision{ID: k.ID.String(), Time: k.Time})
	}
	for _, k := range res.RemoveSegments {
		out.RemoveSegments = append(out.RemoveSegments, k.Name())
	}
	rq.audit.Detail = fmt.Sprintf("kept %d snapshots, removed %d snapshots and %d segments, %d deferred", len(res.Keep), len(res.Remove), len(res.RemoveSegments), len(res.Deferred))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// applyForget removes from the catalog what Forget deleted.
func (s *Server) applyForget(res *engine.ForgetResult) {
	deferred := map[string]bool{}
	for _, d := range res.Deferred {
		deferred[d] = true
	}
	for _, k := range res.Remove {
		if !deferred[repo.SnapshotsPrefix+k.ID.String()] {
			s.cat.removeSnapshot(k.ID, true)
		}
	}
	for _, k := range res.RemoveSegments {
		if !deferred[k.Name()] {
			s.cat.removeSegment(k)
		}
	}
}

func (s *Server) reportRestore(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	var rep wire.RestoreReport
	if e := s.decodeJSON(w, r, rq, &rep); e != nil {
		return e
	}
	if err := repo.ValidStream(rep.Stream); err != nil {
		return badRequest("stream: %v", err)
	}
	// Whoever may read the stream's snapshots back may report restoring
	// one: a restore scope, or a backup scope (which reads its parent).
	if !rq.id.Allows(auth.Restore, rep.Stream) && !rq.id.Allows(auth.Backup, rep.Stream) {
		return forbidden("this token may not restore stream %s", rep.Stream)
	}
	if rep.Seconds < 0 || rep.Bytes < 0 || len(rep.Error) > 4096 || len(rep.Target) > 512 {
		return badRequest("restore report fields out of range")
	}
	if rep.Snapshot != "" {
		if _, err := repo.ParseID(rep.Snapshot); err != nil {
			return badRequest("restore report: snapshot %q is not a snapshot ID", clip(rep.Snapshot, 80))
		}
	}
	s.metrics.restored(rep)
	rq.audit = &wire.AuditRecord{Action: "restore", Stream: rep.Stream, Object: rep.Snapshot, Bytes: rep.Bytes, Seconds: rep.Seconds,
		Detail: "target " + rep.Target}
	if rep.Error != "" {
		rq.audit.Detail += "; failed: " + rep.Error
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) reportCheck(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	var rep wire.CheckReport
	if e := s.decodeJSON(w, r, rq, &rep); e != nil {
		return e
	}
	if rep.Seconds < 0 || rep.Repaired < 0 || len(rep.Problems) > 100000 {
		return badRequest("check report fields out of range")
	}
	s.metrics.checked(rep, s.o.Now())
	rq.audit = &wire.AuditRecord{Action: "check", Seconds: rep.Seconds,
		Detail: fmt.Sprintf("read_data=%v problems=%d repaired=%d", rep.ReadData, len(rep.Problems), rep.Repaired)}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
