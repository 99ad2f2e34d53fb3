package s3gw

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
)

// An upload of S3's maximum of 10,000 parts: every part is kept (also
// across a restart), ListParts pages through all of them over HTTP,
// completing with undersized parts is refused with nothing visible, and a
// part numbered 10,000 completes into an object.
func TestServerTenThousandParts(t *testing.T) {
	r := newTestRepo(t)
	body := func(n int) string { return fmt.Sprintf("part %05d", n) }
	etag := func(n int) string { sum := md5.Sum([]byte(body(n))); return hex.EncodeToString(sum[:]) }
	var id string
	t.Run("upload", func(t *testing.T) {
		s := startServer(t, r, Options{})
		c := s.client(t, s.access, s.secret)
		ctx := t.Context()
		if err := c.MakeBucket(ctx, "many", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		core := minio.Core{Client: c}
		var err error
		if id, err = core.NewMultipartUpload(ctx, "many", "big", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		// The parts go through the gateway's own API (10,000 signed HTTP
		// requests would make this test slow); the first and the last,
		// and the out-of-range ones, go over HTTP.
		for _, n := range []int{1, MaxParts} {
			p, err := core.PutObjectPart(ctx, "many", "big", id, n, strings.NewReader(body(n)), int64(len(body(n))), minio.PutObjectPartOptions{})
			if err != nil || strings.Trim(p.ETag, `"`) != etag(n) {
				t.Fatalf("part %d over HTTP: %+v %v", n, p, err)
			}
		}
		for _, n := range []int{0, MaxParts + 1} {
			if _, err := core.PutObjectPart(ctx, "many", "big", id, n, strings.NewReader("x"), 1, minio.PutObjectPartOptions{}); s3code(err) != "InvalidArgument" {
				t.Fatalf("part %d: %v", n, err)
			}
		}
		var g errgroup.Group
		g.SetLimit(8)
		for n := 2; n < MaxParts; n++ {
			g.Go(func() error {
				e, err := s.g.UploadPart(ctx, "many", "big", id, n, strings.NewReader(body(n)), nil)
				if err == nil && e != etag(n) {
					err = fmt.Errorf("part %d: etag %s", n, e)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("after restart", func(t *testing.T) {
		s := startServer(t, r, Options{})
		core := minio.Core{Client: s.client(t, s.access, s.secret)}
		ctx := t.Context()
		seen, marker, pages := 0, 0, 0
		for {
			res, err := core.ListObjectParts(ctx, "many", "big", id, marker, 1000)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, p := range res.ObjectParts {
				seen++
				if p.PartNumber != seen || strings.Trim(p.ETag, `"`) != etag(seen) || p.Size != int64(len(body(seen))) {
					t.Fatalf("part listed as %d (%s, %d bytes), want %d", p.PartNumber, p.ETag, p.Size, seen)
				}
			}
			if !res.IsTruncated {
				break
			}
			marker = res.NextPartNumberMarker
		}
		if seen != MaxParts || pages != MaxParts/1000 {
			t.Fatalf("listed %d parts in %d pages", seen, pages)
		}
		all := make([]minio.CompletePart, MaxParts)
		for i := range all {
			all[i] = minio.CompletePart{PartNumber: i + 1, ETag: etag(i + 1)}
		}
		if _, err := core.CompleteMultipartUpload(ctx, "many", "big", id, all, minio.PutObjectOptions{}); s3code(err) != "EntityTooSmall" {
			t.Fatalf("complete with 9,999 undersized parts: %v", err)
		}
		if _, err := core.StatObject(ctx, "many", "big", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
			t.Fatalf("object visible after a refused complete: %v", err)
		}
		// The last part alone may be any size.
		if _, err := core.CompleteMultipartUpload(ctx, "many", "big", id, all[MaxParts-1:], minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		obj, err := core.Client.GetObject(ctx, "many", "big", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(obj); err != nil || string(b) != body(MaxParts) {
			t.Fatalf("object of part 10,000: %q %v", b, err)
		}
		if _, err := core.ListObjectParts(ctx, "many", "big", id, 0, 1000); s3code(err) != "NoSuchUpload" {
			t.Fatalf("parts of a completed upload: %v", err)
		}
	})
}

// ListMultipartUploads pages through many uploads of one key and of
// several keys without repeating or missing one.
func TestServerListUploadsPages(t *testing.T) {
	s := startServer(t, newTestRepo(t), Options{})
	core := minio.Core{Client: s.client(t, s.access, s.secret)}
	ctx := t.Context()
	if err := core.Client.MakeBucket(ctx, "uploads", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, key := range []string{"a", "b", "b", "b", "b", "b", "c", "d", "d"} {
		id, err := core.NewMultipartUpload(ctx, "uploads", key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[key+"/"+id] = true
	}
	got := map[string]bool{}
	keyMarker, idMarker := "", ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("listing does not end")
		}
		res, err := core.ListMultipartUploads(ctx, "uploads", "", keyMarker, idMarker, "", 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range res.Uploads {
			k := u.Key + "/" + u.UploadID
			if got[k] || !want[k] {
				t.Fatalf("upload %s listed twice or unknown", k)
			}
			got[k] = true
		}
		if !res.IsTruncated {
			break
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d of %d uploads", len(got), len(want))
	}
}
