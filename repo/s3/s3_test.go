package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/repo/s3"
	"github.com/strata-backup/strata/repo/storetest"
)

func open(t *testing.T, o s3.Options) *s3.Store {
	t.Helper()
	s, err := s3.Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		o := miniotest.Bucket(t, false)
		s := open(t, o)
		if bucketVersioned(t, o) {
			t.Fatal("a new plain bucket is versioned")
		}
		return s
	})
}

var prefixes atomic.Int64

// TestConformancePrefix shares one bucket between stores under prefixes.
func TestConformancePrefix(t *testing.T) {
	o := miniotest.Bucket(t, false)
	// An object beside the prefixes, which no store may list or touch.
	c := miniotest.Client(t, o)
	if _, err := c.PutObject(t.Context(), o.Bucket, "repo/10-outside", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) repo.Store {
		o := o
		o.Prefix = fmt.Sprintf("repo/%d", prefixes.Add(1))
		return open(t, o)
	})
	if _, err := c.StatObject(t.Context(), o.Bucket, "repo/10-outside", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the object outside the prefixes: %v", err)
	}
}

// TestConformanceVersioned runs the suite on Object Lock buckets without
// retention: every Put makes a version, and Delete must remove them all.
func TestConformanceVersioned(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		o := miniotest.Bucket(t, true)
		// The suite's objects are not real ones: a Verify that passes all
		// still takes the verifying paths.
		o.Verify = func(string, []byte) error { return nil }
		s := open(t, o)
		if !bucketVersioned(t, o) {
			t.Fatal("an Object Lock bucket is not versioned")
		}
		return s
	})
}

// TestConformanceDecorated runs the suite through the decorators the CLI
// stacks on a remote store.
func TestConformanceDecorated(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		s := retry.New(limit.New(open(t, miniotest.Bucket(t, true)), 4), retry.Policy{})
		if _, ok := s.(repo.Retainer); !ok {
			t.Fatal("the decorated store is not a repo.Retainer")
		}
		if _, ok := s.(repo.Tampered); !ok {
			t.Fatal("the decorated store is not a repo.Tampered")
		}
		return s
	})
}

func TestOpenWrongCredentials(t *testing.T) {
	o := miniotest.Bucket(t, false)
	for _, tt := range []struct{ name, access, secret string }{
		{"wrong secret", o.AccessKey, o.SecretKey + "x"},
		{"unknown key", "nobody", "doesnotmatter"},
	} {
		bad := o
		bad.AccessKey, bad.SecretKey = tt.access, tt.secret
		_, err := s3.Open(t.Context(), bad)
		if !errors.Is(err, s3.ErrAccessDenied) {
			t.Errorf("%s: Open error = %v, want one wrapping ErrAccessDenied", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), bad.SecretKey) {
			t.Errorf("%s: Open error %q shows the secret key", tt.name, err)
		}
	}
}

func TestOpenMissingBucket(t *testing.T) {
	o := miniotest.Shared(t)
	o.Bucket = "strata-no-such-bucket"
	if _, err := s3.Open(t.Context(), o); !errors.Is(err, s3.ErrBucketNotFound) {
		t.Fatalf("Open error = %v, want one wrapping ErrBucketNotFound", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	o := s3.Options{Endpoint: addr, Bucket: "bucket", AccessKey: "a", SecretKey: "b"}
	start := time.Now()
	_, err = s3.Open(t.Context(), o)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Open of a closed port took %v", d)
	}
	if !strings.Contains(err.Error(), "cannot reach endpoint "+addr) {
		t.Fatalf("Open error %q does not name the endpoint", err)
	}
	if errors.Is(err, s3.ErrAccessDenied) || errors.Is(err, s3.ErrBucketNotFound) {
		t.Fatalf("Open error %q blames credentials or bucket", err)
	}
}

func TestCreate(t *testing.T) {
	base := miniotest.Shared(t)
	ctx := t.Context()
	for _, lock := range []bool{false, true} {
		o := miniotest.NewBucket(t, base, false) // for its name and cleanup
		c := miniotest.Client(t, o)
		if err := c.RemoveBucket(ctx, o.Bucket); err != nil {
			t.Fatal(err)
		}
		s, err := s3.Create(ctx, o, lock)
		if err != nil {
			t.Fatalf("Create(lock %v): %v", lock, err)
		}
		got, err := s.ObjectLock(ctx)
		if err != nil || got != lock {
			t.Fatalf("ObjectLock after Create(lock %v) = %v, %v", lock, got, err)
		}
		if v := bucketVersioned(t, o); v != lock {
			t.Fatalf("versioned after Create(lock %v) = %v", lock, v)
		}
		// Create on the bucket it made is Open.
		if _, err := s3.Create(ctx, o, lock); err != nil {
			t.Fatalf("second Create(lock %v): %v", lock, err)
		}
	}
}

func TestCreateLockOnPlainBucket(t *testing.T) {
	o := miniotest.Bucket(t, false)
	_, err := s3.Create(t.Context(), o, true)
	if !errors.Is(err, s3.ErrNoObjectLock) {
		t.Fatalf("Create with lock on a plain bucket: %v, want one wrapping ErrNoObjectLock", err)
	}
	if want := "bucket " + o.Bucket + " exists without object locking; create a new bucket"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if _, err := s3.Create(t.Context(), o, false); err != nil {
		t.Fatalf("Create without lock on a plain bucket: %v", err)
	}
}

func TestOpenRetentionNeedsLock(t *testing.T) {
	o := miniotest.Bucket(t, false)
	o.Retention = time.Hour
	if _, err := s3.Open(t.Context(), o); !errors.Is(err, s3.ErrNoObjectLock) {
		t.Fatalf("Open with retention on a plain bucket: %v, want one wrapping ErrNoObjectLock", err)
	}
}

// retention returns the retention of the latest version of key, or of vid.
func retention(t *testing.T, c *minio.Client, bucket, key, vid string) (string, time.Time) {
	t.Helper()
	mode, until, err := c.GetObjectRetention(t.Context(), bucket, key, vid)
	if err != nil {
		t.Fatalf("GetObjectRetention(%s): %v", key, err)
	}
	if mode == nil || until == nil {
		t.Fatalf("GetObjectRetention(%s): no retention", key)
	}
	return string(*mode), *until
}

func TestRetention(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	o.Retention = time.Hour // GOVERNANCE, so that cleanup can remove it
	s := open(t, o)
	c := miniotest.Client(t, o)

	before := time.Now()
	if err := s.Put(ctx, "index/aa", []byte("locked")); err != nil {
		t.Fatal(err)
	}
	mode, until := retention(t, c, o.Bucket, "index/aa", "")
	if mode != s3.Governance || until.Before(before.Add(time.Hour-time.Second)) || until.After(time.Now().Add(time.Hour+time.Second)) {
		t.Fatalf("retention after Put = %s until %v, want GOVERNANCE until about an hour from now", mode, until)
	}

	err := s.Delete(ctx, "index/aa")
	if !errors.Is(err, repo.ErrRetained) {
		t.Fatalf("Delete of a retained object: %v, want one wrapping repo.ErrRetained", err)
	}
	if !strings.Contains(err.Error(), until.UTC().Format(time.RFC3339)) {
		t.Fatalf("Delete error %q does not say until when (%s)", err, until.UTC().Format(time.RFC3339))
	}
	if b, err := s.Get(ctx, "index/aa"); err != nil || string(b) != "locked" {
		t.Fatalf("Get after refused Delete = %q, %v", b, err)
	}

	// Extend, then try to shorten.
	later := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	if err := s.RetainUntil(ctx, "index/aa", later); err != nil {
		t.Fatalf("RetainUntil: %v", err)
	}
	if _, got := retention(t, c, o.Bucket, "index/aa", ""); !got.Equal(later) {
		t.Fatalf("retention after RetainUntil(%v) = %v", later, got)
	}
	if err := s.RetainUntil(ctx, "index/aa", later.Add(-2*time.Hour)); err != nil {
		t.Fatalf("RetainUntil earlier: %v", err)
	}
	if _, got := retention(t, c, o.Bucket, "index/aa", ""); !got.Equal(later) {
		t.Fatalf("retention after RetainUntil to an earlier time = %v, want %v kept", got, later)
	}
	// A fraction of a second rounds up, never down.
	frac := later.Add(time.Hour + 300*time.Millisecond)
	if err := s.RetainUntil(ctx, "index/aa", frac); err != nil {
		t.Fatal(err)
	}
	if _, got := retention(t, c, o.Bucket, "index/aa", ""); got.Before(frac) {
		t.Fatalf("retention after RetainUntil(%v) = %v, shorter", frac, got)
	}

	if err := s.RetainUntil(ctx, "index/none", later); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("RetainUntil of a missing object: %v, want one wrapping repo.ErrNotFound", err)
	}
}

func TestRetainUntilWithoutPutRetention(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	s := open(t, o)
	c := miniotest.Client(t, o)
	if err := s.Put(ctx, "snapshots/a", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetObjectRetention(ctx, o.Bucket, "snapshots/a", ""); err == nil {
		t.Fatal("Put without Options.Retention set a retention")
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.RetainUntil(ctx, "snapshots/a", until); err != nil {
		t.Fatal(err)
	}
	if mode, got := retention(t, c, o.Bucket, "snapshots/a", ""); mode != s3.Governance || !got.Equal(until) {
		t.Fatalf("retention = %s until %v, want GOVERNANCE until %v", mode, got, until)
	}
	if err := s.Delete(ctx, "snapshots/a"); !errors.Is(err, repo.ErrRetained) {
		t.Fatalf("Delete: %v, want one wrapping repo.ErrRetained", err)
	}

	// Without Object Lock there is nothing to retain with.
	plain := open(t, miniotest.Bucket(t, false))
	if err := plain.Put(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	if err := plain.RetainUntil(ctx, "x", until); !errors.Is(err, s3.ErrNoObjectLock) {
		t.Fatalf("RetainUntil on a plain bucket: %v, want one wrapping ErrNoObjectLock", err)
	}
}

// TestDeleteRemovesEveryVersion checks that nothing stays hidden behind a
// delete marker.
func TestDeleteRemovesEveryVersion(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	s := open(t, o)
	c := miniotest.Client(t, o)
	for _, data := range []string{"one", "two", "three"} {
		if err := s.Put(ctx, "keys/k", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RemoveObject(ctx, o.Bucket, "keys/k", minio.RemoveObjectOptions{}); err != nil { // a marker on top
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "keys/k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	n := 0
	for obj := range c.ListObjectsIter(ctx, o.Bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	if n != 0 {
		t.Fatalf("%d versions left after Delete", n)
	}
}

func TestPutLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 70 MiB")
	}
	ctx := t.Context()
	s := open(t, miniotest.Bucket(t, false))
	data := bytes.Repeat([]byte("0123456789abcdef"), (70<<20)/16) // over the single-request limit
	data[12345] = 'x'
	if err := s.Put(ctx, "data/ff/big.0", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "data/ff/big.0")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get of a multipart object: %d bytes, %v", len(got), err)
	}
}

func TestCancelledPutLeavesNothing(t *testing.T) {
	s := open(t, miniotest.Bucket(t, false))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, "x", []byte("data")); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if _, err := s.Stat(t.Context(), "x"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat after the cancelled Put: %v", err)
	}
}

// bucketVersioned asks the server whether o's bucket keeps versions.
func bucketVersioned(t *testing.T, o s3.Options) bool {
	t.Helper()
	vc, err := miniotest.Client(t, o).GetBucketVersioning(t.Context(), o.Bucket)
	if err != nil {
		t.Fatalf("GetBucketVersioning: %v", err)
	}
	return vc.Status == minio.Enabled || vc.Status == minio.Suspended
}
