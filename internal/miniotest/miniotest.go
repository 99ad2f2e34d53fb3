package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/repo/s3"
)

// Environment variables scripts/minio.sh sets.
const (
	EnvURL       = "STRATA_TEST_S3"
	EnvAccessKey = "STRATA_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "STRATA_TEST_S3_SECRET_KEY"
	EnvBinary    = "STRATA_TEST_MINIO_BIN"
)

const skipHint = "set by scripts/minio.sh; run `scripts/minio.sh run go test ./...`"

// Shared returns Options for the shared server, without a bucket: Endpoint,
// Secure and the credentials. It skips t when the environment is unset.
func Shared(t testing.TB) s3.Options {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skipf("no MinIO: %s is unset (%s)", EnvURL, skipHint)
	}
	o, err := s3.ParseURL(strings.TrimSuffix(u, "/") + "/placeholder")
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	o.Bucket = ""
	o.AccessKey, o.SecretKey = os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey)
	if o.AccessKey == "" || o.SecretKey == "" {
		t.Skipf("no MinIO credentials: %s or %s is unset (%s)", EnvAccessKey, EnvSecretKey, skipHint)
	}
	return o
}

// Bucket creates a uniquely named bucket on the shared server, with Object
// Lock when lock is set, and returns Options for it. It skips t when the
// environment is unset, and removes what it can of the bucket when t ends.
func Bucket(t testing.TB, lock bool) s3.Options {
	t.Helper()
	return NewBucket(t, Shared(t), lock)
}

// NewBucket creates a uniquely named bucket on the server of o (Endpoint,
// Secure, credentials), with Object Lock when lock is set, and returns o
// with Bucket set. It removes what it can of the bucket when t ends.
func NewBucket(t testing.TB, o s3.Options, lock bool) s3.Options {
	t.Helper()
	o.Bucket = bucketName(t)
	c := Client(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{ObjectLocking: lock}); err != nil {
		t.Fatalf("make bucket %s: %v", o.Bucket, err)
	}
	t.Cleanup(func() { removeBucket(c, o.Bucket) })
	return o
}

// Client returns a raw minio-go client for the server of o, for tests that
// act behind the store's back (an attacker, a check of retention).
func Client(t testing.TB, o s3.Options) *minio.Client {
	t.Helper()
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:     o.Secure,
		MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bucketName returns a valid, unique bucket name that hints at the test.
func bucketName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return "t-" + strings.Trim(b.String(), "-") + "-" + hex.EncodeToString(rnd[:])
}

// removeBucket removes every version it may and then the bucket, ignoring
// failures: compliance-locked versions stay.
func removeBucket(c *minio.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for obj := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return
		}
		_ = c.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true})
	}
	_ = c.RemoveBucket(ctx, bucket)
}

// PrivateServer is a MinIO of one test's own, on its own port and
// directory, which the test may stop and restart.
type PrivateServer struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	user string
	pass string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartServer starts a private MinIO from STRATA_TEST_MINIO_BIN and stops
// it when t ends. It skips t when the variable is unset.
func StartServer(t testing.TB) *PrivateServer {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skipf("no MinIO binary: %s is unset (%s)", EnvBinary, skipHint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &PrivateServer{t: t, bin: bin, dir: t.TempDir(), addr: addr, user: "u" + randomHex(9), pass: randomHex(20)}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Options returns Options for the server, without a bucket.
func (s *PrivateServer) Options() s3.Options {
	return s3.Options{Endpoint: s.addr, AccessKey: s.user, SecretKey: s.pass}
}

// Addr returns the server's "127.0.0.1:port".
func (s *PrivateServer) Addr() string { return s.addr }

// Start starts the server if it is not running, on the same port and data
// directory as before, and waits until it is live.
func (s *PrivateServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "minio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	_, port, _ := net.SplitHostPort(s.addr)
	console, err := testenv.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr,
		"--console-address", "127.0.0.1:"+strconv.Itoa(console), filepath.Join(s.dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.user, "MINIO_ROOT_PASSWORD="+s.pass,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=on")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start MinIO: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for !live(s.addr) {
		if time.Now().After(deadline) {
			s.t.Fatalf("MinIO on port %s not live after 30s; see %s", port, filepath.Join(s.dir, "minio.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server, if running, and waits for it to exit.
func (s *PrivateServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// live reports whether MinIO answers its liveness probe and has finished
// starting: "live" answers before buckets and IAM are ready, "cluster" after.
func live(addr string) bool {
	c := http.Client{Timeout: time.Second}
	for _, probe := range []string{"live", "cluster"} {
		resp, err := c.Get(fmt.Sprintf("http://%s/minio/health/%s", addr, probe))
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}
