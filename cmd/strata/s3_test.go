package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/s3"
)

// s3CLI is a CLI whose AWS credentials are the shared MinIO's.
func s3CLI(t *testing.T) (*cli, s3.Options) {
	o := miniotest.Shared(t)
	c := newCLI(t)
	c.vars["AWS_ACCESS_KEY_ID"], c.vars["AWS_SECRET_ACCESS_KEY"] = o.AccessKey, o.SecretKey
	delete(c.vars, "STRATA_REPO")
	return c, o
}

func bucketURL(o s3.Options, bucket string) string {
	return "s3+http://" + o.Endpoint + "/" + bucket
}

func newBucketName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "strata-cli-" + hex.EncodeToString(b)
}

// emptyBucket removes every object version the retention allows.
func emptyBucket(t *testing.T, o s3.Options, bucket string) {
	t.Helper()
	o.Bucket = bucket
	mc := miniotest.Client(t, o)
	ctx := context.Background()
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if err := mc.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID}); err != nil {
			t.Fatalf("remove %s: %v", obj.Key, err)
		}
	}
}

// TestRansomware: an attacker with the repository's own credentials tries
// to delete every version (bypassing governance) and then overwrites every
// object with junk. Compliance retention keeps the written versions, and
// strata reads them: restores stay byte-exact and check names the tampering.
func TestRansomware(t *testing.T) {
	c, o := s3CLI(t)
	bucket := newBucketName()
	url := bucketURL(o, bucket)
	c.vars["STRATA_REPO"] = url
	c.ok(nil, "init", "--data-shards", "4", "--parity-shards", "2", "--retention", "1h", "--retention-mode", "compliance")
	data := genNDJSON(20000, 5)
	c.ok(data, "backup", "--stream", "db", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0")
	c.ok([]byte(`{"seq":1,"ts":101,"op":"put","key":"zz","doc":{"_id":"zz"}}`+"\n"), "log", "--stream", "db", "--stdin")

	o.Bucket = bucket
	mc := miniotest.Client(t, o)
	ctx := context.Background()
	var keys []string
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasPrefix(obj.Key, repo.LeasesPrefix) {
			// Writer leases (FORMAT.md §15) hold no data and are replaced
			// every interval, so they carry no retention: deleting one only
			// lets another capture take the stream over.
			continue
		}
		err := mc.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true})
		if err == nil {
			t.Fatalf("the attacker deleted locked version %s of %s", obj.VersionID, obj.Key)
		}
		keys = append(keys, obj.Key)
	}
	if len(keys) < 10 {
		t.Fatalf("only %d objects in the bucket", len(keys))
	}
	for i, k := range keys {
		if i%3 == 0 { // hide it behind a delete marker
			if err := mc.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
				t.Fatalf("delete marker on %s: %v", k, err)
			}
			continue
		}
		junk := bytes.Repeat([]byte("encrypted by ransomware "), 10)
		if _, err := mc.PutObject(ctx, bucket, k, bytes.NewReader(junk), int64(len(junk)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("overwrite %s: %v", k, err)
		}
	}

	if got := c.ok(nil, "restore", "--stream", "db"); got != string(data) {
		t.Fatalf("restore after the attack: %d bytes, want %d", len(got), len(data))
	}
	if got := c.ok(nil, "restore", "--stream", "db", "--at", "101"); !strings.HasSuffix(got, `{"_id":"zz"}`+"\n") {
		t.Fatal("point-in-time restore after the attack lost the logged event")
	}
	code, out, errs := c.run(nil, "check", "--read-data")
	if code != exitDamage || !strings.Contains(out, "TAMPERED") {
		t.Fatalf("check after the attack: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestStoreLoss: one repository over two buckets and a local directory
// (4+2 shards: two per store) survives losing any one whole store; check
// --repair refills it, after which another store can go.
func TestStoreLoss(t *testing.T) {
	c, o := s3CLI(t)
	b1, b2 := newBucketName(), newBucketName()
	dir := filepath.Join(t.TempDir(), "local-store")
	c.vars["STRATA_REPO"] = bucketURL(o, b1)
	// 8+2 over three stores could lose 4 shards of a pack: refused.
	if code, _, errs := c.run(nil, "init", "--store", bucketURL(o, b2), "--store", dir); code != exitUsage || !strings.Contains(errs, "unsafe shard placement") {
		t.Fatalf("unsafe placement: exit %d, %s", code, errs)
	}
	c.ok(nil, "init", "--store", bucketURL(o, b2), "--store", dir, "--data-shards", "4", "--parity-shards", "2")
	data := genNDJSON(30000, 6)
	c.ok(data, "backup", "--stream", "db", "--format", "ndjson", "--stdin")

	emptyBucket(t, o, b1)
	// The repository opens through a surviving store and restores byte-exact.
	c.vars["STRATA_REPO"] = dir
	if got := c.ok(nil, "restore", "--stream", "db"); got != string(data) {
		t.Fatal("restore after losing bucket 1 differs")
	}
	if out := c.ok(nil, "check", "--read-data", "--repair"); !strings.Contains(out, "repaired") {
		t.Fatalf("repair did not refill the lost store:\n%s", out)
	}
	c.ok(nil, "check", "--read-data")
	// Now lose the local directory.
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	c.vars["STRATA_REPO"] = bucketURL(o, b2)
	if got := c.ok(nil, "restore", "--stream", "db"); got != string(data) {
		t.Fatal("restore after losing the local store differs")
	}
	c.ok(nil, "check", "--read-data", "--repair")
	c.ok(nil, "check", "--read-data")
}

// TestS3Errors: wrong credentials, a missing bucket and an unreachable
// endpoint each give a clear error.
func TestS3Errors(t *testing.T) {
	c, o := s3CLI(t)
	url := bucketURL(o, newBucketName())
	c.ok(nil, "init", "--repo", url)
	c.vars["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
	if code, _, errs := c.run(nil, "snapshots", "--repo", url); code == 0 || !strings.Contains(errs, "access denied") {
		t.Errorf("wrong credentials: exit %d, %s", code, errs)
	}
	c.vars["AWS_SECRET_ACCESS_KEY"] = o.SecretKey
	if code, _, errs := c.run(nil, "snapshots", "--repo", bucketURL(o, "strata-no-such-bucket")); code == 0 || !strings.Contains(errs, "bucket not found") {
		t.Errorf("missing bucket: exit %d, %s", code, errs)
	}
	start := time.Now()
	if code, _, errs := c.run(nil, "snapshots", "--repo", "s3+http://127.0.0.1:1/bucket"); code == 0 || !strings.Contains(errs, "127.0.0.1:1") {
		t.Errorf("unreachable endpoint: exit %d, %s", code, errs)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("an unreachable endpoint took %s to report", d)
	}
	if code, _, errs := c.run(nil, "init", "--repo", t.TempDir(), "--retention", "1h"); code != exitUsage || !strings.Contains(errs, "retention needs s3") {
		t.Errorf("retention on a local directory: exit %d, %s", code, errs)
	}
}

// TestMinIOStoppedMidBackup: the server dies during a backup; the backup
// fails clearly, the repository stays consistent, and the next backup
// succeeds and reuses what was uploaded.
func TestMinIOStoppedMidBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private MinIO")
	}
	srv := miniotest.StartServer(t)
	o := srv.Options()
	c := newCLI(t)
	c.vars["AWS_ACCESS_KEY_ID"], c.vars["AWS_SECRET_ACCESS_KEY"] = o.AccessKey, o.SecretKey
	c.vars["STRATA_REPO"] = bucketURL(o, newBucketName())
	c.ok(nil, "init", "--data-shards", "4", "--parity-shards", "2")
	data := genNDJSON(1000000, 9) // about 40 MB: the first 4 MiB pack forms after about 12 MB
	bucket := strings.TrimPrefix(c.vars["STRATA_REPO"], "s3+http://"+o.Endpoint+"/")
	o.Bucket = bucket
	mc := miniotest.Client(t, o)
	// Feed the export through a pipe a MiB at a time until packs have
	// landed, stop the server, then feed the rest: the backup cannot
	// finish before the server is gone.
	pr, pw := io.Pipe()
	var out, errb bytes.Buffer
	env := &environment{getenv: func(k string) string { return c.vars[k] }, stdin: pr, stdout: &out, stderr: &errb, host: "testhost", user: "tester"}
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"backup", "--stream", "db", "--format", "ndjson", "--stdin"}, env)
	}()
	fed := 0
	for landed := false; !landed; {
		if fed == len(data) {
			t.Fatal("the whole export was read before any pack landed")
		}
		n := min(1<<20, len(data)-fed)
		pw.Write(data[fed : fed+n])
		fed += n
		// Uploads run behind the reader: give a pack a moment to land
		// before feeding more.
		for try := 0; try < 10 && !landed; try++ {
			for obj := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "data/", Recursive: true}) {
				landed = landed || obj.Err == nil
			}
			if !landed {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	srv.Stop()
	go func() { pw.Write(data[fed:]); pw.Close() }()
	code := <-done
	pr.Close()
	errs := errb.String()
	if code == 0 {
		t.Fatal("the backup succeeded with the server stopped halfway")
	}
	if !strings.Contains(errs, "backup failed") && !strings.Contains(errs, "connect") && !strings.Contains(errs, "refused") {
		t.Errorf("backup with the server gone: %s", errs)
	}
	srv.Start()
	c.ok(nil, "check")
	c.ok(data, "backup", "--stream", "db", "--format", "ndjson", "--stdin")
	if got := c.ok(nil, "restore", "--stream", "db"); got != string(data) {
		t.Fatal("restore after the interrupted backup differs")
	}
}
