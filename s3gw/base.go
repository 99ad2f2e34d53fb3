package s3gw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/google/btree"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// A base is a snapshot of stream "s3/<bucket>" whose export is the
// bucket's key table at a log position (FORMAT.md §22.5): NDJSON, a header
// line, then one line per version in key byte order, each key's versions
// oldest first. Opening a bucket reads its newest base and the log after
// it instead of the whole log, and forget can then drop the log before a
// kept base.

// baseVersion is the "base" field of the header line.
const baseVersion = 1

// maxBaseLine bounds one line of a base: a version line holds a key, an
// object record no larger than an event value, and a few numbers.
const maxBaseLine = repo.MaxEventValue + 2*MaxKeyLen + 256

// baseHeader is the first line of a base.
type baseHeader struct {
	Base     int          `json:"base"`
	Bucket   string       `json:"bucket"`
	Position uint64       `json:"position"` // the last event the table holds
	Time     int64        `json:"time"`     // that event's time, unix ns
	Created  int64        `json:"created"`  // the bucket's creation time, unix ns
	Record   BucketRecord `json:"record"`   // the bucket's settings
}

// baseLine is one version of one key.
type baseLine struct {
	Key    string          `json:"key"`
	Time   int64           `json:"time"` // the version's event time, unix ns
	Seq    uint64          `json:"seq"`  // the version's event position
	Record json.RawMessage `json:"record"`
}

// baseView is a consistent copy of one bucket's table, taken under the
// gateway's lock; its key tree is a copy-on-write clone.
type baseView struct {
	name    string
	created int64
	cfg     BucketRecord
	seq     uint64
	time    int64
	keys    *btree.BTreeG[keyEntry]
	uploads []*UploadRecord // the multipart uploads in progress
}

// view copies the bucket's table; the caller holds the gateway's write
// lock (Clone updates the tree's copy-on-write state).
func (b *bucketState) view() *baseView {
	return &baseView{name: b.name, created: b.created, cfg: b.cfg, seq: b.seq, time: b.time, keys: b.keys.Clone(), uploads: b.uploadRecords()}
}

// encodeBase writes the base of v to w in its canonical form: the same
// table always gives the same bytes.
func encodeBase(w io.Writer, v *baseView) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := func(x any) error {
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		_, err = bw.Write(b)
		return err
	}
	if err := enc(baseHeader{Base: baseVersion, Bucket: v.name, Position: v.seq, Time: v.time, Created: v.created, Record: v.cfg}); err != nil {
		return err
	}
	var err error
	v.keys.Ascend(func(e keyEntry) bool {
		for _, ver := range e.vs {
			rec := ver.obj
			if ver.marker {
				rec = &ObjectRecord{Version: ver.id, DeleteMarker: true}
			}
			var raw []byte
			if raw, err = json.Marshal(rec); err != nil {
				return false
			}
			if err = enc(baseLine{Key: e.key, Time: ver.time, Seq: ver.seq, Record: raw}); err != nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, u := range v.uploads {
		if err := enc(u); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// uploadLine reports whether a base line is an upload record.
func uploadLine(l []byte) bool { return bytes.HasPrefix(l, []byte(`{"upload":`)) }

// decodeBase reads a base of bucket name and returns its table. It refuses
// (ErrBadRecord) anything but the canonical form's structure: a header of
// this bucket, keys ascending, each key's versions with distinct IDs and
// ascending positions, no position or time past the header's, records
// that decode and are neither removals nor empty keys' (FORMAT.md §22.5).
func decodeBase(r io.Reader, name string) (*bucketState, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBaseLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: base: %v", ErrBadRecord, err)
		}
		return nil, fmt.Errorf("%w: base: empty", ErrBadRecord)
	}
	var h baseHeader
	if err := decodeStrict(sc.Bytes(), &h); err != nil {
		return nil, fmt.Errorf("base header: %w", err)
	}
	if h.Base != baseVersion {
		return nil, fmt.Errorf("%w: base version %d", repo.ErrUnsupportedVersion, h.Base)
	}
	if h.Bucket != name {
		return nil, fmt.Errorf("%w: base of bucket %q found in the stream of %q", ErrBadRecord, h.Bucket, name)
	}
	if h.Position == 0 || h.Created > h.Time {
		return nil, fmt.Errorf("%w: base header: position %d, created %d, time %d", ErrBadRecord, h.Position, h.Created, h.Time)
	}
	if h.Record.Versioning != "" && h.Record.Versioning != "Enabled" && h.Record.Versioning != "Suspended" {
		return nil, fmt.Errorf("%w: base header: versioning %q", ErrBadRecord, h.Record.Versioning)
	}
	b := newBucketState(name, h.Created, h.Record)
	b.seq, b.time = h.Position, h.Time
	var cur keyEntry
	flush := func() {
		if cur.key != "" {
			b.keys.ReplaceOrInsert(cur)
		}
	}
	line := 1
	lastUpload := ""
	for sc.Scan() {
		line++
		if uploadLine(sc.Bytes()) {
			u, err := DecodeUploadRecord(sc.Bytes())
			if err != nil {
				return nil, fmt.Errorf("base line %d: %w", line, err)
			}
			prev := b.uploads[u.Upload]
			switch {
			case u.End, u.Upload < lastUpload,
				u.Part == 0 && prev != nil,
				u.Part > 0 && (prev == nil || u.Upload != lastUpload || len(prev.parts) > 0 && slices.Max(slices.Collect(maps.Keys(prev.parts))) >= u.Part):
				return nil, fmt.Errorf("%w: base line %d: upload records out of order", ErrBadRecord, line)
			}
			if lastUpload == "" {
				flush()
				cur = keyEntry{}
			}
			lastUpload = u.Upload
			b.applyUploadRecord(u, h.Time)
			continue
		}
		if lastUpload != "" {
			return nil, fmt.Errorf("%w: base line %d: a version after the uploads", ErrBadRecord, line)
		}
		var l baseLine
		if err := decodeStrict(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("base line %d: %w", line, err)
		}
		if ValidKey(l.Key) != nil || l.Key < cur.key {
			return nil, fmt.Errorf("%w: base line %d: key %q invalid or out of order", ErrBadRecord, line, l.Key)
		}
		if l.Seq == 0 || l.Seq > h.Position || l.Time > h.Time {
			return nil, fmt.Errorf("%w: base line %d: position %d or time %d past the base's", ErrBadRecord, line, l.Seq, l.Time)
		}
		o, err := DecodeObjectRecord(l.Record)
		if err != nil {
			return nil, fmt.Errorf("base line %d: %w", line, err)
		}
		if o.Remove {
			return nil, fmt.Errorf("%w: base line %d: a removal", ErrBadRecord, line)
		}
		v := &version{id: o.Version, time: l.Time, seq: l.Seq, marker: o.DeleteMarker}
		if !o.DeleteMarker {
			v.obj = o
		}
		if l.Key != cur.key {
			flush()
			cur = keyEntry{key: l.Key}
		} else if last := cur.vs[len(cur.vs)-1]; l.Seq <= last.seq {
			return nil, fmt.Errorf("%w: base line %d: versions of %q out of order", ErrBadRecord, line, l.Key)
		}
		for _, old := range cur.vs {
			if old.id == v.id {
				return nil, fmt.Errorf("%w: base line %d: version %s of %q twice", ErrBadRecord, line, v.id, l.Key)
			}
		}
		cur.vs = append(cur.vs, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: base line %d: %v", ErrBadRecord, line+1, err)
	}
	flush()
	return b, nil
}

func init() { engine.RegisterSnapshotTrees(StreamPrefix, BaseTrees) }

// BaseTrees calls fn with the blob trees of every version a base's export
// (read from content) holds, so prune keeps what a base's table needs and
// check verifies it. Any line it cannot read is an error: prune MUST see
// every tree.
func BaseTrees(content io.Reader, fn func(repo.Tree) error) error {
	sc := bufio.NewScanner(content)
	sc.Buffer(make([]byte, 0, 64<<10), maxBaseLine)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if !bytes.HasPrefix(sc.Bytes(), []byte(`{"base":`)) {
				return fmt.Errorf("%w: not a bucket base", ErrBadRecord)
			}
			continue
		}
		if uploadLine(sc.Bytes()) {
			u, err := DecodeUploadRecord(sc.Bytes())
			if err != nil {
				return fmt.Errorf("base line %d: %w", line, err)
			}
			if u.Tree != nil {
				if err := fn(*u.Tree); err != nil {
					return err
				}
			}
			continue
		}
		var l baseLine
		if err := decodeStrict(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("base line %d: %w", line, err)
		}
		o, err := DecodeObjectRecord(l.Record)
		if err != nil {
			return fmt.Errorf("base line %d: %w", line, err)
		}
		for _, p := range o.Parts {
			if err := fn(p.Tree); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: base line %d: %v", ErrBadRecord, line+1, err)
	}
	if line == 0 {
		return fmt.Errorf("%w: empty base", ErrBadRecord)
	}
	return nil
}

// ErrNoBase is returned by WriteBase when a bucket's table may not be
// written as a base (its log and table may differ after a failed flush).
var ErrNoBase = errors.New("s3 gateway: the bucket's table may differ from its log; no base until a restart")

// WriteBase writes a base of bucket now, unless the newest one is already
// at the bucket's last event (written false). It returns the base's
// snapshot ID. The table is copied under the gateway's lock in O(1) and
// encoded while writes continue: the base holds exactly the events through
// its position, all of them stored.
func (g *Gateway) WriteBase(ctx context.Context, bucket string) (id repo.ID, written bool, err error) {
	if g.ReadOnly() {
		return repo.ID{}, false, ErrReadOnly
	}
	g.baseMu.Lock()
	defer g.baseMu.Unlock()
	g.mu.Lock()
	b := g.buckets[bucket]
	var v *baseView
	switch {
	case b == nil:
		err = ErrNoSuchBucket
	case b.diverged:
		err = ErrNoBase
	default:
		v = b.view()
	}
	g.mu.Unlock()
	if err != nil {
		return repo.ID{}, false, err
	}
	parent := g.bases[bucket]
	if parent != nil && *parent.Position >= v.seq {
		return parent.ID, false, nil
	}
	// Abandoned uploads (older than UploadGrace) are left out, so their
	// parts are freed once their events leave the log.
	cutoff := g.o.Now().Add(-UploadGrace).UnixNano()
	gone := map[string]bool{}
	v.uploads = slices.DeleteFunc(v.uploads, func(u *UploadRecord) bool {
		if u.Key != "" && u.Started < cutoff {
			gone[u.Upload] = true
		}
		return gone[u.Upload]
	})
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(encodeBase(pw, v)) }()
	pos := v.seq
	id, snap, err := engine.Backup(ctx, g.r, pr, engine.BackupOptions{
		Stream: StreamPrefix + bucket, Format: engine.FormatNDJSON,
		Time: time.Unix(0, v.time), Position: &pos, Parent: parent,
	})
	pr.CloseWithError(errors.New("base stored"))
	if err != nil {
		return repo.ID{}, false, fmt.Errorf("s3 gateway: base of bucket %s: %w", bucket, err)
	}
	g.bases[bucket] = &index.SnapshotRef{ID: id, Snapshot: snap}
	g.baseWhen[bucket] = time.Now()
	g.mu.Lock()
	if b := g.buckets[bucket]; b != nil {
		b.basePos = max(b.basePos, pos)
	}
	g.mu.Unlock()
	return id, true, nil
}

// kickBases wakes the base writer when a touched bucket has BaseEvery
// events past its newest base; the caller holds g.mu.
func (g *Gateway) kickBases(touched map[string]bool) {
	if g.o.BaseEvery <= 0 {
		return
	}
	for bucket := range touched {
		b := g.buckets[bucket]
		if b == nil || b.seq < b.basePos+uint64(g.o.BaseEvery) {
			continue
		}
		select {
		case g.baseKick <- struct{}{}:
		default:
		}
		return
	}
}

// runBases writes bases as they fall due (basesDue) until ctx ends.
func (g *Gateway) runBases(ctx context.Context) {
	defer close(g.baseDone)
	every := time.Minute
	if g.o.BaseInterval > 0 {
		every = min(every, max(g.o.BaseInterval/4, 10*time.Millisecond))
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	refresh := time.NewTicker(KnownRefresh)
	defer refresh.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if err := g.refreshKnown(ctx); err != nil && ctx.Err() == nil {
				slog.Error("s3 gateway: rebuilding the deduplication set failed; the next attempt follows", "err", err)
			}
			continue
		case <-tick.C:
		case <-g.baseKick:
		}
		for _, bucket := range g.basesDue(start) {
			if ctx.Err() != nil {
				return
			}
			_, _, err := g.WriteBase(ctx, bucket)
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoSuchBucket) {
				g.baseErrMu.Lock()
				g.baseErr = err
				g.baseErrMu.Unlock()
				slog.Error("s3 gateway: writing a base failed; the next attempt follows", "bucket", bucket, "err", err)
			}
		}
	}
}

// basesDue lists the buckets whose next base is due: BaseEvery events
// past the newest base, or changed and BaseInterval after it (or after
// start, the gateway's, when it has none yet written by this gateway).
func (g *Gateway) basesDue(start time.Time) []string {
	g.baseMu.Lock()
	type st struct {
		pos  uint64
		when time.Time
	}
	known := map[string]st{}
	for bucket, s := range g.bases {
		w, ok := g.baseWhen[bucket]
		if !ok {
			w = start
		}
		known[bucket] = st{*s.Position, w}
	}
	g.baseMu.Unlock()
	g.mu.RLock()
	defer g.mu.RUnlock()
	var due []string
	now := time.Now()
	for name, b := range g.buckets {
		k, ok := known[name]
		if !ok {
			k.when = start
		}
		if b.diverged || b.seq <= k.pos {
			continue
		}
		if g.o.BaseEvery > 0 && b.seq-k.pos >= uint64(g.o.BaseEvery) || g.o.BaseInterval > 0 && now.Sub(k.when) >= g.o.BaseInterval {
			due = append(due, name)
		}
	}
	slices.Sort(due)
	return due
}

// baseError returns the background writer's last failure.
func (g *Gateway) baseError() error {
	g.baseErrMu.Lock()
	defer g.baseErrMu.Unlock()
	return g.baseErr
}

// CanonicalBase decodes a base of bucket from r (refusing what FORMAT.md
// §22.5 refuses) and returns its canonical encoding: a base written by a
// gateway comes back byte for byte.
func CanonicalBase(r io.Reader, bucket string) ([]byte, error) {
	b, err := decodeBase(r, bucket)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := encodeBase(&out, b.view()); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// KnownRefresh is how often a read-write gateway rebuilds the set of
// blobs it deduplicates against (refreshKnown). It must stay below prune's
// grace period (an hour by default), since a blob the set holds is safe
// to reference only until a pack marked after the rebuild is swept.
const KnownRefresh = 10 * time.Minute

// refreshKnown rebuilds the set of blobs new content is deduplicated
// against from the index files in the repository now, leaving out every
// pack the newest prune marks object names. Once forget and prune free a
// bucket's old versions, a gateway that kept the set it loaded at start
// would let a PUT of the same content reference blobs prune deleted. A
// pack not marked at the rebuild is swept no earlier than the prune
// grace period after it, so the set is safe for that long; blobs written
// meanwhile that the rebuild missed are only stored again.
func (g *Gateway) refreshKnown(ctx context.Context) error {
	marks, err := engine.PruneMarks(ctx, g.r.Store())
	if err != nil {
		return err
	}
	ix, _, err := index.Load(ctx, g.r, func(e repo.IndexEntry) bool { _, marked := marks[e.Pack]; return !marked })
	if ix == nil {
		return err
	}
	if err != nil {
		return err // an index file unreadable: keep the old set rather than a partial one
	}
	g.known.replace(ix)
	return nil
}
