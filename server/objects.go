package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// parseObject reads and classifies the {name...} path value.
func parseObject(r *http.Request) (wire.Object, *apiError) {
	o, err := wire.ParseObject(r.PathValue("name"))
	if err != nil {
		return o, badRequest("%v", err)
	}
	return o, nil
}

// streamOf is the stream an object belongs to: in a segment's name, or in
// a snapshot's label. Shared objects belong to none.
func (s *Server) streamOf(o wire.Object) (string, bool) {
	switch o.Class {
	case wire.ClassSegment:
		return o.Segment.Stream, true
	case wire.ClassLease, wire.ClassCheckpoint:
		return o.Stream, true
	case wire.ClassSnapshot, wire.ClassLabel:
		l, ok := s.cat.label(o.ID)
		if !ok {
			return "", false
		}
		return l.Stream, true
	}
	return "", true
}

// mayRead decides a download (PROTOCOL.md, "Scopes").
func mayRead(id *auth.Identity, o wire.Object, stream string) *apiError {
	ok := false
	switch o.Class {
	case wire.ClassConfig, wire.ClassKey:
		ok = true // sealed with the password: every client needs them to open the repository
	case wire.ClassData, wire.ClassIndex:
		// A restore reads the packs; a backup reads the list blobs of its
		// parent (deduplication). Packs are shared and sealed with the key.
		ok = id.Allows(auth.Restore, "") || id.Allows(auth.Backup, "")
	case wire.ClassSnapshot, wire.ClassSegment, wire.ClassLease:
		// A backup reads its parent snapshot and the log it continues (and
		// the lease of the stream it captures).
		ok = id.Allows(auth.Restore, stream) || id.Allows(auth.Backup, stream)
	case wire.ClassLabel:
		ok = id.Allows(auth.Read, "") || id.Allows(auth.Restore, stream) || id.Allows(auth.Backup, stream)
	case wire.ClassCheckpoint:
		// Only the stream's next backup resumes from it.
		ok = id.Allows(auth.Backup, stream) || id.Allows(auth.Admin, "")
	case wire.ClassPrune, wire.ClassAudit:
		ok = id.Allows(auth.Admin, "")
	case wire.ClassScrub:
		ok = id.Allows(auth.Read, "") // clear progress and counts, shown on status pages
	case wire.ClassDrill:
		// Drill records hold no content (FORMAT.md §24): they are lookups.
		ok = id.Allows(auth.Read, "")
	}
	if !ok {
		if stream != "" {
			return forbidden("this token may not read %s objects of stream %s", o.Class, stream)
		}
		return forbidden("this token may not read %s objects", o.Class)
	}
	return nil
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	o, e := parseObject(r)
	if e != nil {
		return e
	}
	stream, known := s.streamOf(o)
	if !known && !rq.id.Allows(auth.Admin, "") {
		// A snapshot without a label is not one the server can scope.
		return errorf(http.StatusNotFound, wire.CodeNotFound, "no such snapshot")
	}
	if e := mayRead(rq.id, o, stream); e != nil {
		return e
	}
	if o.Class == wire.ClassSnapshot {
		// Downloading a manifest starts a restore (or a backup's dedup against its parent).
		rq.audit = &wire.AuditRecord{Action: "read-snapshot", Object: o.Name, Stream: stream}
	}
	ctx := r.Context()
	if r.Method == http.MethodHead {
		oi, err := s.st.Stat(ctx, o.Name)
		if err != nil {
			return storeError(err)
		}
		w.Header().Set("Content-Length", strconv.FormatInt(oi.Size, 10))
		w.Header().Set("Content-Type", wire.MediaObject)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	var data []byte
	var err error
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		off, n, perr := parseRange(rg)
		if perr != nil {
			return errorf(http.StatusRequestedRangeNotSatisfiable, wire.CodeBadRequest, "%v", perr)
		}
		release, e := s.reserve(ctx, n)
		if e != nil {
			return e
		}
		defer release()
		data, err = s.st.GetRange(ctx, o.Name, off, n)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errorf(http.StatusRequestedRangeNotSatisfiable, wire.CodeBadRequest, "range %s is not inside the object", rg)
		}
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", off, off+n-1))
	} else {
		// The object is held whole (repo.Store.Get): its size is
		// reserved first, and a stored object over the upload limit
		// (never written through a server) is not served.
		oi, serr := s.st.Stat(ctx, o.Name)
		if serr != nil {
			return storeError(serr)
		}
		if oi.Size > wire.MaxObjectBody {
			return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "%s is %d bytes, over the limit %d", o.Name, oi.Size, wire.MaxObjectBody)
		}
		release, e := s.reserve(ctx, oi.Size)
		if e != nil {
			return e
		}
		defer release()
		data, err = s.st.Get(ctx, o.Name)
	}
	if err != nil {
		return storeError(err)
	}
	if int64(len(data)) > wire.MaxObjectBody {
		return errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "%s is over the limit %d", o.Name, wire.MaxObjectBody)
	}
	w.Header().Set("Content-Type", wire.MediaObject)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	// A reader that stalls gives the memory back after BodyTimeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.o.BodyTimeout))
	w.Write(data)
	return nil
}

// parseRange accepts exactly one "bytes=FIRST-LAST" range.
func parseRange(h string) (off, n int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("range %q: want bytes=FIRST-LAST", h)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || last-first >= wire.MaxObjectBody {
		return 0, 0, fmt.Errorf("range %q: want bytes=FIRST-LAST", h)
	}
	return first, last - first + 1, nil
}

// readBody reads an upload of exactly Content-Length bytes, at most limit.
// A body that ends early is a truncated upload: refused, nothing stored;
// one that stalls or takes too long is cut (timedBody).
//
// The store takes whole objects (repo.Store.Put), so the body is held in
// memory: twice its size is reserved from the memory budget first (the
// body, and the stored copy a replay is compared with), and released by
// the returned func when the request is done. The reservation comes
// before any byte is read, so however many clients announce large
// uploads, the bodies held never pass the budget.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, rq *request, limit int64) ([]byte, func(), *apiError) {
	if r.ContentLength < 0 {
		return nil, nil, errorf(http.StatusLengthRequired, wire.CodeLengthRequired, "uploads need a Content-Length")
	}
	if r.ContentLength > limit {
		return nil, nil, errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "upload of %d bytes, over the limit %d", r.ContentLength, limit)
	}
	release, e := s.reserve(r.Context(), 2*r.ContentLength)
	if e != nil {
		return nil, nil, e
	}
	data := make([]byte, r.ContentLength)
	tb := s.timedBody(w, r, rq)
	defer tb.done()
	if _, err := io.ReadFull(tb, data); err != nil {
		release()
		if timedOut(err) {
			return nil, nil, bodyTimeout(err)
		}
		return nil, nil, badRequest("truncated upload: %v", err)
	}
	rq.bodyRead = true
	return data, release, nil
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	o, e := parseObject(r)
	if e != nil {
		return e
	}
	rq.audit = &wire.AuditRecord{Action: "put", Object: o.Name}
	limit := int64(wire.MaxObjectBody)
	switch o.Class {
	case wire.ClassLabel:
		limit = repo.MaxLabelSize
	case wire.ClassDrill:
		limit = ops.MaxRecordSize
	}
	// Scopes that do not depend on the body come first, so a refused
	// upload is not even read.
	id := rq.id
	switch o.Class {
	case wire.ClassConfig, wire.ClassAudit:
		return forbidden("%s objects are written only by `strata init` and the server itself", o.Class)
	case wire.ClassKey, wire.ClassPrune, wire.ClassScrub:
		if !id.Allows(auth.Admin, "") {
			return forbidden("writing %s objects needs the admin scope", o.Class)
		}
	case wire.ClassData, wire.ClassIndex:
		if !id.Allows(auth.Backup, "") {
			return forbidden("this token has no backup scope")
		}
	case wire.ClassSegment:
		rq.audit.Stream = o.Segment.Stream
		if !id.Allows(auth.Backup, o.Segment.Stream) {
			return forbidden("this token may not back up stream %s", o.Segment.Stream)
		}
		if now := s.o.Now(); wire.TooFarAhead(time.Unix(0, o.Segment.LastTime), now) {
			return badRequest("segment events dated %s, after the server's clock (%s) allows", time.Unix(0, o.Segment.LastTime).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	case wire.ClassLease:
		rq.audit.Stream = o.Stream
		if !id.Allows(auth.Backup, o.Stream) {
			return forbidden("this token may not capture stream %s", o.Stream)
		}
	case wire.ClassCheckpoint:
		rq.audit.Stream = o.Stream
		if !id.Allows(auth.Backup, o.Stream) {
			return forbidden("this token may not back up stream %s", o.Stream)
		}
	case wire.ClassSnapshot:
		l, ok := s.cat.label(o.ID)
		if !ok {
			return errorf(http.StatusConflict, wire.CodeConflict, "upload the snapshot's label first (labels/%s)", o.ID)
		}
		rq.audit.Stream = l.Stream
		if !id.Allows(auth.Backup, l.Stream) {
			return forbidden("this token may not back up stream %s", l.Stream)
		}
	case wire.ClassLabel:
		if !id.Allows(auth.Backup, "") {
			return forbidden("this token has no backup scope")
		}
	case wire.ClassDrill:
		// The stream is in the body: checked below, before storing.
		if !id.Allows(auth.Restore, "") {
			return forbidden("writing drill records needs a restore scope")
		}
		if now := s.o.Now(); wire.TooFarAhead(time.Unix(0, o.Stamp), now) {
			return badRequest("drill record stamped %s, after the server's clock (%s) allows", time.Unix(0, o.Stamp).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	default:
		return forbidden("%s objects are not written through the server", o.Class)
	}
	data, release, e := s.readBody(w, r, rq, limit)
	if e != nil {
		return e
	}
	defer release()
	rq.audit.Bytes = int64(len(data))
	var label *repo.Label
	var scrub *ops.ScrubRecord
	if o.Class == wire.ClassLabel {
		if label, e = s.acceptLabel(o, data, id); e != nil {
			return e
		}
		rq.audit.Stream = label.Stream
		if data, e = encodeLabel(label); e != nil {
			return e
		}
	} else if o.Class == wire.ClassScrub {
		var err error
		if scrub, err = ops.DecodeScrub(o.Name, data); err != nil {
			return errorf(http.StatusUnprocessableEntity, wire.CodeCorrupt, "not a scrub record: %v", err)
		}
	} else if o.Class == wire.ClassDrill {
		rec, err := ops.DecodeDrillRecord(data)
		if err != nil {
			return badRequest("%s: %v", o.Name, err)
		}
		rq.audit.Stream = rec.Stream
		if !id.Allows(auth.Restore, rec.Stream) {
			return forbidden("this token may not drill stream %s", rec.Stream)
		}
		rq.audit.Action = "drill"
	} else if o.Class != wire.ClassPrune {
		if err := repo.VerifyObject(o.Name, data); err != nil {
			return errorf(http.StatusUnprocessableEntity, wire.CodeCorrupt, "the upload is not what its name promises: %v", err)
		}
	}

	mu := s.putLock(o.Name)
	mu.Lock()
	defer mu.Unlock()
	if e := s.refuseOverwrite(r, o, data); e != nil {
		return e
	}
	if o.Class == wire.ClassLease {
		// The name lock orders this server's uploads; the store's own
		// exclusive create orders them against other servers and writers
		// on the same store (FORMAT.md §15).
		if e := s.createLease(r, o, data); e != nil {
			return e
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	if err := s.st.Put(r.Context(), o.Name, data); err != nil {
		return storeError(err)
	}
	s.metrics.uploaded(len(data))
	switch o.Class {
	case wire.ClassLabel:
		s.cat.addLabel(o.ID, label)
		rq.audit = nil // recorded with its snapshot, the backup's one record
	case wire.ClassSnapshot:
		s.cat.addSnapshot(o.ID)
		if l, ok := s.cat.label(o.ID); ok {
			s.metrics.backup(l)
			rq.audit.Action = "backup"
			rq.audit.Detail = fmt.Sprintf("snapshot of %s, %d bytes, %d stored", l.Stream, l.Size, l.StoredBytes)
		}
	case wire.ClassScrub:
		s.scrubs.observe(scrub, false)
		rq.audit.Action = "scrub"
		rq.audit.Detail = fmt.Sprintf("keyed %t: read %d packs; %d bad shards, %d rebuilt from parity, %d beyond repair", scrub.Keyed, scrub.PacksRead, scrub.BadShards, scrub.Repaired, scrub.Unrepaired)
	case wire.ClassSegment:
		s.cat.addSegment(o.Segment)
		rq.audit.Action = "log"
		rq.audit.Detail = fmt.Sprintf("positions %d-%d", o.Segment.First, o.Segment.Last)
	case wire.ClassData, wire.ClassIndex:
		// One record per logical operation: the shards, index files and
		// label of a backup or a log segment are committed, and recorded,
		// by its snapshot or segment manifest. Refused and failed uploads are
		// still recorded one by one (handle).
		rq.audit = nil
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// createLease stores a lease generation with the store's exclusive create,
// then removes the stream's generation two before it: superseded
// generations hold nothing anyone needs, and a backup token may not delete.
func (s *Server) createLease(r *http.Request, o wire.Object, data []byte) *apiError {
	err := repo.CreateObject(r.Context(), s.st, o.Name, data)
	if errors.Is(err, repo.ErrObjectExists) {
		return errorf(http.StatusConflict, wire.CodeExists, "%s already exists; objects are never overwritten", o.Name)
	}
	if err != nil {
		return storeError(err)
	}
	s.metrics.uploaded(len(data))
	if o.Gen > 2 {
		if err := s.st.Delete(context.WithoutCancel(r.Context()), repo.LeaseName(o.Stream, o.Gen-2)); err != nil && !errors.Is(err, repo.ErrRetained) {
			s.o.Logger.Warn("removing a superseded lease generation failed", "stream", o.Stream, "generation", o.Gen-2, "error", err)
		}
	}
	return nil
}

// acceptLabel checks an uploaded label and stamps the server's receive time
// and the uploader on it: whatever a client put there is replaced.
func (s *Server) acceptLabel(o wire.Object, data []byte, id *auth.Identity) (*repo.Label, *apiError) {
	l, err := repo.DecodeLabel(o.Name, data)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if !id.Allows(auth.Backup, l.Stream) {
		return nil, forbidden("this token may not back up stream %s", l.Stream)
	}
	now := s.o.Now().UTC()
	if wire.TooFarAhead(l.Time, now) {
		return nil, badRequest("snapshot dated %s, after the server's clock (%s) allows", l.Time.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	l.Received, l.By = &now, id.Name
	return l, nil
}

func encodeLabel(l *repo.Label) ([]byte, *apiError) {
	b, err := l.Encode()
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, wire.CodeInternal, "encode label: %v", err)
	}
	return b, nil
}

// refuseOverwrite enforces append-only writes: an object that exists is
// never replaced. A replay of identical bytes is told so (Identical), so a
// client that lost the first response can count the upload as done. A
// label's stored bytes carry the first upload's receive time, so a replayed
// label is compared without it.
func (s *Server) refuseOverwrite(r *http.Request, o wire.Object, data []byte) *apiError {
	oi, err := s.st.Stat(r.Context(), o.Name)
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeError(err)
	}
	e := errorf(http.StatusConflict, wire.CodeExists, "%s already exists; objects are never overwritten", o.Name)
	if oi.Size > int64(len(data)) && o.Class != wire.ClassLabel {
		return e // not identical, and more than the reservation covers
	}
	old, err := s.st.Get(r.Context(), o.Name)
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeError(err)
	}
	same := bytes.Equal(old, data)
	if o.Class == wire.ClassLabel {
		same = sameLabel(o.Name, old, data)
	}
	e.identical = same
	return e
}

func sameLabel(name string, a, b []byte) bool {
	la, err1 := repo.DecodeLabel(name, a)
	lb, err2 := repo.DecodeLabel(name, b)
	if err1 != nil || err2 != nil {
		return false
	}
	la.Received, la.By, lb.Received, lb.By = nil, "", nil, ""
	ja, _ := json.Marshal(la)
	jb, _ := json.Marshal(lb)
	return bytes.Equal(ja, jb)
}

func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	o, e := parseObject(r)
	if e != nil {
		return e
	}
	rq.audit = &wire.AuditRecord{Action: "delete", Object: o.Name}
	if o.Class == wire.ClassConfig || o.Class == wire.ClassAudit {
		return forbidden("%s objects are never deleted through the server", o.Class)
	}
	if stream, ok := s.streamOf(o); ok {
		rq.audit.Stream = stream
	}
	if err := s.st.Delete(r.Context(), o.Name); err != nil {
		return storeError(err)
	}
	switch o.Class {
	case wire.ClassSnapshot:
		s.cat.removeSnapshot(o.ID, false)
	case wire.ClassLabel:
		s.cat.removeSnapshot(o.ID, true)
	case wire.ClassSegment:
		s.cat.removeSegment(o.Segment)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listObjects streams a listing as NDJSON, ending with a count line.
func (s *Server) listObjects(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	p, err := wire.ParsePrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		return badRequest("%v", err)
	}
	id := rq.id
	ok := false
	switch p.Class {
	case wire.ClassKey:
		ok = true
	case wire.ClassIndex:
		ok = id.Allows(auth.Backup, "") || id.Allows(auth.Restore, "")
	case wire.ClassSegment, wire.ClassLease:
		ok = p.Stream != "" && (id.Allows(auth.Backup, p.Stream) || id.Allows(auth.Restore, p.Stream)) || id.Allows(auth.Admin, "")
	case wire.ClassDrill:
		ok = id.Allows(auth.Read, "")
	case wire.ClassCheckpoint:
		ok = p.Stream != "" && id.Allows(auth.Backup, p.Stream) || id.Allows(auth.Admin, "")
	default:
		ok = id.Allows(auth.Admin, "")
	}
	if !ok {
		return forbidden("this token may not list %q", p.Prefix)
	}
	w.Header().Set("Content-Type", wire.MediaNDJSON)
	enc := json.NewEncoder(w)
	n := 0
	lerr := s.st.List(r.Context(), p.Prefix, func(oi repo.ObjectInfo) error {
		n++
		return enc.Encode(wire.ListLine{Name: oi.Name, Size: oi.Size})
	})
	if lerr != nil {
		if n == 0 {
			return storeError(lerr)
		}
		// The status is sent; leaving out the end line tells the client.
		s.o.Logger.Error("listing failed midway", "prefix", p.Prefix, "error", lerr)
		return nil
	}
	enc.Encode(wire.ListLine{End: true, Count: n})
	return nil
}
