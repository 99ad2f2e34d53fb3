package s3gw

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/btree"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// StreamPrefix starts the stream name of every bucket: bucket B is stream
// StreamPrefix+B.
const StreamPrefix = "s3/"

// BucketKey is the event key of bucket-level events. S3 object keys are at
// least one byte long, so it names no object.
const BucketKey = ""

// MaxKeyLen is the longest object key S3 accepts, in bytes.
const MaxKeyLen = 1024

// NullVersion is the version ID of objects written while a bucket's
// versioning is not enabled (S3's "null" version).
const NullVersion = "null"

// Part is one stored run of an object's content: its size and the blob
// tree it is chunked into. An object's content is its parts in order.
type Part struct {
	Size int64     `json:"size"`
	Tree repo.Tree `json:"tree"`
}

// Retention is an object-lock retention on one object version.
type Retention struct {
	Mode  string `json:"mode"`  // GOVERNANCE or COMPLIANCE
	Until int64  `json:"until"` // unix nanoseconds
}

// ObjectRecord is the value of an object PUT event (FORMAT.md, "S3 gateway
// events"): one version of one key.
type ObjectRecord struct {
	Version     string            `json:"version"`
	Size        int64             `json:"size,omitempty"`
	ETag        string            `json:"etag,omitempty"` // without quotes
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Checksums   map[string]string `json:"checksums,omitempty"`
	Parts       []Part            `json:"parts,omitempty"`
	PartSizes   []int64           `json:"part_sizes,omitempty"` // sizes of the client's multipart parts, for GetObject partNumber
	Retention   *Retention        `json:"retention,omitempty"`
	LegalHold   bool              `json:"legal_hold,omitempty"`
	// DeleteMarker: this version is a delete marker (no content).
	DeleteMarker bool `json:"delete_marker,omitempty"`
	// Remove: version Version is removed for good (no content). Log
	// delete events carry no value, so removals are put events too.
	Remove bool `json:"remove,omitempty"`
}

// BucketRecord is the value of a bucket PUT event (key BucketKey): the
// bucket's settings from that event on. A bucket DELETE event has no value.
type BucketRecord struct {
	Versioning string `json:"versioning,omitempty"`  // "", Enabled or Suspended
	ObjectLock []byte `json:"object_lock,omitempty"` // versitygw's JSON BucketLockConfig, when lock is on
	Owner      string `json:"owner,omitempty"`       // the access key ID that created it
}

// ErrBadRecord is returned for an event value that does not decode.
var ErrBadRecord = errors.New("s3 gateway: bad event record")

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if d.More() {
		return fmt.Errorf("%w: trailing data", ErrBadRecord)
	}
	return nil
}

// DecodeObjectRecord decodes and checks an object PUT event's value.
func DecodeObjectRecord(b []byte) (*ObjectRecord, error) {
	var o ObjectRecord
	if err := decodeStrict(b, &o); err != nil {
		return nil, err
	}
	if o.Version == "" {
		return nil, fmt.Errorf("%w: no version", ErrBadRecord)
	}
	var sum int64
	for _, p := range o.Parts {
		if p.Size < 0 || p.Tree.Height < 0 || p.Tree.Height > repo.MaxTreeHeight {
			return nil, fmt.Errorf("%w: bad part", ErrBadRecord)
		}
		sum += p.Size
	}
	if (o.DeleteMarker || o.Remove) && (len(o.Parts) > 0 || o.DeleteMarker && o.Remove) {
		return nil, fmt.Errorf("%w: a delete carries content", ErrBadRecord)
	}
	if sum != o.Size || o.Size < 0 {
		return nil, fmt.Errorf("%w: parts add up to %d, size is %d", ErrBadRecord, sum, o.Size)
	}
	return &o, nil
}

// DecodeBucketRecord decodes a bucket PUT event's value.
func DecodeBucketRecord(b []byte) (*BucketRecord, error) {
	var r BucketRecord
	if err := decodeStrict(b, &r); err != nil {
		return nil, err
	}
	switch r.Versioning {
	case "", "Enabled", "Suspended":
	default:
		return nil, fmt.Errorf("%w: versioning %q", ErrBadRecord, r.Versioning)
	}
	return &r, nil
}

// version is one entry of a key's history in the key table.
type version struct {
	id     string
	time   int64 // event time, unix ns: the version's Last-Modified
	seq    uint64
	marker bool
	obj    *ObjectRecord // nil for a delete marker
}

// bucketState is one bucket of the key table.
type bucketState struct {
	name    string
	created int64
	cfg     BucketRecord
	// keys holds every key with its versions, in byte order, so a listing
	// page costs a seek and its own keys, whatever the bucket holds. Its
	// entries are values, replaced on every change and never modified in
	// place, so a Clone (O(1), copy on write) is a consistent copy that a
	// base is written from while writes continue (base.go).
	keys *btree.BTreeG[keyEntry]
	// seq and time are the position and time of the last event applied:
	// the table is the log through seq.
	seq  uint64
	time int64
	// diverged: a log flush failed, so whether its events were stored is
	// unknown and the table may differ from the log; no base is written
	// from it (a restart rebuilds it from the repository).
	diverged bool
	// basePos is the position of the newest base the gateway knows.
	basePos uint64
	// uploads are the multipart uploads in progress, by ID (multipart.go).
	uploads map[string]*upload
}

// keyEntry is one key of a bucket with its versions, oldest first. The
// slice is never written below its length once the entry is in a table.
type keyEntry struct {
	key string
	vs  []*version
}

func keyLess(a, b keyEntry) bool { return a.key < b.key }

func newBucketState(name string, t int64, cfg BucketRecord) *bucketState {
	return &bucketState{name: name, created: t, cfg: cfg, keys: btree.NewG[keyEntry](32, keyLess), uploads: map[string]*upload{}}
}

// versions returns a key's versions, oldest first; nil when it has none.
func (b *bucketState) versions(key string) []*version {
	e, _ := b.keys.Get(keyEntry{key: key})
	return e.vs
}

// apply applies one event of the bucket's log to the table. Buckets are
// created and removed by the caller (bucket events need the table).
func (b *bucketState) apply(e *repo.Event) error {
	key := string(e.Key)
	if e.Op != repo.OpPut {
		return fmt.Errorf("%w: op %s on an object key", ErrBadRecord, e.Op)
	}
	o, err := DecodeObjectRecord(e.Value)
	if err != nil {
		return err
	}
	switch {
	case o.Remove:
		vs := b.versions(key)
		for i, v := range vs {
			if v.id == o.Version {
				vs = append(vs[:i:i], vs[i+1:]...)
				break
			}
		}
		if len(vs) == 0 {
			b.keys.Delete(keyEntry{key: key})
		} else {
			b.keys.ReplaceOrInsert(keyEntry{key, vs})
		}
	case o.DeleteMarker:
		b.addVersion(key, &version{id: o.Version, time: e.Time, seq: e.Seq, marker: true})
	default:
		b.addVersion(key, &version{id: o.Version, time: e.Time, seq: e.Seq, obj: o})
	}
	return nil
}

// addVersion appends v; a version with the same ID (the null version of an
// unversioned bucket) is replaced.
func (b *bucketState) addVersion(key string, v *version) {
	vs := b.versions(key)
	for i, old := range vs {
		if old.id == v.id {
			vs = append(vs[:i:i], vs[i+1:]...)
			break
		}
	}
	b.keys.ReplaceOrInsert(keyEntry{key, append(vs, v)})
}

// latest returns a key's newest version, or nil.
func (b *bucketState) latest(key string) *version {
	return newest(b.versions(key))
}

func newest(vs []*version) *version {
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// find returns a key's version by ID, or nil.
func (b *bucketState) find(key, id string) *version {
	for _, v := range b.versions(key) {
		if v.id == id {
			return v
		}
	}
	return nil
}

// scan calls fn on the keys from the first ≥ from, in byte order, with
// their versions, while fn reports more. A non-empty skip continues at the
// first key ≥ skip instead of the next one (a listing jumps over a common
// prefix's keys). Callers hold the table's lock, read or write.
func (b *bucketState) scan(from string, fn func(k string, vs []*version) (skip string, more bool)) {
	for {
		restart, stopped := "", false
		b.keys.AscendGreaterOrEqual(keyEntry{key: from}, func(e keyEntry) bool {
			skip, more := fn(e.key, e.vs)
			switch {
			case !more:
				stopped = true
				return false
			case skip != "":
				restart = skip
				return false
			}
			return true
		})
		if stopped || restart == "" {
			return
		}
		from = restart
	}
}

// empty reports whether the bucket holds no version at all (S3 refuses to
// delete a bucket that still has versions or delete markers).
func (b *bucketState) empty() bool { return b.keys.Len() == 0 }

func init() { engine.RegisterEventTrees(StreamPrefix, EventTrees) }

// EventTrees returns the blob trees an event of a bucket's log references
// (the parts of an object version, or an upload's stored part), so prune
// keeps them.
func EventTrees(e *repo.Event) ([]repo.Tree, error) {
	if string(e.Key) == BucketKey || e.Op != repo.OpPut {
		return nil, nil
	}
	if string(e.Key) == UploadKey {
		u, err := DecodeUploadRecord(e.Value)
		if err != nil || u.Tree == nil {
			return nil, err
		}
		return []repo.Tree{*u.Tree}, nil
	}
	o, err := DecodeObjectRecord(e.Value)
	if err != nil {
		return nil, err
	}
	trees := make([]repo.Tree, len(o.Parts))
	for i, p := range o.Parts {
		trees[i] = p.Tree
	}
	return trees, nil
}
