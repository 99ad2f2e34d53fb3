package s3gw

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
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

// upload is one multipart upload in progress. Uploads live in the
// gateway's memory: parts are stored (deduplicated) as they arrive, but
// only a completed upload is an event, so a restart abandons uploads in
// progress and clients start them again.
type upload struct {
	id, bucket, key string
	started         time.Time
	opts            PutOptions
	mu              sync.Mutex
	parts           map[int]uploadedPart
}

type uploadedPart struct {
	part     Part
	etag     string // hex MD5 of the part
	modified time.Time
}

type uploads struct {
	mu sync.Mutex
	m  map[string]*upload
}

func newUploads() *uploads { return &uploads{m: map[string]*upload{}} }

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

// CreateUpload starts a multipart upload and returns its ID.
func (g *Gateway) CreateUpload(bucket, key string, o PutOptions) (string, error) {
	if g.ReadOnly() {
		return "", ErrReadOnly
	}
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if _, err := g.Bucket(bucket); err != nil {
		return "", err
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	g.uploads.mu.Lock()
	defer g.uploads.mu.Unlock()
	g.expireLocked()
	g.uploads.m[id] = &upload{id: id, bucket: bucket, key: key, started: g.o.Now(), opts: o, parts: map[int]uploadedPart{}}
	return id, nil
}

// expireLocked drops uploads older than UploadGrace.
func (g *Gateway) expireLocked() {
	now := g.o.Now()
	for id, u := range g.uploads.m {
		if now.Sub(u.started) > UploadGrace {
			delete(g.uploads.m, id)
		}
	}
}

func (g *Gateway) upload(bucket, key, id string) (*upload, error) {
	g.uploads.mu.Lock()
	defer g.uploads.mu.Unlock()
	u := g.uploads.m[id]
	if u == nil || u.bucket != bucket || u.key != key {
		return nil, ErrNoSuchUpload
	}
	return u, nil
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
	u.mu.Lock()
	u.parts[n] = uploadedPart{part: p, etag: etag, modified: g.o.Now()}
	u.mu.Unlock()
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
	u.mu.Lock()
	rec := &ObjectRecord{ContentType: u.opts.ContentType, Meta: u.opts.Meta, Retention: u.opts.Retention, LegalHold: u.opts.LegalHold}
	h := md5.New()
	for i, cp := range parts {
		up, ok := u.parts[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != up.etag {
			u.mu.Unlock()
			return ObjectInfo{}, ErrInvalidPart
		}
		if i < len(parts)-1 && up.part.Size < MinPartSize {
			u.mu.Unlock()
			return ObjectInfo{}, ErrEntityTooSmall
		}
		sum, _ := hex.DecodeString(up.etag)
		h.Write(sum)
		rec.Parts = append(rec.Parts, up.part)
		rec.PartSizes = append(rec.PartSizes, up.part.Size)
		rec.Size += up.part.Size
	}
	u.mu.Unlock()
	rec.ETag = fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts))
	oi, err := g.commitObject(ctx, bucket, key, rec, u.opts.IfNoneMatch)
	if err != nil {
		return ObjectInfo{}, err
	}
	g.uploads.mu.Lock()
	delete(g.uploads.m, id)
	g.uploads.mu.Unlock()
	return oi, nil
}

// AbortUpload ends an upload; its parts become unreferenced.
func (g *Gateway) AbortUpload(bucket, key, id string) error {
	if _, err := g.upload(bucket, key, id); err != nil {
		return err
	}
	g.uploads.mu.Lock()
	delete(g.uploads.m, id)
	g.uploads.mu.Unlock()
	return nil
}

// ListParts lists an upload's parts by number.
func (g *Gateway) ListParts(bucket, key, id string) ([]PartInfo, error) {
	u, err := g.upload(bucket, key, id)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]PartInfo, 0, len(u.parts))
	for n, p := range u.parts {
		out = append(out, PartInfo{Number: n, ETag: p.etag, Size: p.part.Size, Modified: p.modified})
	}
	slices.SortFunc(out, func(a, b PartInfo) int { return a.Number - b.Number })
	return out, nil
}

// ListUploads lists a bucket's uploads in progress by key, then start time.
func (g *Gateway) ListUploads(bucket, prefix string) ([]UploadInfo, error) {
	if _, err := g.Bucket(bucket); err != nil {
		return nil, err
	}
	g.uploads.mu.Lock()
	defer g.uploads.mu.Unlock()
	g.expireLocked()
	var out []UploadInfo
	for _, u := range g.uploads.m {
		if u.bucket == bucket && strings.HasPrefix(u.key, prefix) {
			out = append(out, UploadInfo{ID: u.id, Bucket: u.bucket, Key: u.key, Started: u.started})
		}
	}
	slices.SortFunc(out, func(a, b UploadInfo) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.Started.Compare(b.Started)
	})
	return out, nil
}
