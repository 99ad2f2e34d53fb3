package s3gw

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-backup/strata/internal/testenv"
)

func sdkClient(s *testServer, scheme string, hc *http.Client) *s3.Client {
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: s.access, SecretAccessKey: s.secret}, nil
	})
	o := s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(scheme + "://" + s.addr), UsePathStyle: true}
	if hc != nil {
		o.HTTPClient = hc
	}
	return s3.New(o)
}

// aws-sdk-go-v2: its default request checksums (CRC32 in an aws-chunked
// trailer on newer versions), versions, conditional PUT.
func TestServerAWSSDK(t *testing.T) {
	s := startServer(t, newTestRepo(t), Options{})
	c := sdkClient(s, "http", nil)
	ctx := t.Context()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sdk")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("sdk"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, body := range []string{"one", "two"} {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk"), Key: aws.String("k"), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, aws.ToString(out.VersionId))
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk"), Key: aws.String("k"), VersionId: aws.String(versions[0])})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(got.Body); string(b) != "one" {
		t.Fatalf("first version reads %q", b)
	}
	lv, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("sdk")})
	if err != nil || len(lv.Versions) != 2 || !aws.ToBool(lv.Versions[0].IsLatest) || aws.ToString(lv.Versions[0].VersionId) != versions[1] {
		t.Fatalf("versions: %+v %v", lv.Versions, err)
	}
	// If-None-Match: * on an existing key is refused and stores nothing.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk"), Key: aws.String("k"), Body: strings.NewReader("three"), IfNoneMatch: aws.String("*")})
	if err == nil || !strings.Contains(err.Error(), "PreconditionFailed") {
		t.Fatalf("If-None-Match: * on an existing key: %v", err)
	}
	lv, _ = c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("sdk")})
	if len(lv.Versions) != 2 {
		t.Fatalf("a refused conditional PUT added a version: %d", len(lv.Versions))
	}
	h, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nope")})
	if err == nil {
		t.Fatalf("head of a missing bucket: %+v", h)
	}
}

// TLS with a test certificate, as pgBackRest uses it (verification off).
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestCert(t, cert, key)
	serverMu.Lock()
	defer serverMu.Unlock()
	r := newTestRepo(t)
	g, err := Open(t.Context(), r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	users := &UserTable{}
	access, secret, _ := users.Add(r, "tls", "*", false)
	port, _ := testenv.FreePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := NewServer(g, users, ServerOptions{Listen: addr, TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	defer func() { srv.Shutdown(); <-done }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("no listener")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Secure: true, Transport: tr, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.MakeBucket(ctx, "tls", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("tls "), 1000)
	if _, err := c.PutObject(ctx, "tls", "k", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, _ := c.GetObject(ctx, "tls", "k", minio.GetObjectOptions{})
	if b, err := io.ReadAll(obj); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("over TLS: %v", err)
	}
	// Plain HTTP to the TLS port gets nothing stored.
	resp, err := http.Get("http://" + addr + "/tls/k")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served an object on the TLS port")
		}
	}
}

func writeTestCert(t *testing.T, certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
