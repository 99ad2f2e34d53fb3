package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/internal/testenv"
)

// resumeTarget is a repository the resumable-backup test writes to, seen
// through the strata binary's environment, with the bytes uploaded to it so
// far and whether a checkpoint of a stream exists.
type resumeTarget struct {
	env        []string
	uploaded   func() int64
	checkpoint func(stream string) bool
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func dirHasCheckpoint(dir, stream string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "checkpoints", stream, "@*"))
	return len(m) > 0
}

// killAndResume backs up data as stream ref/full (the reference: a
// backup without a parent stores everything), then starts a backup of
// db/resumed, feeds it 80% of data, waits until its checkpoint covers what
// it read, kills the process with SIGKILL, and reruns the backup with the
// whole export. It returns the bytes the full backup and the rerun
// uploaded, and checks the rerun's restore.
func killAndResume(t *testing.T, bin string, tg resumeTarget, data []byte) (full, rerun int64) {
	t.Helper()
	runBin := func(stdin io.Reader, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = tg.env, stdin
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out
	}
	before := tg.uploaded()
	runBin(bytes.NewReader(data), "backup", "--stream", "ref/full", "--format", "ndjson", "--stdin")
	full = tg.uploaded() - before

	cmd := exec.Command(bin, "backup", "--stream", "db/resumed", "--format", "ndjson", "--stdin")
	cmd.Env = tg.env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cut := wholeLines(data, len(data)*8/10)
	if _, err := pipe.Write(cut); err != nil {
		t.Fatal(err)
	}
	// The input now stalls: within a checkpoint interval (5 s) the pack
	// being filled is stored as it is and a checkpoint names it.
	stalled := time.Now()
	last, lastChange := tg.uploaded(), time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint within a minute of the stall\n%s", errb.String())
		}
		time.Sleep(200 * time.Millisecond)
		if n := tg.uploaded(); n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(stalled) > 7*time.Second && time.Since(lastChange) > 2*time.Second && tg.checkpoint("db/resumed") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	pipe.Close()
	killedAt := tg.uploaded() - before - full

	before = tg.uploaded()
	runBin(bytes.NewReader(data), "backup", "--stream", "db/resumed", "--format", "ndjson", "--stdin")
	rerun = tg.uploaded() - before
	t.Logf("full backup %d bytes; killed after %d bytes (%.0f%%) with %d%% of the export read; the rerun uploaded %d bytes: %.1f%% of the full backup",
		full, killedAt, 100*float64(killedAt)/float64(full), 100*len(cut)/len(data), rerun, 100*float64(rerun)/float64(full))
	if got := runBin(nil, "restore", "--stream", "db/resumed"); !bytes.Equal(got, data) {
		t.Fatalf("restore after the resumed backup differs (%d of %d bytes)", len(got), len(data))
	}
	if float64(rerun) > 0.30*float64(full) {
		t.Errorf("the rerun uploaded %.1f%% of the full backup's bytes, want ≤ 30%%", 100*float64(rerun)/float64(full))
	}
	return full, rerun
}

// sampleExport is day 0 of the project's generator with docs documents.
func sampleExport(t *testing.T, docs int) []byte {
	t.Helper()
	g, err := sample.New(sample.Options{Docs: docs})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := g.Export(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestResumeKilledBackup: a backup killed with SIGKILL at about 80% is
// resumed by the next one, which uploads at most 30% of what a full backup
// does: to a local directory, to S3 (MinIO) and through the index server.
func TestResumeKilledBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	bin := strataBinary(t)
	data := sampleExport(t, 60000) // about 50 MB
	t.Run("local", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "repo")
		env := append(os.Environ(), "STRATA_PASSWORD=pw", "STRATA_REPO="+dir)
		c := newCLI(t)
		c.vars["STRATA_REPO"], c.vars["STRATA_PASSWORD"] = dir, "pw"
		c.ok(nil, "init")
		killAndResume(t, bin, resumeTarget{env: env, uploaded: func() int64 { return dirBytes(dir) },
			checkpoint: func(s string) bool { return dirHasCheckpoint(dir, s) }}, data)
		c.ok(nil, "check")
	})
	t.Run("s3", func(t *testing.T) {
		c, o := s3CLI(t)
		bucket := newBucketName()
		c.vars["STRATA_REPO"] = bucketURL(o, bucket)
		c.ok(nil, "init")
		o.Bucket = bucket
		mc := miniotest.Client(t, o)
		list := func(prefix string) (n int64, count int) {
			for obj := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
				if obj.Err == nil {
					n += obj.Size
					count++
				}
			}
			return n, count
		}
		env := append(os.Environ(), "STRATA_PASSWORD="+c.vars["STRATA_PASSWORD"], "STRATA_REPO="+c.vars["STRATA_REPO"],
			"AWS_ACCESS_KEY_ID="+o.AccessKey, "AWS_SECRET_ACCESS_KEY="+o.SecretKey)
		killAndResume(t, bin, resumeTarget{env: env,
			uploaded:   func() int64 { n, _ := list(""); return n },
			checkpoint: func(s string) bool { _, k := list("checkpoints/" + s + "/@"); return k > 0 }}, data)
		c.ok(nil, "check")
	})
	t.Run("server", func(t *testing.T) {
		local := newCLI(t)
		dir := local.vars["STRATA_REPO"]
		local.ok(nil, "init")
		tokens := filepath.Join(t.TempDir(), "tokens")
		ci := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "ci", "--scope", "backup:*,restore:*,read"))
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port))
		env := append(os.Environ(), "STRATA_PASSWORD="+local.vars["STRATA_PASSWORD"], "STRATA_REPO="+srv.url, "STRATA_TOKEN="+ci)
		killAndResume(t, bin, resumeTarget{env: env,
			uploaded:   func() int64 { return uploadMetric(t, srv.url, ci) },
			checkpoint: func(s string) bool { return dirHasCheckpoint(dir, s) }}, data)
		local.ok(nil, "check")
	})
}

// uploadMetric reads strata_upload_bytes_total from the server's metrics.
func uploadMetric(t *testing.T, url, token string) int64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "strata_upload_bytes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no strata_upload_bytes_total in the metrics (status %s)", resp.Status)
	return 0
}
