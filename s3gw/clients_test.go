package s3gw

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
)

// Real S3 clients against the gateway: each skips when its binary is
// absent, unless STRATA_REQUIRE_DATABASES=1 (.ci/run installs them).

// clientEnv is a clean environment for a client: its own HOME (no user
// config is read), the test user's keys, and no CA bundle override.
func clientEnv(t *testing.T, s *testServer, extra ...string) []string {
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_ACCESS_KEY_ID=" + s.access, "AWS_SECRET_ACCESS_KEY=" + s.secret,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"), "XDG_CACHE_HOME=" + filepath.Join(home, "cache")}
	return append(env, extra...)
}

func runClient(t *testing.T, env []string, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func randomFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAWSCLI(t *testing.T) {
	aws := testenv.Binary(t, "STRATA_AWS", "aws", "apt-get install awscli")
	s := startServer(t, newTestRepo(t), Options{})
	env := clientEnv(t, s)
	dir := t.TempDir()
	ep := "--endpoint-url=http://" + s.addr
	run := func(args ...string) string {
		if args[0] == "s3" && (args[1] == "cp" || args[1] == "sync" || args[1] == "rm") {
			args = append(args, "--only-show-errors")
		}
		start := time.Now()
		defer func() { t.Logf("aws %s: %v", strings.Join(args, " "), time.Since(start)) }()
		return runClient(t, env, dir, aws, append([]string{ep}, args...)...)
	}

	run("s3", "mb", "s3://cli")
	// 20 MiB: above the CLI's 8 MiB multipart threshold, so three parts.
	big := randomFile(t, filepath.Join(dir, "big.bin"), 20<<20)
	run("s3", "cp", "big.bin", "s3://cli/big.bin")
	head := run("s3api", "head-object", "--bucket", "cli", "--key", "big.bin")
	if !strings.Contains(head, `-3\"`) || !strings.Contains(head, fmt.Sprint(len(big))) {
		t.Fatalf("head-object of a multipart upload:\n%s", head)
	}
	run("s3", "cp", "s3://cli/big.bin", "back.bin")
	if got, _ := os.ReadFile(filepath.Join(dir, "back.bin")); !bytes.Equal(got, big) {
		t.Fatal("aws s3 cp round trip differs")
	}
	// sync a tree up, change one file, sync again, and back down.
	for i := range 4 {
		randomFile(t, filepath.Join(dir, "tree", fmt.Sprintf("d%d", i%2), fmt.Sprintf("f%d", i)), 1000*(i+1))
	}
	run("s3", "sync", "tree", "s3://cli/tree")
	randomFile(t, filepath.Join(dir, "tree", "d0", "f0"), 77)
	run("s3", "sync", "tree", "s3://cli/tree")
	run("s3", "sync", "s3://cli/tree", "down")
	if out, err := exec.Command("diff", "-r", filepath.Join(dir, "tree"), filepath.Join(dir, "down")).CombinedOutput(); err != nil {
		t.Fatalf("sync round trip differs: %v\n%s", err, out)
	}
	ls := run("s3api", "list-objects-v2", "--bucket", "cli", "--prefix", "tree/", "--delimiter", "/")
	if !strings.Contains(ls, `"tree/d0/"`) || !strings.Contains(ls, `"tree/d1/"`) {
		t.Fatalf("list-objects-v2 with delimiter:\n%s", ls)
	}
}

func TestRclone(t *testing.T) {
	rclone := testenv.Binary(t, "STRATA_RCLONE", "rclone", "apt-get install rclone")
	s := startServer(t, newTestRepo(t), Options{})
	env := clientEnv(t, s, "RCLONE_CONFIG_GW_TYPE=s3", "RCLONE_CONFIG_GW_PROVIDER=Other", "RCLONE_CONFIG_GW_ENDPOINT=http://"+s.addr,
		"RCLONE_CONFIG_GW_ACCESS_KEY_ID="+s.access, "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY="+s.secret, "RCLONE_CONFIG="+filepath.Join(t.TempDir(), "rclone.conf"))
	dir := t.TempDir()
	for i := range 5 {
		randomFile(t, filepath.Join(dir, "src", fmt.Sprintf("sub%d", i%2), fmt.Sprintf("file%d", i)), 5000*(i+1))
	}
	randomFile(t, filepath.Join(dir, "src", "large"), 12<<20) // multipart: the cutoff is lowered below
	runClient(t, env, dir, rclone, "mkdir", "gw:rcl")
	runClient(t, env, dir, rclone, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "src", "gw:rcl/src")
	runClient(t, env, dir, rclone, "check", "src", "gw:rcl/src")
	runClient(t, env, dir, rclone, "copy", "gw:rcl/src", "back")
	if out, err := exec.Command("diff", "-r", filepath.Join(dir, "src"), filepath.Join(dir, "back")).CombinedOutput(); err != nil {
		t.Fatalf("rclone round trip differs: %v\n%s", err, out)
	}
}

func TestRestic(t *testing.T) {
	restic := testenv.Binary(t, "STRATA_RESTIC", "restic", "apt-get install restic")
	s := startServer(t, newTestRepo(t), Options{})
	env := clientEnv(t, s, "RESTIC_PASSWORD=restic test password", "RESTIC_REPOSITORY=s3:http://"+s.addr+"/restic")
	dir := t.TempDir()
	for i := range 6 {
		randomFile(t, filepath.Join(dir, "data", fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i)), 300000*(i+1))
	}
	runClient(t, env, dir, restic, "init")
	runClient(t, env, dir, restic, "backup", "data")
	out := runClient(t, env, dir, restic, "check", "--read-data")
	if !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check:\n%s", out)
	}
	runClient(t, env, dir, restic, "restore", "latest", "--target", "restored")
	if out, err := exec.Command("diff", "-r", filepath.Join(dir, "data"), filepath.Join(dir, "restored", "data")).CombinedOutput(); err != nil {
		t.Fatalf("restic restore differs: %v\n%s", err, out)
	}
}
