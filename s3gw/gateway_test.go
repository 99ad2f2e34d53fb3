package s3gw

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

var testPassword = []byte("s3gw test password")

func newTestRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), testPassword, repo.InitOptions{DataShards: 2, ParityShards: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readAll(t *testing.T, g *Gateway, bucket, key string) []byte {
	t.Helper()
	oi, err := g.Stat(bucket, key, "")
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	rc := g.Read(t.Context(), oi.Record, 0, -1)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A clock that moves one millisecond per call, so event times differ.
func stepClock(start time.Time) func() time.Time {
	t := start
	return func() time.Time { t = t.Add(time.Millisecond); return t }
}

func TestGatewayPutGetListReplayAt(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := Open(ctx, r, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "logs", "AK", nil); err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "logs", "AK", nil); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("second create: %v", err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB, several chunks
	if _, err := g.Put(ctx, "logs", "a/big.bin", bytes.NewReader(big), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	oi, err := g.Put(ctx, "logs", "a/x.ndjson", strings.NewReader("{\"a\":1}\n"), PutOptions{ContentType: "application/x-ndjson", Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := oi.Record.ETag, fmt.Sprintf("%x", md5.Sum([]byte("{\"a\":1}\n"))); got != want {
		t.Fatalf("etag %s, want %s", got, want)
	}
	before := clock()
	if _, err := g.Put(ctx, "logs", "b", strings.NewReader("b1"), PutOptions{ContentMD5: []byte("wrong digest len")}); !errors.Is(err, ErrBadDigest) {
		t.Fatalf("bad digest: %v", err)
	}
	if _, err := g.Stat("logs", "b", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("object stored despite bad digest: %v", err)
	}
	if _, err := g.Put(ctx, "logs", "b", strings.NewReader("b1"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Delete(ctx, "logs", "a/x.ndjson", "", false); err != nil {
		t.Fatal(err)
	}
	// Range read across chunk boundaries.
	oi, _ = g.Stat("logs", "a/big.bin", "")
	rc := g.Read(ctx, oi.Record, 1_000_001, 2_000_000)
	part, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(part, big[1_000_001:3_000_001]) {
		t.Fatalf("range read: %v (%d bytes)", err, len(part))
	}
	l, err := g.List("logs", ListOptions{Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Objects) != 1 || l.Objects[0].Key != "b" || len(l.CommonPrefixes) != 1 || l.CommonPrefixes[0] != "a/" {
		t.Fatalf("list: %+v", l)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart rebuilds the same table from the repository.
	g2, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g2, "logs", "a/big.bin"); !bytes.Equal(got, big) {
		t.Fatal("big object differs after replay")
	}
	if _, err := g2.Stat("logs", "a/x.ndjson", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("deleted key after replay: %v", err)
	}
	// The view at an earlier instant still has the deleted key and not the later one.
	g3, err := Open(ctx, r, Options{At: before})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g3, "logs", "a/x.ndjson"); string(got) != "{\"a\":1}\n" {
		t.Fatalf("at view: %q", got)
	}
	if _, err := g3.Stat("logs", "b", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("key written after At is visible: %v", err)
	}
	if _, err := g3.Put(ctx, "logs", "c", strings.NewReader("c"), PutOptions{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to at view: %v", err)
	}
}

func TestGatewayMultipartAndVersions(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	g, err := Open(ctx, r, Options{Now: stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "ver", "AK", nil); err != nil {
		t.Fatal(err)
	}
	if err := g.SetBucketConfig(ctx, "ver", func(b *BucketRecord) error { b.Versioning = "Enabled"; return nil }); err != nil {
		t.Fatal(err)
	}
	p1 := bytes.Repeat([]byte{'x'}, MinPartSize)
	id, err := g.CreateUpload("ver", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.UploadPart(ctx, "ver", "k", id, 0, bytes.NewReader(p1), nil); !errors.Is(err, ErrInvalidPartNum) {
		t.Fatalf("part 0: %v", err)
	}
	e1, err := g.UploadPart(ctx, "ver", "k", id, 1, bytes.NewReader(p1), nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := g.UploadPart(ctx, "ver", "k", id, 2, strings.NewReader("tail"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.CompleteUpload(ctx, "ver", "k", id, []CompletePart{{2, e2}, {1, e1}}); !errors.Is(err, ErrInvalidPartOrder) {
		t.Fatalf("misordered: %v", err)
	}
	if _, err := g.CompleteUpload(ctx, "ver", "k", id, []CompletePart{{1, e1}, {3, e2}}); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("missing part: %v", err)
	}
	oi, err := g.CompleteUpload(ctx, "ver", "k", id, []CompletePart{{1, `"` + e1 + `"`}, {2, e2}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(oi.Record.ETag, "-2") {
		t.Fatalf("multipart etag %s", oi.Record.ETag)
	}
	if got := readAll(t, g, "ver", "k"); !bytes.Equal(got, append(p1, "tail"...)) {
		t.Fatal("multipart content differs")
	}
	v1 := oi.VersionID
	if _, err := g.Put(ctx, "ver", "k", strings.NewReader("second"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, marker, err := g.Delete(ctx, "ver", "k", "", false); err != nil || !marker {
		t.Fatalf("delete in versioned bucket: marker %v, %v", marker, err)
	}
	vl, err := g.ListVersions("ver", VersionListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vl.Versions) != 3 || !vl.Versions[0].DeleteMarker || vl.Versions[2].VersionID != v1 {
		t.Fatalf("versions: %+v", vl.Versions)
	}
	old, err := g.Stat("ver", "k", v1)
	if err != nil || old.Record.Size != MinPartSize+4 {
		t.Fatalf("old version: %+v %v", old, err)
	}
	if err := g.DeleteBucket(ctx, "ver"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete non-empty bucket: %v", err)
	}
}
