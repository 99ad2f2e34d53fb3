package s3gw

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/repo"
)

// versitygw keeps package-level state: one server at a time per process.
var serverMu sync.Mutex

type testServer struct {
	addr           string
	access, secret string
	g              *Gateway
	r              *repo.Repository
}

// startServer runs a gateway over r on a free loopback port with one user
// (all buckets, read-write) and stops it when the test ends.
func startServer(t testing.TB, r *repo.Repository, o Options) *testServer {
	t.Helper()
	return startServerWith(t, r, o, ServerOptions{})
}

// startServerWith is startServer with server options (TLS); so.Listen is
// filled in.
func startServerWith(t testing.TB, r *repo.Repository, o Options, so ServerOptions) *testServer {
	t.Helper()
	serverMu.Lock()
	t.Cleanup(serverMu.Unlock)
	g, err := Open(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	users := &UserTable{}
	access, secret, err := users.Add(r, "tester", "*", false)
	if err != nil {
		t.Fatal(err)
	}
	// The file round trip is part of what is tested: secrets sealed and unsealed.
	path := filepath.Join(t.TempDir(), "users.json")
	if err := users.Save(path); err != nil {
		t.Fatal(err)
	}
	if users, err = LoadUsers(path, r); err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	so.Listen = addr
	srv, err := NewServer(g, users, so)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
		g.Close()
	})
	return &testServer{addr: addr, access: access, secret: secret, g: g, r: r}
}

func (s *testServer) client(t testing.TB, access, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Secure: false, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func s3code(err error) string { return minio.ToErrorResponse(err).Code }

func TestServerMinioClient(t *testing.T) {
	r := newTestRepo(t)
	s := startServer(t, r, Options{})
	c := s.client(t, s.access, s.secret)
	ctx := t.Context()

	if err := c.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); s3code(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("second make bucket: %v", err)
	}
	body := bytes.Repeat([]byte("strata gateway "), 100000) // 1.5 MB
	// Streaming (aws-chunked, signed) upload: minio-go signs chunks over plain HTTP.
	info, err := c.PutObject(ctx, "bkt", "dir/obj.bin", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		UserMetadata: map[string]string{"color": "blue"}, ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", md5.Sum(body)); info.ETag != want {
		t.Fatalf("etag %s, want %s", info.ETag, want)
	}
	obj, err := c.GetObject(ctx, "bkt", "dir/obj.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get: %v, %d bytes", err, len(got))
	}
	st, err := c.StatObject(ctx, "bkt", "dir/obj.bin", minio.StatObjectOptions{})
	if err != nil || st.UserMetadata["Color"] != "blue" || st.Size != int64(len(body)) {
		t.Fatalf("stat: %+v %v", st, err)
	}
	// Range.
	ro := minio.GetObjectOptions{}
	ro.SetRange(1000, 1999)
	obj, _ = c.GetObject(ctx, "bkt", "dir/obj.bin", ro)
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, body[1000:2000]) {
		t.Fatalf("range: %v %d", err, len(got))
	}
	// Conditional GET.
	co := minio.GetObjectOptions{}
	co.SetMatchETag("not-the-etag")
	obj, _ = c.GetObject(ctx, "bkt", "dir/obj.bin", co)
	if _, err := io.ReadAll(obj); s3code(err) != "PreconditionFailed" {
		t.Fatalf("if-match: %v", err)
	}
	// Missing key.
	if _, err := c.StatObject(ctx, "bkt", "nope", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("stat missing: %v", err)
	}
	// Copy.
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: "bkt", Object: "copy"}, minio.CopySrcOptions{Bucket: "bkt", Object: "dir/obj.bin"}); err != nil {
		t.Fatal(err)
	}
	// Listing with delimiter and pagination.
	for i := range 5 {
		if _, err := c.PutObject(ctx, "bkt", fmt.Sprintf("p/k%d", i), strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for o := range c.ListObjects(ctx, "bkt", minio.ListObjectsOptions{Prefix: "p/", MaxKeys: 2}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "p/k0,p/k1,p/k2,p/k3,p/k4" {
		t.Fatalf("paged listing: %v", keys)
	}
	keys = nil
	for o := range c.ListObjects(ctx, "bkt", minio.ListObjectsOptions{}) {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "copy,dir/,p/" {
		t.Fatalf("delimited listing: %v", keys)
	}
	keys = nil
	for o := range c.ListObjects(ctx, "bkt", minio.ListObjectsOptions{Prefix: "p/", UseV1: true, StartAfter: "p/k2"}) {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "p/k3,p/k4" {
		t.Fatalf("v1 listing: %v", keys)
	}
	// Multi-delete.
	ch := make(chan minio.ObjectInfo, 5)
	for i := range 5 {
		ch <- minio.ObjectInfo{Key: fmt.Sprintf("p/k%d", i)}
	}
	close(ch)
	for e := range c.RemoveObjects(ctx, "bkt", ch, minio.RemoveObjectsOptions{}) {
		t.Fatalf("remove objects: %v", e.Err)
	}
	if err := c.RemoveBucket(ctx, "bkt"); s3code(err) != "BucketNotEmpty" {
		t.Fatalf("remove non-empty bucket: %v", err)
	}

	// Multipart through minio-go (5 MiB parts).
	big := make([]byte, 11<<20)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	info, err = c.PutObject(ctx, "bkt", "big", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-3") {
		t.Fatalf("multipart etag %q", info.ETag)
	}
	obj, _ = c.GetObject(ctx, "bkt", "big", minio.GetObjectOptions{})
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("multipart get: %v %d", err, len(got))
	}

	// Wrong secret: SignatureDoesNotMatch; unknown key: InvalidAccessKeyId; nothing stored.
	bad := s.client(t, s.access, s.secret+"x")
	if _, err := bad.PutObject(ctx, "bkt", "evil", strings.NewReader("x"), 1, minio.PutObjectOptions{}); s3code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("bad secret: %v", err)
	}
	unknown := s.client(t, "STRNOSUCHKEY0000000", s.secret)
	if _, err := unknown.PutObject(ctx, "bkt", "evil", strings.NewReader("x"), 1, minio.PutObjectOptions{}); s3code(err) != "InvalidAccessKeyId" {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := c.StatObject(ctx, "bkt", "evil", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("object stored by a bad signature: %v", err)
	}
	// Presigned GET.
	u, err := c.PresignedGetObject(ctx, "bkt", "copy", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(pb, body) {
		t.Fatalf("presigned get: %d, %d bytes", resp.StatusCode, len(pb))
	}
}

func TestServerBadDigestAndSkew(t *testing.T) {
	r := newTestRepo(t)
	s := startServer(t, r, Options{})
	c := s.client(t, s.access, s.secret)
	ctx := t.Context()
	if err := c.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	// Content-MD5 of other content: BadDigest, nothing stored.
	wrong := md5.Sum([]byte("other"))
	if code := signedPut(t, s, "k", "content", map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(wrong[:])}, time.Now()); code != "BadDigest" {
		t.Fatalf("content-md5 mismatch: %q", code)
	}
	if _, err := c.StatObject(ctx, "bkt", "k", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("object stored despite BadDigest: %v", err)
	}
	// The same request with the right digest and a clock 5 minutes off succeeds.
	right := md5.Sum([]byte("content"))
	if code := signedPut(t, s, "ok", "content", map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(right[:])}, time.Now().Add(-5*time.Minute)); code != "" {
		t.Fatalf("good content-md5: %q", code)
	}
	// A clock 20 minutes behind: RequestTimeTooSkewed.
	if code := signedPut(t, s, "skew", "x", nil, time.Now().Add(-20*time.Minute)); code != "RequestTimeTooSkewed" {
		t.Fatalf("skewed request: %s", code)
	}
	if _, err := c.StatObject(ctx, "bkt", "skew", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("object stored despite skew: %v", err)
	}
}

// signedPut PUTs body to bkt/key with extra headers, signed (SigV4 by
// aws-sdk-go-v2's signer) at the given instant, and returns the S3 error
// code ("" for success).
func signedPut(t *testing.T, s *testServer, key, body string, headers map[string]string, at time.Time) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, "http://"+s.addr+"/bkt/"+key, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256([]byte(body))
	h := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", h)
	err = v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: s.access, SecretAccessKey: s.secret}, req, h, "s3", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return ""
	}
	return minio.ToErrorResponse(minioErr(resp)).Code
}

func minioErr(resp *http.Response) error {
	var e minio.ErrorResponse
	b, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return e
}
