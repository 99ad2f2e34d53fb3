package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-backup/strata/repo"
)

var (
	_ repo.Store    = (*Store)(nil)
	_ repo.Retainer = (*Store)(nil)
	_ repo.Tampered = (*Store)(nil)
	_ repo.Creator  = (*Store)(nil)
)

const (
	// singlePutMax is the largest object Put sends in one request; larger
	// ones go as a multipart upload of partSize parts, which S3 makes
	// visible only once complete.
	singlePutMax = 64 << 20
	partSize     = 16 << 20
	// maxObjectSize bounds what Get reads into memory, so that junk an
	// attacker uploaded cannot exhaust it. Shards are at most 1 GiB.
	maxObjectSize = 2 << 30

	dialTimeout           = 10 * time.Second
	tlsTimeout            = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute
)

// errTooLarge is wrapped by the error for an object larger than maxObjectSize.
var errTooLarge = fmt.Errorf("object larger than %d bytes", maxObjectSize)

// Store is a repo.Store in an S3 bucket. It is safe for concurrent use.
type Store struct {
	client    *minio.Client
	core      minio.Core
	o         Options
	versioned bool // versioning enabled or suspended: keys may have older versions

	mu       sync.Mutex
	good     map[string]string // name → ID of the intact version Get found in place of the latest
	tampered map[string]bool   // names served from an older version since the Store was made
}

// Open returns the store for an existing bucket. It checks that the bucket
// exists (else an error wrapping ErrBucketNotFound) and that the
// credentials work (else ErrAccessDenied); an endpoint that cannot be
// reached is an error naming it, within the dial timeout. With
// o.Retention > 0 the bucket must have Object Lock (else ErrNoObjectLock).
func Open(ctx context.Context, o Options) (*Store, error) {
	s, err := newStore(o)
	if err != nil {
		return nil, fmt.Errorf("s3 store: open: %w", err)
	}
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("s3 store: open %s: %w", o, err)
	}
	return s, nil
}

// Create returns the store for a bucket, creating the bucket if it does not
// exist, with Object Lock (and so versioning) when objectLock is set. An
// existing bucket without Object Lock when objectLock is set is an error
// wrapping ErrNoObjectLock. Otherwise it checks like Open.
func Create(ctx context.Context, o Options, objectLock bool) (*Store, error) {
	s, err := newStore(o)
	if err != nil {
		return nil, fmt.Errorf("s3 store: create: %w", err)
	}
	if err := s.create(ctx, objectLock); err != nil {
		return nil, fmt.Errorf("s3 store: create %s: %w", o, err)
	}
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("s3 store: create %s: %w", o, err)
	}
	return s, nil
}

func newStore(o Options) (*Store, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	tr := o.Transport
	if tr == nil {
		tr = newTransport()
	}
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:    o.Secure,
		Transport: tr,
		Region:    o.Region,
		// Retries belong to repo/retry, which sees every call.
		MaxRetries: 1,
		// A CRC32C trailer checksums uploads over HTTPS; over plain HTTP
		// each chunk is signed with its SHA-256.
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, err
	}
	return &Store{
		client:   c,
		core:     minio.Core{Client: c},
		o:        o,
		good:     make(map[string]string),
		tampered: make(map[string]bool),
	}, nil
}

// newTransport returns an HTTP transport whose every wait before data flows
// is bounded, so a dead endpoint fails a call instead of hanging it.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   tlsTimeout,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		// Objects are compressed or encrypted already, and a transparently
		// decompressed body would not match its Content-Length.
		DisableCompression: true,
	}
}

// describe adds the endpoint to an error that came from not reaching it.
func (s *Store) describe(err error) error {
	err = convert(err)
	var er minio.ErrorResponse
	if !errors.As(err, &er) && !errors.Is(err, ErrBucketNotFound) && !errors.Is(err, ErrAccessDenied) {
		return fmt.Errorf("cannot reach endpoint %s: %w", s.o.Endpoint, err)
	}
	return err
}

// check verifies that the bucket exists and the credentials work, and
// learns whether the bucket is versioned.
func (s *Store) check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.o.Bucket)
	if err != nil {
		return s.describe(err)
	}
	if !ok {
		return permanent(fmt.Errorf("%w: %s", ErrBucketNotFound, s.o.Bucket))
	}
	vc, err := s.client.GetBucketVersioning(ctx, s.o.Bucket)
	switch {
	case err == nil:
		s.versioned = vc.Status == minio.Enabled || vc.Status == minio.Suspended
	case code(err) == "AccessDenied" || code(err) == codeNotImplemented:
		// Without the permission to read versioning, the store works
		// without looking at older versions.
		s.versioned = false
	default:
		return s.describe(err)
	}
	if s.o.Retention > 0 {
		locked, err := s.objectLock(ctx)
		if err != nil {
			return err
		}
		if !locked {
			return permanent(fmt.Errorf("retention %v asked for, but bucket %s %w", s.o.Retention, s.o.Bucket, ErrNoObjectLock))
		}
	}
	return nil
}

func (s *Store) create(ctx context.Context, objectLock bool) error {
	exists, err := s.client.BucketExists(ctx, s.o.Bucket)
	if err != nil {
		return s.describe(err)
	}
	if !exists {
		err := s.client.MakeBucket(ctx, s.o.Bucket, minio.MakeBucketOptions{Region: s.o.Region, ObjectLocking: objectLock})
		switch {
		case err == nil:
			return nil
		case code(err) == codeOwnedByYou: // made meanwhile by someone else with our credentials
		default:
			return s.describe(err)
		}
	}
	if !objectLock {
		return nil
	}
	locked, err := s.objectLock(ctx)
	if err != nil {
		return err
	}
	if !locked {
		return permanent(fmt.Errorf("bucket %s exists without object locking; create a new bucket, enable object lock on this one with the provider's tools, or do without locking: %w",
			s.o.Bucket, ErrNoObjectLock))
	}
	return nil
}

// ObjectLock reports whether the bucket has Object Lock enabled.
func (s *Store) ObjectLock(ctx context.Context) (bool, error) {
	on, err := s.objectLock(ctx)
	if err != nil {
		return false, fmt.Errorf("s3 store: object lock of bucket %s: %w", s.o.Bucket, err)
	}
	return on, nil
}

func (s *Store) objectLock(ctx context.Context) (bool, error) {
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.o.Bucket)
	if err != nil {
		switch code(err) {
		case codeNoLockConfig, codeNotImplemented:
			return false, nil
		}
		return false, s.describe(err)
	}
	return enabled == "Enabled", nil
}

// key returns the S3 key of an object name.
func (s *Store) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return "", permanent(fmt.Errorf("invalid object name %q", name))
	}
	if s.o.Prefix == "" {
		return name, nil
	}
	return s.o.Prefix + "/" + name, nil
}

// Put uploads data in one request, or for objects over 64 MiB as a
// multipart upload, which S3 makes visible only when complete, so readers
// never see part of an object. With Options.Retention it retains the new
// version (package documentation, "Retention").
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := s.put(ctx, name, data); err != nil {
		return fmt.Errorf("s3 store: put %s: %w", name, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: len(data) <= singlePutMax,
		PartSize:         partSize,
		SendContentMd5:   false,
	}
	if s.o.Retention > 0 {
		opts.Mode = minio.RetentionMode(s.o.mode())
		opts.RetainUntilDate = ceilSecond(time.Now().Add(s.o.Retention))
	}
	r := &guardedReader{data: data}
	defer r.close()
	if _, err := s.client.PutObject(ctx, s.o.Bucket, key, r, int64(len(data)), opts); err != nil {
		return convert(err)
	}
	// The latest version is now what the repository wrote.
	s.mu.Lock()
	delete(s.good, name)
	s.mu.Unlock()
	return nil
}

// Create uploads data in one request with If-None-Match: *, so S3 (and
// MinIO) store it only if the key has no current version: a name that
// exists gives an error wrapping repo.ErrObjectExists (HTTP 412). A concurrent
// conditional write of the same key (409 ConditionalRequestConflict) is a
// transient error: a later call sees the winner's object. Created objects
// get no retention: Create serves leases (FORMAT.md §15), which hold no
// data and are superseded within seconds.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if err := s.createExclusive(ctx, name, data); err != nil {
		return fmt.Errorf("s3 store: create %s: %w", name, err)
	}
	return nil
}

func (s *Store) createExclusive(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if len(data) > singlePutMax {
		return permanent(fmt.Errorf("%d bytes: exclusive creates are single requests of at most %d bytes", len(data), singlePutMax))
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	r := &guardedReader{data: data}
	defer r.close()
	if _, err := s.client.PutObject(ctx, s.o.Bucket, key, r, int64(len(data)), opts); err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) {
			switch {
			case er.StatusCode == http.StatusPreconditionFailed || er.Code == minio.PreconditionFailed:
				return permanent(fmt.Errorf("%w (%s)", repo.ErrObjectExists, er.Code))
			case er.StatusCode == http.StatusConflict:
				return &classified{err: err, transient: true}
			}
		}
		return convert(err)
	}
	s.mu.Lock()
	delete(s.good, name)
	s.mu.Unlock()
	return nil
}

// Get returns the object. On a versioned bucket it serves an older intact
// version when the latest fails Options.Verify or is a delete marker
// (package documentation, "Tamper"). A missing object wraps
// repo.ErrNotFound; an object no version of which passes Verify is an
// error wrapping Verify's.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := s.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("s3 store: get %s: %w", name, err)
	}
	return b, nil
}

func (s *Store) get(ctx context.Context, name string) ([]byte, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if vid := s.goodVersion(name); vid != "" {
		b, _, err := s.read(ctx, key, vid, 0, -1)
		switch {
		case err == nil && s.verify(name, b) == nil:
			return b, nil
		case err != nil && !isNotFound(err):
			return nil, err
		}
		s.forget(name, vid)
	}
	b, vid, err := s.read(ctx, key, "", 0, -1)
	switch {
	case err == nil:
		verr := s.verify(name, b)
		if verr == nil {
			return b, nil
		}
		if !s.versioned {
			return nil, verr
		}
		return s.recover(ctx, name, key, vid, verr)
	case s.versioned && (isNotFound(err) || errors.Is(err, errTooLarge)):
		return s.recover(ctx, name, key, vid, err)
	}
	return nil, err
}

func (s *Store) verify(name string, b []byte) error {
	if s.o.Verify == nil {
		return nil
	}
	return s.o.Verify(name, b)
}

// GetRange returns length bytes at offset. It reads the intact version Get
// found for a name found tampered, else the latest version, else, if the
// latest is a delete marker, the only or newest intact older one (package
// documentation, "Tamper"). It does not verify: callers check what they
// read and fall back to Get. A range not wholly inside the object wraps
// io.ErrUnexpectedEOF.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := s.getRange(ctx, name, offset, length)
	if err != nil {
		return nil, fmt.Errorf("s3 store: get %s [%d, +%d): %w", name, offset, length, err)
	}
	return b, nil
}

func (s *Store) getRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, permanent(errors.New("negative offset or length"))
	}
	if length == 0 || offset > math.MaxInt64-length {
		info, err := s.stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if offset > info.Size || length > info.Size-offset {
			return nil, permanent(errOutOfRange)
		}
		return []byte{}, nil
	}
	if vid := s.goodVersion(name); vid != "" {
		b, _, err := s.read(ctx, key, vid, offset, length)
		if !isNotFound(err) {
			return b, err
		}
		s.forget(name, vid)
	}
	b, _, err := s.read(ctx, key, "", offset, length)
	if err == nil || !isNotFound(err) || !s.versioned {
		return b, err
	}
	v, verr := s.intactVersion(ctx, name, key)
	if verr != nil {
		if isNotFound(verr) {
			return nil, err
		}
		return nil, verr
	}
	b, _, err = s.read(ctx, key, v.VersionID, offset, length)
	return b, err
}

// read returns the bytes of a version of key (the latest if vid is "") and
// the version's ID: all of them if length < 0, else length bytes at offset.
func (s *Store) read(ctx context.Context, key, vid string, offset, length int64) ([]byte, string, error) {
	opts := minio.GetObjectOptions{VersionID: vid}
	if length < 0 {
		opts.Checksum = true
	} else if err := opts.SetRange(offset, offset+length-1); err != nil {
		return nil, "", permanent(err)
	}
	body, info, _, err := s.core.GetObject(ctx, s.o.Bucket, key, opts)
	if err != nil {
		return nil, "", convert(err)
	}
	defer body.Close()
	n := length
	if length < 0 {
		n = info.Size
		if n < 0 || n > maxObjectSize {
			return nil, "", permanent(fmt.Errorf("%w (%d bytes)", errTooLarge, n))
		}
	} else if info.Size < length {
		// S3 cuts a range at the end of the object.
		return nil, "", permanent(errOutOfRange)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(body, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, "", convert(err)
	}
	// Reading on to the end lets minio-go check the object's checksum.
	if extra, err := io.Copy(io.Discard, io.LimitReader(body, 1)); err != nil || extra > 0 {
		if err == nil {
			err = errors.New("body longer than its Content-Length")
		}
		return nil, "", &classified{err: err, transient: true}
	}
	return b, info.VersionID, nil
}

// Stat returns the object's size: of the intact version Get found for a
// name found tampered, else of the latest version, else, if the latest is a
// delete marker, of the only or newest intact older one.
func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	info, err := s.stat(ctx, name)
	if err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("s3 store: stat %s: %w", name, err)
	}
	return info, nil
}

func (s *Store) stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	key, err := s.key(name)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	if vid := s.goodVersion(name); vid != "" {
		info, err := s.client.StatObject(ctx, s.o.Bucket, key, minio.StatObjectOptions{VersionID: vid})
		if err == nil {
			return repo.ObjectInfo{Name: name, Size: info.Size}, nil
		}
		if err := convert(err); !isNotFound(err) {
			return repo.ObjectInfo{}, err
		}
		s.forget(name, vid)
	}
	info, err := s.client.StatObject(ctx, s.o.Bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return repo.ObjectInfo{Name: name, Size: info.Size}, nil
	}
	err = convert(err)
	if !isNotFound(err) || !s.versioned {
		return repo.ObjectInfo{}, err
	}
	v, verr := s.intactVersion(ctx, name, key)
	if verr != nil {
		if isNotFound(verr) {
			return repo.ObjectInfo{}, err
		}
		return repo.ObjectInfo{}, verr
	}
	return repo.ObjectInfo{Name: name, Size: v.Size}, nil
}

// List reports the objects under prefix in ascending order of names. On a
// versioned bucket it lists versions, so that a name whose latest version
// is a delete marker but which has older real versions is still reported,
// with the size of its newest real version (or of the intact version Get
// found).
func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	var fnErr error
	err := s.list(ctx, prefix, func(info repo.ObjectInfo) error {
		fnErr = fn(info)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("s3 store: list %q: %w", prefix, err)
	}
	return nil
}

func (s *Store) list(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	full := prefix
	if s.o.Prefix != "" {
		full = s.o.Prefix + "/" + prefix
	}
	// Stopping the listing early must stop minio-go's paging too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objects := s.client.ListObjectsIter(ctx, s.o.Bucket, minio.ListObjectsOptions{
		Prefix:       listable(full),
		Recursive:    true,
		WithVersions: s.versioned,
	})
	trim := len(full) - len(prefix)
	if !s.versioned {
		for obj := range objects {
			if obj.Err != nil {
				return convert(obj.Err)
			}
			if !strings.HasPrefix(obj.Key, full) {
				continue
			}
			if err := fn(repo.ObjectInfo{Name: obj.Key[trim:], Size: obj.Size}); err != nil {
				return err
			}
		}
		return ctx.Err()
	}
	// Versions of a key come together, newest first.
	var (
		cur   string
		found bool // cur has a real version
		size  int64
	)
	flush := func() error {
		if !found {
			return nil
		}
		return fn(repo.ObjectInfo{Name: cur, Size: size})
	}
	for obj := range objects {
		if obj.Err != nil {
			return convert(obj.Err)
		}
		if !strings.HasPrefix(obj.Key, full) {
			continue
		}
		name := obj.Key[trim:]
		if name != cur {
			if err := flush(); err != nil {
				return err
			}
			cur, found = name, false
		}
		if obj.IsDeleteMarker {
			continue
		}
		if !found || obj.VersionID == s.goodVersion(name) {
			size = obj.Size
		}
		found = true
	}
	if err := flush(); err != nil {
		return err
	}
	return ctx.Err()
}

// listable cuts a listing prefix before its first ".", ".." or empty
// segment, which MinIO refuses in a prefix although S3 allows such keys;
// List then filters by the whole prefix itself.
func listable(prefix string) string {
	start := 0
	for {
		end := strings.IndexByte(prefix[start:], '/')
		seg := prefix[start:]
		if end >= 0 {
			seg = prefix[start : start+end]
		}
		if seg == "." || seg == ".." || seg == "" && end >= 0 {
			return prefix[:start]
		}
		if end < 0 {
			return prefix
		}
		start += end + 1
	}
}

// ceilSecond rounds t up to a whole second, the precision S3 keeps for
// retention dates, so that rounding never shortens a retention.
func ceilSecond(t time.Time) time.Time {
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return r.UTC()
}

// guardedReader reads data until close, after which it fails: the HTTP
// transport may still read a request body after the call returns, and
// Put must not use the caller's slice then.
type guardedReader struct {
	mu     sync.Mutex
	data   []byte
	off    int
	closed bool
}

var errPutReturned = errors.New("body read after Put returned")

func (r *guardedReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errPutReturned
	}
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

func (r *guardedReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed, r.data = true, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
