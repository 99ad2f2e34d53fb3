package s3gw

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// Object lock: a bucket created with lock keeps versions under retention,
// and deleting one is refused as S3 refuses it.
func TestServerObjectLock(t *testing.T) {
	s := startServer(t, newTestRepo(t), Options{})
	c := s.client(t, s.access, s.secret)
	ctx := t.Context()
	if err := c.MakeBucket(ctx, "locked", minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	if loc, err := c.GetBucketLocation(ctx, "locked"); err != nil || loc != "us-east-1" {
		t.Fatalf("bucket location %q, %v", loc, err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	info, err := c.PutObject(ctx, "locked", "wal/000001", strings.NewReader("segment"), 7, minio.PutObjectOptions{
		Mode: minio.Governance, RetainUntilDate: until})
	if err != nil {
		t.Fatal(err)
	}
	if info.VersionID == "" {
		t.Fatal("no version ID from a bucket with object lock (versioning is on)")
	}
	st, err := c.StatObject(ctx, "locked", "wal/000001", minio.StatObjectOptions{})
	if err != nil || st.Metadata.Get("X-Amz-Object-Lock-Mode") != "GOVERNANCE" || st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date") != until.Format(time.RFC3339) {
		t.Fatalf("retention on HEAD: %v %v", st.Metadata, err)
	}
	err = c.RemoveObject(ctx, "locked", "wal/000001", minio.RemoveObjectOptions{VersionID: info.VersionID})
	if code := s3code(err); code != "AccessDenied" && code != "ObjectLocked" {
		t.Fatalf("delete of a locked version: %v", err)
	}
	// A plain DELETE adds a delete marker; the locked version stays.
	if err := c.RemoveObject(ctx, "locked", "wal/000001", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, "locked", "wal/000001", minio.GetObjectOptions{VersionID: info.VersionID})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(obj); err != nil || string(b) != "segment" {
		t.Fatalf("locked version after a delete marker: %q %v", b, err)
	}
	// The bypass header is honoured only where versitygw grants
	// s3:BypassGovernanceRetention (a bucket policy); without one the
	// version stays.
	if err := c.RemoveObject(ctx, "locked", "wal/000001", minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true}); err == nil {
		t.Fatal("governance bypass without the permission removed a locked version")
	}
}

// Bad input gets S3's error codes and stores nothing.
func TestServerBadInput(t *testing.T) {
	s := startServer(t, newTestRepo(t), Options{})
	c := s.client(t, s.access, s.secret)
	ctx := t.Context()
	if err := c.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	// minio-go refuses a long key itself; signedPut sends it.
	if code := signedPut(t, s, strings.Repeat("k", 1025), "x", nil, time.Now()); code != "KeyTooLongError" {
		t.Fatalf("1025-byte key: %q", code)
	}
	ok := strings.Repeat("k", 1024)
	if _, err := c.PutObject(ctx, "bkt", ok, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("1024-byte key: %v", err)
	}
	// S3 takes "../" in keys; versitygw refuses keys that climb out of the
	// bucket with 400, and the gateway stays up.
	if code := signedPut(t, s, "../../etc/passwd", "x", nil, time.Now()); code == "" {
		t.Fatal("a key climbing out of the bucket was stored")
	}
	for _, key := range []string{"a/../b", "ключ/данные ✓", "a//b"} {
		if _, err := c.PutObject(ctx, "bkt", key, strings.NewReader(key), int64(len(key)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		obj, _ := c.GetObject(ctx, "bkt", key, minio.GetObjectOptions{})
		if b, err := io.ReadAll(obj); err != nil || string(b) != key {
			t.Fatalf("key %q read back %q, %v", key, b, err)
		}
	}
	// Part numbers out of range and completing with a missing part.
	core := minio.Core{Client: c}
	id, err := core.NewMultipartUpload(ctx, "bkt", "mp", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, "bkt", "mp", id, 10001, strings.NewReader("x"), 1, minio.PutObjectPartOptions{}); s3code(err) != "InvalidArgument" {
		t.Fatalf("part 10001: %v", err)
	}
	p1, err := core.PutObjectPart(ctx, "bkt", "mp", id, 1, bytes.NewReader(make([]byte, 5<<20)), 5<<20, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.CompleteMultipartUpload(ctx, "bkt", "mp", id, []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p1.ETag}}, minio.PutObjectOptions{}); s3code(err) != "InvalidPart" {
		t.Fatalf("complete with a missing part: %v", err)
	}
	parts, err := core.ListObjectParts(ctx, "bkt", "mp", id, 0, 100)
	if err != nil || len(parts.ObjectParts) != 1 || parts.ObjectParts[0].Size != 5<<20 {
		t.Fatalf("list parts: %+v %v", parts.ObjectParts, err)
	}
	if err := core.AbortMultipartUpload(ctx, "bkt", "mp", id); err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, "bkt", "mp", id, 2, strings.NewReader("x"), 1, minio.PutObjectPartOptions{}); s3code(err) != "NoSuchUpload" {
		t.Fatalf("part after abort: %v", err)
	}

	// A client that announces 1 MiB, sends 1000 bytes and hangs up: no object.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /bad/cut HTTP/1.1\r\nHost: %s\r\nContent-Length: 1048576\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=%s/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n", s.addr, s.access)
	conn.Write(make([]byte, 1000))
	conn.Close()
	time.Sleep(200 * time.Millisecond)
	if _, err := c.StatObject(ctx, "bkt", "cut", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("object from a cut upload: %v", err)
	}
	// A body shorter than its signed Content-Length, cut mid-stream after a
	// valid signature: the upload fails and nothing is visible.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 64<<10))
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	if _, err := c.PutObject(ctx, "bkt", "short", pr, 1<<20, minio.PutObjectOptions{DisableMultipart: true}); err == nil {
		t.Fatal("a short body was accepted")
	}
	if _, err := c.StatObject(ctx, "bkt", "short", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("object from a short body: %v", err)
	}
	// The gateway is still up.
	if _, err := c.PutObject(ctx, "bkt", "after", strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("gateway after bad input: %v", err)
	}
}

// --at serves the past read-only.
func TestServerAtView(t *testing.T) {
	r := newTestRepo(t)
	var mid time.Time
	t.Run("write", func(t *testing.T) {
		s := startServer(t, r, Options{})
		c := s.client(t, s.access, s.secret)
		ctx := t.Context()
		if err := c.MakeBucket(ctx, "hist", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutObject(ctx, "hist", "file", strings.NewReader("old"), 3, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		mid = time.Now()
		time.Sleep(10 * time.Millisecond)
		if _, err := c.PutObject(ctx, "hist", "file", strings.NewReader("attacker"), 8, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutObject(ctx, "hist", "new", strings.NewReader("n"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("read at", func(t *testing.T) {
		s := startServer(t, r, Options{At: mid})
		c := s.client(t, s.access, s.secret)
		ctx := t.Context()
		obj, err := c.GetObject(ctx, "hist", "file", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(obj); err != nil || string(b) != "old" {
			t.Fatalf("at view: %q %v", b, err)
		}
		if _, err := c.StatObject(ctx, "hist", "new", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
			t.Fatalf("later key in the at view: %v", err)
		}
		if _, err := c.PutObject(ctx, "hist", "x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); s3code(err) != "AccessDenied" {
			t.Fatalf("write to the at view: %v", err)
		}
	})
}
