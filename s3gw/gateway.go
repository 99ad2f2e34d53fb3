package s3gw

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Sentinel errors of the gateway core; the S3 adapter maps them to S3 codes.
var (
	ErrNoSuchBucket     = errors.New("no such bucket")
	ErrBucketExists     = errors.New("bucket already exists")
	ErrBucketNotEmpty   = errors.New("bucket not empty")
	ErrNoSuchKey        = errors.New("no such key")
	ErrNoSuchVersion    = errors.New("no such version")
	ErrReadOnly         = errors.New("gateway is read-only")
	ErrLocked           = errors.New("object version is locked")
	ErrBadDigest        = errors.New("content MD5 does not match")
	ErrInvalidBucket    = errors.New("invalid bucket name")
	ErrInvalidKey       = errors.New("invalid object key")
	ErrPreconditionFail = errors.New("precondition failed")
)

// Options configure a Gateway. The zero value serves the live repository
// read-write.
type Options struct {
	// At, when not zero, serves every bucket read-only as it was at At.
	At time.Time
	// Now is the clock of event times; default time.Now.
	Now func() time.Time
	// BaseEvery is how many events of a bucket make its next base due
	// (FORMAT.md §22.5); default 10,000; negative: never by count.
	BaseEvery int
	// BaseInterval is how long after its last base a bucket that has
	// changed gets its next one; default 1 hour; negative: never by time.
	BaseInterval time.Duration
}

// Default base schedule (Options.BaseEvery, Options.BaseInterval).
const (
	DefaultBaseEvery    = 10000
	DefaultBaseInterval = time.Hour
)

// Gateway holds the key table of every bucket and writes object content
// and events into the repository. Its methods are safe for concurrent use.
type Gateway struct {
	r   *repo.Repository
	o   Options
	loc *locator

	mu      sync.RWMutex // guards buckets and their tables
	buckets map[string]*bucketState

	logMu sync.Mutex // serializes log appends, so event times never decrease
	logs  map[string]*engine.LogWriter
	lastT int64

	// known is what content stores deduplicate against; contentSlots
	// bounds how many run at once (each holds its frames and packs in
	// memory), so that the parts of a multipart upload, which clients
	// send several at a time, use every core.
	known        *knownSet
	contentSlots chan struct{}

	groups *groups // the small-PUT group committer (group.go)

	// Bases (base.go): the newest base of each bucket this gateway knows,
	// when it was written (by the wall clock), and the writer's controls.
	baseMu    sync.Mutex // one base written at a time; guards the maps below
	bases     map[string]*index.SnapshotRef
	baseWhen  map[string]time.Time
	baseKick  chan struct{}
	baseStop  context.CancelFunc
	baseDone  chan struct{}
	baseErrMu sync.Mutex
	baseErr   error // the last failure of the background writer, for tests and logs

	unavailable map[string]error  // buckets an --at view cannot show (Unavailable)
	pos         map[string]uint64 // by bucket: the last position applied, deleted buckets' too (guarded by mu)
}

// Open loads the repository's blob index and replays every bucket's log
// (through o.At when set) into the key table.
func Open(ctx context.Context, r *repo.Repository, o Options) (*Gateway, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BaseEvery == 0 {
		o.BaseEvery = DefaultBaseEvery
	}
	if o.BaseInterval == 0 {
		o.BaseInterval = DefaultBaseInterval
	}
	ix, _, err := index.Load(ctx, r, nil)
	if ix == nil {
		return nil, fmt.Errorf("s3 gateway: load index: %w", err)
	}
	g := &Gateway{r: r, o: o, loc: newLocator(ix),
		buckets: map[string]*bucketState{}, logs: map[string]*engine.LogWriter{},
		known: newKnownSet(ix), contentSlots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		bases: map[string]*index.SnapshotRef{}, baseWhen: map[string]time.Time{}, baseKick: make(chan struct{}, 1),
		baseDone: make(chan struct{}), unavailable: map[string]error{}, pos: map[string]uint64{}}
	g.groups = newGroups()
	if err := g.replay(ctx); err != nil {
		return nil, err
	}
	for name, s := range g.bases {
		if b := g.buckets[name]; b != nil {
			b.basePos = *s.Position
		}
	}
	if !g.ReadOnly() {
		go g.runGroups()
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.baseStop = cancel
		go g.runBases(bctx)
	} else {
		close(g.groups.stopped)
		close(g.baseDone)
	}
	return g, nil
}

// ReadOnly reports whether the gateway refuses writes (an --at view).
func (g *Gateway) ReadOnly() bool { return !g.o.At.IsZero() }

// Close seals and stores what the log writers hold.
func (g *Gateway) Close() error {
	g.stopGroups()
	if g.baseStop != nil {
		g.baseStop()
	}
	<-g.baseDone
	g.logMu.Lock()
	defer g.logMu.Unlock()
	var errs []error
	for _, w := range g.logs {
		if _, err := w.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	g.logs = map[string]*engine.LogWriter{}
	return errors.Join(errs...)
}

// replay rebuilds the key table of every bucket from its newest base at
// or before the target and the log after it (FORMAT.md §22.5).
func (g *Gateway) replay(ctx context.Context) error {
	cat, err := index.LoadStreamCatalog(ctx, g.r, "")
	if cat == nil {
		return fmt.Errorf("s3 gateway: read bases and logs: %w", err)
	}
	// An index server's catalog of every stream lists no log: the buckets
	// with a log come from listing, and each bucket's catalog is asked
	// for on its own.
	logs, lerr := index.ListLogs(ctx, g.r.Store(), "")
	if logs == nil {
		return fmt.Errorf("s3 gateway: list logs: %w", lerr)
	}
	names := map[string]bool{}
	for stream := range logs {
		if name, ok := strings.CutPrefix(stream, StreamPrefix); ok {
			names[name] = true
		}
	}
	for _, s := range cat.Snapshots {
		if name, ok := strings.CutPrefix(s.Stream, StreamPrefix); ok {
			names[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		stream := StreamPrefix + name
		c, cerr := cat, errors.Join(err, lerr)
		if cat.Untrusted {
			if c, cerr = index.LoadStreamCatalog(ctx, g.r, stream); c == nil {
				return fmt.Errorf("s3 gateway: bucket %s: %w", name, cerr)
			}
		}
		if e := index.ErrorsFor(cerr, stream); e != nil {
			return fmt.Errorf("s3 gateway: bucket %s: %w", name, e)
		}
		if err := g.replayBucket(ctx, c, name); err != nil {
			if errors.Is(err, index.ErrNotRestorable) && g.ReadOnly() {
				g.unavailable[name] = err
				continue
			}
			return fmt.Errorf("s3 gateway: bucket %s: %w", name, err)
		}
	}
	return nil
}

// Unavailable returns the buckets a read-only view at Options.At leaves
// out, because retention removed the bases and log that would show them
// as they were then, with the reason. A live gateway has none.
func (g *Gateway) Unavailable() map[string]error { return maps.Clone(g.unavailable) }

// replayBucket rebuilds one bucket: with a restore plan (index.Catalog.Plan)
// from its newest base at or before the target when it has one, else from
// the whole log. The target is Options.At, or the newest stored event.
func (g *Gateway) replayBucket(ctx context.Context, cat *index.Catalog, name string) error {
	stream := StreamPrefix + name
	l := cat.Log(stream)
	if len(l.Conflicts) > 0 {
		return fmt.Errorf("overlapping log segments (two gateways wrote it): %s", l.Conflicts[0])
	}
	var lastPos uint64
	var lastTime int64
	if n, ok := l.Newest(); ok {
		lastPos, lastTime = n.Last, n.LastTime
	}
	var bases []index.SnapshotRef
	for _, s := range cat.Stream(stream) {
		if s.Position != nil {
			bases = append(bases, s)
			lastPos, lastTime = max(lastPos, *s.Position), max(lastTime, s.Time.UnixNano())
		}
	}
	if len(bases) > 0 && !g.ReadOnly() {
		newest := bases[0]
		for _, s := range bases[1:] {
			if *s.Position > *newest.Position {
				newest = s
			}
		}
		g.bases[name] = &newest
	}
	t := index.Target{ByPos: true, Position: lastPos}
	if g.ReadOnly() && g.o.At.UnixNano() < lastTime {
		t = index.Target{Time: g.o.At}
	}
	var planErr error
	if len(bases) > 0 {
		pl, err := cat.Plan(stream, t)
		if err == nil {
			return g.replayPlan(ctx, name, pl)
		}
		planErr = err
	}
	// No base serves: the whole log, when it still starts at position 1.
	if len(l.Segments) == 0 {
		return planErr
	}
	if first := l.Segments[0].First; first != 1 {
		if planErr == nil {
			planErr = fmt.Errorf("%w: the log starts at position %d and there is no base", index.ErrNotRestorable, first)
		}
		return planErr
	}
	return g.replaySegments(ctx, name, l.Segments, func(e *repo.Event) bool {
		return t.ByPos || e.Time <= t.Time.UnixNano()
	})
}

// replayPlan loads a plan's base into the table and applies the plan's
// events after it.
func (g *Gateway) replayPlan(ctx context.Context, name string, pl *index.Plan) error {
	b, err := g.loadBase(ctx, name, pl.Base)
	if err != nil {
		return err
	}
	g.buckets[name] = b
	g.pos[name] = b.seq
	g.lastT = max(g.lastT, b.time)
	return g.replaySegments(ctx, name, pl.Segments, func(e *repo.Event) bool { return pl.Applies(e.Seq, e.Time) })
}

// loadBase reads one base of bucket name.
func (g *Gateway) loadBase(ctx context.Context, name string, s index.SnapshotRef) (*bucketState, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		_, err := engine.Restore(ctx, g.r, s, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
	}()
	b, err := decodeBase(pr, name)
	pr.CloseWithError(errors.New("base read"))
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", s.ID.Short(), err)
	}
	if s.Position == nil || b.seq != *s.Position || b.time != s.Time.UnixNano() {
		return nil, fmt.Errorf("base %s: %w: its header (position %d) disagrees with its manifest", s.ID.Short(), ErrBadRecord, b.seq)
	}
	return b, nil
}

// replaySegments applies the events of segs (contiguous, in order) that
// want selects; positions must follow on without a gap.
func (g *Gateway) replaySegments(ctx context.Context, name string, segs []repo.SegmentKey, want func(*repo.Event) bool) error {
	var next uint64
	for i, k := range segs {
		if i > 0 && k.First != next {
			return fmt.Errorf("log gap before position %d", k.First)
		}
		next = k.Last + 1
		seg, err := g.r.LoadSegment(ctx, k)
		if err != nil {
			return err
		}
		err = engine.ReadSegment(ctx, g.r, k, seg, func(e *repo.Event) error {
			if !want(e) {
				return nil
			}
			if b := g.buckets[name]; b != nil && e.Seq <= b.seq {
				return fmt.Errorf("%w: event at position %d after position %d", ErrBadRecord, e.Seq, b.seq)
			}
			g.lastT = max(g.lastT, e.Time)
			return g.applyLocked(name, e)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// applyLocked applies one event to the key table; the caller holds g.mu
// (or is the only goroutine, during Open).
func (g *Gateway) applyLocked(bucket string, e *repo.Event) error {
	if g.pos != nil {
		g.pos[bucket] = max(g.pos[bucket], e.Seq)
	}
	if string(e.Key) == BucketKey {
		switch e.Op {
		case repo.OpPut:
			cfg, err := DecodeBucketRecord(e.Value)
			if err != nil {
				return err
			}
			b := g.buckets[bucket]
			if b != nil {
				b.cfg = *cfg
			} else {
				b = newBucketState(bucket, e.Time, *cfg)
				g.buckets[bucket] = b
			}
			b.seq, b.time = e.Seq, e.Time
		case repo.OpDelete:
			delete(g.buckets, bucket)
		default:
			return fmt.Errorf("%w: op %s", ErrBadRecord, e.Op)
		}
		return nil
	}
	b := g.buckets[bucket]
	if b == nil {
		return fmt.Errorf("%w: event for key %q before the bucket was created", ErrBadRecord, e.Key)
	}
	apply := b.apply
	if string(e.Key) == UploadKey {
		apply = b.applyUpload
	}
	if err := apply(e); err != nil {
		return err
	}
	b.seq, b.time = e.Seq, e.Time
	return nil
}

// commit appends one event to a bucket's log, waits until it is stored,
// then applies it to the key table. check, when not nil, runs under the
// table's lock just before the append and may refuse the event.
func (g *Gateway) commit(ctx context.Context, bucket string, op repo.EventOp, key string, value any, check func() error) (int64, uint64, error) {
	c := &commitItem{bucket: bucket, op: op, key: key, value: value, check: check}
	g.commitAll(ctx, []*commitItem{c})
	return c.t, c.seq, c.err
}

// commitItem is one event of a commitAll: what to append, and its outcome.
type commitItem struct {
	bucket, key string
	op          repo.EventOp
	value       any          // marshalled to the event's value after check; nil for none
	check       func() error // as commit's

	t          int64  // the event's time, once committed
	seq        uint64 // its position
	eventValue []byte // the marshalled value
	err        error
}

// commitAll appends the items' events in order, stores them with one flush
// per bucket log (a group commit: concurrent writers share the seal), and
// then applies those stored to the key table. Each item's err says whether
// it was committed. No two items may name the same bucket and key: each
// check sees the table as it was before the group.
func (g *Gateway) commitAll(ctx context.Context, items []*commitItem) {
	if g.ReadOnly() {
		for _, c := range items {
			c.err = ErrReadOnly
		}
		return
	}
	g.logMu.Lock()
	defer g.logMu.Unlock()
	var appended []*commitItem
	touched := map[string]bool{}
	for _, c := range items {
		if c.err = g.appendLocked(ctx, c); c.err == nil {
			appended = append(appended, c)
			touched[c.bucket] = true
		}
	}
	for bucket := range touched {
		w := g.logs[bucket]
		if err := w.Flush(); err != nil {
			// The writer is broken; a new one continues after what is stored.
			w.Close()
			delete(g.logs, bucket)
			// Whether the events were stored is unknown: the table may now
			// differ from the log, so no base may be written from it.
			g.mu.Lock()
			if b := g.buckets[bucket]; b != nil {
				b.diverged = true
			}
			g.mu.Unlock()
			for _, c := range appended {
				if c.bucket == bucket {
					c.err = fmt.Errorf("s3 gateway: store event: %w", err)
				}
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range appended {
		if c.err == nil {
			c.err = g.applyLocked(c.bucket, &repo.Event{Seq: c.seq, Time: c.t, Op: c.op, Key: []byte(c.key), Value: c.eventValue})
		}
	}
	g.kickBases(touched)
}

// appendLocked checks one item and appends its event to its bucket's log
// writer; the caller holds logMu.
func (g *Gateway) appendLocked(ctx context.Context, c *commitItem) error {
	if c.check != nil {
		g.mu.RLock()
		err := c.check()
		g.mu.RUnlock()
		if err != nil {
			return err
		}
	}
	// Marshalled after check, which may fill in the value (its version).
	var v []byte
	if c.value != nil {
		var err error
		if v, err = json.Marshal(c.value); err != nil {
			return err
		}
	}
	if len(v) > repo.MaxEventValue {
		return fmt.Errorf("s3 gateway: event of %d bytes exceeds the %d a log event holds", len(v), repo.MaxEventValue)
	}
	w := g.logs[c.bucket]
	if w == nil {
		var err error
		w, err = engine.OpenLog(context.WithoutCancel(ctx), g.r, engine.LogOptions{Stream: StreamPrefix + c.bucket})
		if err != nil {
			return err
		}
		g.logs[c.bucket] = w
	}
	t := max(g.o.Now().UnixNano(), g.lastT)
	seq := w.Next()
	if seq == 0 {
		// An empty log: a new bucket's (positions count from 1, FORMAT.md
		// §15), or one whose every segment forget removed after a base,
		// which continues after the position the table is at.
		g.mu.RLock()
		seq = g.pos[c.bucket] + 1
		g.mu.RUnlock()
	}
	if err := w.Append(&repo.Event{Seq: seq, Time: t, Op: c.op, Key: []byte(c.key), Value: v}); err != nil {
		return err
	}
	g.lastT = t
	c.t, c.seq, c.eventValue = t, seq, v
	return nil
}

// newVersionID returns a new version ID: the unix time in nanoseconds in
// 16 hex digits, so versions of a key sort by age. The caller holds logMu.
func (g *Gateway) newVersionID() string {
	return fmt.Sprintf("%016x", uint64(max(g.o.Now().UnixNano(), g.lastT+1)))
}

// ValidBucketName checks S3's bucket naming rules (3 to 63 of [a-z0-9.-],
// starting and ending with a letter or digit).
func ValidBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return ErrInvalidBucket
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return ErrInvalidBucket
		}
	}
	if name[0] == '.' || name[0] == '-' || name[len(name)-1] == '.' || name[len(name)-1] == '-' || strings.Contains(name, "..") {
		return ErrInvalidBucket
	}
	return repo.ValidStream(StreamPrefix + name)
}

// ValidKey checks an object key: 1 to 1024 bytes of valid UTF-8 without NUL.
func ValidKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen || strings.IndexByte(key, 0) >= 0 || !validUTF8(key) {
		return ErrInvalidKey
	}
	return nil
}

// BucketInfo describes one bucket.
type BucketInfo struct {
	Name    string
	Created time.Time
	Config  BucketRecord
}

// Buckets lists the buckets by name.
func (g *Gateway) Buckets() []BucketInfo {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]BucketInfo, 0, len(g.buckets))
	for _, b := range g.buckets {
		out = append(out, BucketInfo{Name: b.name, Created: time.Unix(0, b.created).UTC(), Config: b.cfg})
	}
	slices.SortFunc(out, func(a, b BucketInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Bucket returns one bucket's description.
func (g *Gateway) Bucket(name string) (BucketInfo, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	b := g.buckets[name]
	if b == nil {
		return BucketInfo{}, ErrNoSuchBucket
	}
	return BucketInfo{Name: b.name, Created: time.Unix(0, b.created).UTC(), Config: b.cfg}, nil
}

// CreateBucket creates a bucket; with objectLock (an ObjectLockConfiguration
// document, possibly empty) versioning is enabled too, as S3 does.
func (g *Gateway) CreateBucket(ctx context.Context, name, owner string, objectLock []byte) error {
	if err := ValidBucketName(name); err != nil {
		return err
	}
	rec := BucketRecord{Owner: owner}
	if objectLock != nil {
		rec.Versioning = "Enabled"
		rec.ObjectLock = objectLock
	}
	_, _, err := g.commit(ctx, name, repo.OpPut, BucketKey, rec, func() error {
		if g.buckets[name] != nil {
			return ErrBucketExists
		}
		return nil
	})
	return err
}

// SetBucketConfig replaces a bucket's settings (versioning, object lock).
func (g *Gateway) SetBucketConfig(ctx context.Context, name string, update func(*BucketRecord) error) error {
	var rec BucketRecord
	_, _, err := g.commit(ctx, name, repo.OpPut, BucketKey, &rec, func() error {
		b := g.buckets[name]
		if b == nil {
			return ErrNoSuchBucket
		}
		rec = b.cfg
		return update(&rec)
	})
	return err
}

// DeleteBucket removes an empty bucket. Its log stays in the repository, so
// point-in-time views before the deletion still show it.
func (g *Gateway) DeleteBucket(ctx context.Context, name string) error {
	_, _, err := g.commit(ctx, name, repo.OpDelete, BucketKey, nil, func() error {
		b := g.buckets[name]
		if b == nil {
			return ErrNoSuchBucket
		}
		if !b.empty() {
			return ErrBucketNotEmpty
		}
		return nil
	})
	return err
}

// ObjectInfo describes one version of an object.
type ObjectInfo struct {
	Key          string
	VersionID    string
	Modified     time.Time
	DeleteMarker bool
	IsLatest     bool
	Record       *ObjectRecord // nil for a delete marker
}

func info(key string, v *version, latest bool) ObjectInfo {
	return ObjectInfo{Key: key, VersionID: v.id, Modified: time.Unix(0, v.time).UTC(), DeleteMarker: v.marker, IsLatest: latest, Record: v.obj}
}

// Stat returns an object's version (the latest when versionID is empty).
// A latest version that is a delete marker is ErrNoSuchKey, with the
// marker's info.
func (g *Gateway) Stat(bucket, key, versionID string) (ObjectInfo, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	b := g.buckets[bucket]
	if b == nil {
		return ObjectInfo{}, ErrNoSuchBucket
	}
	if versionID == "" {
		v := b.latest(key)
		if v == nil {
			return ObjectInfo{}, ErrNoSuchKey
		}
		if v.marker {
			return info(key, v, true), ErrNoSuchKey
		}
		return info(key, v, true), nil
	}
	v := b.find(key, versionID)
	if v == nil {
		return ObjectInfo{}, ErrNoSuchVersion
	}
	return info(key, v, v == b.latest(key)), nil
}

// PutOptions describe one object write.
type PutOptions struct {
	ContentType string
	Meta        map[string]string
	Checksums   map[string]string
	ContentMD5  []byte // when set, the content's MD5 must match (ErrBadDigest)
	IfNoneMatch bool   // If-None-Match: *: refuse when the key exists (ErrPreconditionFail)
	Retention   *Retention
	LegalHold   bool
}

// format picks how a key's content is chunked: record-aligned for NDJSON
// (as `backup --format ndjson`), Rabin otherwise.
func format(key, contentType string) string {
	k := strings.ToLower(key)
	ct := strings.ToLower(contentType)
	if strings.HasSuffix(k, ".ndjson") || strings.HasSuffix(k, ".jsonl") || strings.HasSuffix(k, ".ndjson.part") ||
		strings.Contains(ct, "ndjson") || strings.Contains(ct, "jsonl") || strings.Contains(ct, "json-seq") {
		return engine.FormatNDJSON
	}
	return engine.FormatRaw
}

// storePart chunks and stores src, returning its part, MD5 and size.
func (g *Gateway) storePart(ctx context.Context, key, contentType string, src io.Reader) (Part, []byte, error) {
	h := md5.New()
	var c engine.Content
	err := g.storeContent(ctx, func(known engine.KnownSet) (*repo.IndexFile, error) {
		var err error
		c, err = engine.StoreContent(ctx, g.r, io.TeeReader(src, h), engine.BackupOptions{Format: format(key, contentType)}, known)
		return &c.Index, err
	})
	if err != nil {
		return Part{}, nil, err
	}
	return Part{Size: c.Size, Tree: c.Tree}, h.Sum(nil), nil
}

// storeContent runs one content store (store, which returns the index
// file of the blobs it wrote) in one of the gateway's content slots,
// deduplicating against the blobs published so far, and publishes its new
// blobs to later stores and readers once store has returned, that is once
// they are durable.
func (g *Gateway) storeContent(ctx context.Context, store func(engine.KnownSet) (*repo.IndexFile, error)) error {
	select {
	case g.contentSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.contentSlots }()
	stored, err := store(&overlaySet{base: g.known, local: index.NewIDSet(1024)})
	if err != nil {
		return err
	}
	g.loc.add(stored)
	g.known.publish(stored)
	return nil
}

// Put stores an object from src and records it as a new version (or the
// null version of an unversioned bucket). Nothing is visible unless the
// whole body was read and verified.
func (g *Gateway) Put(ctx context.Context, bucket, key string, src io.Reader, o PutOptions) (ObjectInfo, error) {
	if g.ReadOnly() {
		return ObjectInfo{}, ErrReadOnly
	}
	if err := ValidKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if _, err := g.Bucket(bucket); err != nil {
		return ObjectInfo{}, err
	}
	info, rest, handled, err := g.putSmall(ctx, bucket, key, src, o)
	if handled {
		return info, err
	}
	part, sum, err := g.storePart(ctx, key, o.ContentType, rest)
	if err != nil {
		return ObjectInfo{}, err
	}
	if o.ContentMD5 != nil && string(o.ContentMD5) != string(sum) {
		return ObjectInfo{}, ErrBadDigest
	}
	rec := &ObjectRecord{Size: part.Size, ETag: hex.EncodeToString(sum), ContentType: o.ContentType,
		Meta: o.Meta, Checksums: o.Checksums, Parts: []Part{part}, Retention: o.Retention, LegalHold: o.LegalHold}
	return g.commitObject(ctx, bucket, key, rec, o.IfNoneMatch)
}

// commitObject records rec as the newest version of key.
func (g *Gateway) commitObject(ctx context.Context, bucket, key string, rec *ObjectRecord, ifNoneMatch bool) (ObjectInfo, error) {
	c := g.objectItem(bucket, key, rec, ifNoneMatch)
	g.commitAll(ctx, []*commitItem{c})
	return c.objectInfo(rec)
}

// objectInfo describes the version an objectItem committed.
func (c *commitItem) objectInfo(rec *ObjectRecord) (ObjectInfo, error) {
	if c.err != nil {
		return ObjectInfo{}, c.err
	}
	return ObjectInfo{Key: c.key, VersionID: rec.Version, Modified: time.Unix(0, c.t).UTC(), IsLatest: true, Record: rec}, nil
}

// objectItem is the event that records rec as the newest version of key,
// with the checks S3 makes first (bucket, If-None-Match, locks) and the
// version and default retention filled in by them.
func (g *Gateway) objectItem(bucket, key string, rec *ObjectRecord, ifNoneMatch bool) *commitItem {
	return &commitItem{bucket: bucket, op: repo.OpPut, key: key, value: rec, check: func() error {
		b := g.buckets[bucket]
		if b == nil {
			return ErrNoSuchBucket
		}
		if ifNoneMatch {
			if v := b.latest(key); v != nil && !v.marker {
				return ErrPreconditionFail
			}
		}
		rec.Version = NullVersion
		if b.cfg.Versioning == "Enabled" {
			rec.Version = g.newVersionID()
		} else if v := b.find(key, NullVersion); v != nil && locked(v, g.o.Now()) {
			return ErrLocked
		}
		if rec.Retention == nil && len(b.cfg.ObjectLock) > 0 {
			rec.Retention = defaultRetention(b.cfg.ObjectLock, g.o.Now())
		}
		return nil
	}}
}

// Delete deletes a key (a delete marker when versioning is enabled) or,
// with versionID, removes that version for good unless it is locked.
// bypassGovernance lets a GOVERNANCE retention be overridden. It returns
// the version ID created or removed and whether it is a delete marker.
func (g *Gateway) Delete(ctx context.Context, bucket, key, versionID string, bypassGovernance bool) (string, bool, error) {
	var rec ObjectRecord
	var skip bool
	_, _, err := g.commit(ctx, bucket, repo.OpPut, key, &rec, func() error {
		b := g.buckets[bucket]
		if b == nil {
			return ErrNoSuchBucket
		}
		switch {
		case versionID != "":
			v := b.find(key, versionID)
			if v == nil {
				skip = true // S3 answers 204 for a version that is not there
				return errSkip
			}
			if locked(v, g.o.Now()) && !(bypassGovernance && v.obj.Retention != nil && v.obj.Retention.Mode == "GOVERNANCE" && !v.obj.LegalHold) {
				return ErrLocked
			}
			rec = ObjectRecord{Version: versionID, Remove: true}
		case b.cfg.Versioning == "Enabled":
			rec = ObjectRecord{Version: g.newVersionID(), DeleteMarker: true}
		case b.cfg.Versioning == "Suspended":
			if v := b.find(key, NullVersion); v != nil && locked(v, g.o.Now()) {
				return ErrLocked
			}
			rec = ObjectRecord{Version: NullVersion, DeleteMarker: true}
		default:
			if b.latest(key) == nil {
				skip = true
				return errSkip
			}
			if v := b.find(key, NullVersion); v != nil && locked(v, g.o.Now()) {
				return ErrLocked
			}
			rec = ObjectRecord{Version: NullVersion, Remove: true}
		}
		return nil
	})
	if skip {
		return versionID, false, nil
	}
	if err != nil {
		return "", false, err
	}
	return rec.Version, rec.DeleteMarker, nil
}

var errSkip = errors.New("nothing to do")

// locked reports whether a version may not be removed now.
func locked(v *version, now time.Time) bool {
	if v.obj == nil {
		return false
	}
	return v.obj.LegalHold || v.obj.Retention != nil && v.obj.Retention.Until > now.UnixNano()
}

// Read returns a reader of bytes [off, off+n) of an object version's content.
func (g *Gateway) Read(ctx context.Context, rec *ObjectRecord, off, n int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(g.readTo(ctx, rec, off, n, pw))
	}()
	return pr
}

func (g *Gateway) readTo(ctx context.Context, rec *ObjectRecord, off, n int64, w io.Writer) error {
	if n < 0 {
		n = rec.Size - off
	}
	var pos int64
	for _, p := range rec.Parts {
		if n <= 0 {
			break
		}
		if pos+p.Size <= off {
			pos += p.Size
			continue
		}
		lo := max(off-pos, 0)
		m := min(p.Size-lo, n)
		got, err := engine.ReadContent(ctx, g.r, g.loc, p.Tree, lo, m, w)
		if err != nil {
			return err
		}
		if got != m {
			return fmt.Errorf("s3 gateway: part holds %d bytes, expected %d", got, m)
		}
		off += m
		n -= m
		pos += p.Size
	}
	return nil
}
