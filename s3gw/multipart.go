package s3gw

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strata-backup/strata/repo"
)

// Multipart errors, as S3 names them.
var (
	ErrNoSuchUpload     = errors.New("no such upload")
	ErrInvalidPart      = errors.New("invalid part")
	ErrInvalidPartOrder = errors.New("invalid part order")
	ErrEntityTooSmall   = errors.New("part too small")
	ErrInvalidPartNum   = errors.New("part number out of range")
)

// Multipart limits S3 enforces.
const (
	MaxParts    = 10000
	MinPartSize = 5 << 20
)

// UploadGrace is how long an upload may stay incomplete before it is
// dropped; its stored parts are then unreferenced and prune frees them.
const UploadGrace = 24 * time.Hour

// UploadKey is the event key of upload events (FORMAT.md §22.1): a single
// NUL byte, which no object key holds.
const UploadKey = "\x00"

// UploadRecord is the value of an upload event: an upload's creation (Key
// set), one stored part (Part set), or its end (End: completed or
// aborted). Recording them makes uploads in progress survive a restart,
// and keeps their parts reachable for prune while they are in the log or
// a base.
type UploadRecord struct {
	Upload string `json:"upload"` // the upload ID: 32 lowercase hex digits
	// Creation.
	Key         string            `json:"key,omitempty"`
	Started     int64             `json:"started,omitempty"` // unix ns
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Retention   *Retention        `json:"retention,omitempty"`
	LegalHold   bool              `json:"legal_hold,omitempty"`
	IfNoneMatch bool              `json:"if_none_match,omitempty"`
	// A part.
	Part int        `json:"part,omitempty"`
	Size int64      `json:"size,omitempty"`
	ETag string     `json:"etag,omitempty"` // hex MD5 of the part
	Tree *repo.Tree `json:"tree,omitempty"`
	// The end.
	End bool `json:"end,omitempty"`
}

// DecodeUploadRecord decodes and checks an upload event's value: exactly
// one of creation, part and end, with their fields in range.
func DecodeUploadRecord(b []byte) (*UploadRecord, error) {
	var u UploadRecord
	if err := decodeStrict(b, &u); err != nil {
		return nil, err
	}
	if len(u.Upload) != 32 || strings.Trim(u.Upload, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: upload ID %q", ErrBadRecord, u.Upload)
	}
	create := u.Key != "" || u.Started != 0 || u.ContentType != "" || u.Meta != nil || u.Retention != nil || u.LegalHold || u.IfNoneMatch
	part := u.Part != 0 || u.Size != 0 || u.ETag != "" || u.Tree != nil
	switch {
	case create && !part && !u.End:
		if ValidKey(u.Key) != nil || u.Started <= 0 {
			return nil, fmt.Errorf("%w: upload creation: key or start", ErrBadRecord)
		}
	case part && !create && !u.End:
		if u.Part < 1 || u.Part > MaxParts || u.Size < 0 || u.Tree == nil || u.Tree.Height < 0 || u.Tree.Height > repo.MaxTreeHeight ||
			len(u.ETag) != 32 || strings.Trim(u.ETag, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%w: upload part out of range", ErrBadRecord)
		}
	case u.End && !create && !part:
	default:
		return nil, fmt.Errorf("%w: an upload record must be one of creation, part and end", ErrBadRecord)
	}
	return &u, nil
}

// upload is one multipart upload in progress, in its bucket's table. Its
// fields change only as events apply, under the gateway's lock.
type upload struct {
	id, key string
	started time.Time
	opts    PutOptions
	parts   map[int]uploadedPart
}

type uploadedPart struct {
	part     Part
	etag     string // hex MD5 of the part
	modified time.Time
}

// applyUpload applies an upload event to the bucket's uploads. A part or
// end of an upload the table does not hold (one that expired) is ignored.
func (b *bucketState) applyUpload(e *repo.Event) error {
	if e.Op != repo.OpPut {
		return fmt.Errorf("%w: op %s on the upload key", ErrBadRecord, e.Op)
	}
	u, err := DecodeUploadRecord(e.Value)
	if err != nil {
		return err
	}
	b.applyUploadRecord(u, e.Time)
	return nil
}

func (b *bucketState) applyUploadRecord(u *UploadRecord, t int64) {
	switch {
	case u.End:
		delete(b.uploads, u.Upload)
	case u.Part > 0:
		if up := b.uploads[u.Upload]; up != nil {
			up.parts[u.Part] = uploadedPart{part: Part{Size: u.Size, Tree: *u.Tree}, etag: u.ETag, modified: time.Unix(0, t).UTC()}
		}
	default:
		b.uploads[u.Upload] = &upload{id: u.Upload, key: u.Key, started: time.Unix(0, u.Started).UTC(),
			opts:  PutOptions{ContentType: u.ContentType, Meta: u.Meta, Retention: u.Retention, LegalHold: u.LegalHold, IfNoneMatch: u.IfNoneMatch},
			parts: map[int]uploadedPart{}}
	}
}

// uploadRecords returns the records that rebuild the bucket's uploads, by
// upload ID, each creation before its parts (ascending), for a base.
func (b *bucketState) uploadRecords() []*UploadRecord {
	var out []*UploadRecord
	for _, id := range slices.Sorted(maps.Keys(b.uploads)) {
		u := b.uploads[id]
		out = append(out, &UploadRecord{Upload: id, Key: u.key, Started: u.started.UnixNano(), ContentType: u.opts.ContentType,
			Meta: u.opts.Meta, Retention: u.opts.Retention, LegalHold: u.opts.LegalHold, IfNoneMatch: u.opts.IfNoneMatch})
		for _, n := range slices.Sorted(maps.Keys(u.parts)) {
			p := u.parts[n]
			tree := p.part.Tree
			out = append(out, &UploadRecord{Upload: id, Part: n, Size: p.part.Size, ETag: p.etag, Tree: &tree})
		}
	}
	return out
}

// UploadInfo describes an upload in progress.
type UploadInfo struct {
	ID, Bucket, Key string
	Started         time.Time
}

// PartInfo describes an uploaded part.
type PartInfo struct {
	Number   int
	ETag     string
	Size     int64
	Modified time.Time
}

// CreateUpload starts a multipart upload and returns its ID. The upload
// is an event of the bucket's log, so it survives a restart.
func (g *Gateway) CreateUpload(bucket, key string, o PutOptions) (string, error) {
	if g.ReadOnly() {
		return "", ErrReadOnly
	}
	if err := ValidKey(key); err != nil {
		return "", err
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	rec := &UploadRecord{Upload: id, Key: key, Started: g.o.Now().UnixNano(), ContentType: o.ContentType, Meta: o.Meta,
		Retention: o.Retention, LegalHold: o.LegalHold, IfNoneMatch: o.IfNoneMatch}
	_, _, err := g.commit(context.Background(), bucket, repo.OpPut, UploadKey, rec, func() error {
		if g.buckets[bucket] == nil {
			return ErrNoSuchBucket
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// expired reports whether an upload is past UploadGrace: it is then
// treated as gone, and its parts are no longer kept once its events leave
// the log and no base names it.
func (g *Gateway) expired(u *upload) bool { return g.o.Now().Sub(u.started) > UploadGrace }

// upload finds an upload in progress; the caller holds g.mu.
func (g *Gateway) uploadLocked(bucket, key, id string) (*upload, error) {
	b := g.buckets[bucket]
	if b == nil {
		return nil, ErrNoSuchUpload
	}
	u := b.uploads[id]
	if u == nil || u.key != key || g.expired(u) {
		return nil, ErrNoSuchUpload
	}
	return u, nil
}

func (g *Gateway) upload(bucket, key, id string) (*upload, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.uploadLocked(bucket, key, id)
}

// UploadPart stores part n (1 to 10000) of an upload and returns its ETag
// (hex MD5). contentMD5, when set, must match.
func (g *Gateway) UploadPart(ctx context.Context, bucket, key, id string, n int, src io.Reader, contentMD5 []byte) (string, error) {
	if n < 1 || n > MaxParts {
		return "", ErrInvalidPartNum
	}
	u, err := g.upload(bucket, key, id)
	if err != nil {
		return "", err
	}
	p, sum, err := g.storePart(ctx, key, u.opts.ContentType, src)
	if err != nil {
		return "", err
	}
	if contentMD5 != nil && string(contentMD5) != string(sum) {
		return "", ErrBadDigest
	}
	etag := hex.EncodeToString(sum)
	rec := &UploadRecord{Upload: id, Part: n, Size: p.Size, ETag: etag, Tree: &p.Tree}
	_, _, err = g.commit(ctx, bucket, repo.OpPut, UploadKey, rec, func() error {
		if _, err := g.uploadLocked(bucket, key, u.id); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return etag, nil
}

// CompletePart names one part in a CompleteMultipartUpload request.
type CompletePart struct {
	Number int
	ETag   string // quotes allowed
}

// CompleteUpload assembles the named parts (ascending, each uploaded,
// every one but the last at least 5 MiB) into one object version with the
// S3 multipart ETag, and ends the upload.
func (g *Gateway) CompleteUpload(ctx context.Context, bucket, key, id string, parts []CompletePart) (ObjectInfo, error) {
	u, err := g.upload(bucket, key, id)
	if err != nil {
		return ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return ObjectInfo{}, ErrInvalidPart
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			return ObjectInfo{}, ErrInvalidPartOrder
		}
	}
	g.mu.RLock()
	rec := &ObjectRecord{ContentType: u.opts.ContentType, Meta: u.opts.Meta, Retention: u.opts.Retention, LegalHold: u.opts.LegalHold}
	h := md5.New()
	for i, cp := range parts {
		up, ok := u.parts[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != up.etag {
			g.mu.RUnlock()
			return ObjectInfo{}, ErrInvalidPart
		}
		if i < len(parts)-1 && up.part.Size < MinPartSize {
			g.mu.RUnlock()
			return ObjectInfo{}, ErrEntityTooSmall
		}
		sum, _ := hex.DecodeString(up.etag)
		h.Write(sum)
		rec.Parts = append(rec.Parts, up.part)
		rec.PartSizes = append(rec.PartSizes, up.part.Size)
		rec.Size += up.part.Size
	}
	g.mu.RUnlock()
	rec.ETag = fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts))
	// The object and the upload's end are one group: the end is logged
	// only when the object is, and the object only while the upload is on.
	obj := g.objectItem(bucket, key, rec, u.opts.IfNoneMatch)
	check := obj.check
	obj.check = func() error {
		if _, err := g.uploadLocked(bucket, key, id); err != nil {
			return err
		}
		return check()
	}
	end := &commitItem{bucket: bucket, op: repo.OpPut, key: UploadKey, value: &UploadRecord{Upload: id, End: true}, check: func() error {
		if obj.err != nil {
			return errSkip
		}
		return nil
	}}
	g.commitAll(ctx, []*commitItem{obj, end})
	return obj.objectInfo(rec)
}

// AbortUpload ends an upload; its parts stay referenced only while its
// events are in the log.
func (g *Gateway) AbortUpload(bucket, key, id string) error {
	if g.ReadOnly() {
		return ErrReadOnly
	}
	_, _, err := g.commit(context.Background(), bucket, repo.OpPut, UploadKey, &UploadRecord{Upload: id, End: true}, func() error {
		_, err := g.uploadLocked(bucket, key, id)
		return err
	})
	return err
}

// ListParts lists an upload's parts by number.
func (g *Gateway) ListParts(bucket, key, id string) ([]PartInfo, error) {
	u, err := g.upload(bucket, key, id)
	if err != nil {
		return nil, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]PartInfo, 0, len(u.parts))
	for n, p := range u.parts {
		out = append(out, PartInfo{Number: n, ETag: p.etag, Size: p.part.Size, Modified: p.modified})
	}
	slices.SortFunc(out, func(a, b PartInfo) int { return a.Number - b.Number })
	return out, nil
}

// ListUploads lists a bucket's uploads in progress by key, then start time
// (then ID, so pages are stable).
func (g *Gateway) ListUploads(bucket, prefix string) ([]UploadInfo, error) {
	if _, err := g.Bucket(bucket); err != nil {
		return nil, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []UploadInfo
	if b := g.buckets[bucket]; b != nil {
		for _, u := range b.uploads {
			if strings.HasPrefix(u.key, prefix) && !g.expired(u) {
				out = append(out, UploadInfo{ID: u.id, Bucket: bucket, Key: u.key, Started: u.started})
			}
		}
	}
	slices.SortFunc(out, func(a, b UploadInfo) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
