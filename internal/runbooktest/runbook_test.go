package runbooktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/repo"
)

// runbookIDs are the runbooks docs/runbooks.md must hold, each with a test.
var runbookIDs = []string{"lost-node", "bad-deploy", "lost-store", "ransomware", "corrupted-log"}

// parseRunbooks returns the ```sh blocks of each runbook of doc, by ID. A
// ```sh block outside a runbook, a runbook marker not right under its
// heading, or an unclosed block is an error.
func parseRunbooks(doc []byte) (map[string][]string, error) {
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	id, afterHeading, in, isSh := "", false, false, false
	var cur strings.Builder
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case in && strings.HasPrefix(line, "```"):
			if isSh {
				out[id] = append(out[id], cur.String())
			}
			cur.Reset()
			in = false
		case in:
			cur.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			id, afterHeading = "", true
			continue
		case strings.HasPrefix(line, "<!-- runbook:"):
			if !afterHeading {
				return nil, fmt.Errorf("line %d: a runbook marker must follow its ## heading", n)
			}
			id = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "<!-- runbook:"), "-->"))
			if _, dup := out[id]; dup {
				return nil, fmt.Errorf("line %d: runbook %q twice", n, id)
			}
			out[id] = nil
		case strings.HasPrefix(line, "```"):
			in, isSh = true, strings.TrimSpace(strings.TrimPrefix(line, "```")) == "sh"
			if isSh && id == "" {
				return nil, fmt.Errorf("line %d: a sh block outside a runbook (mark shown-only commands ```text)", n)
			}
		}
		afterHeading = false
	}
	if in {
		return nil, fmt.Errorf("an unclosed code block")
	}
	return out, sc.Err()
}

func runbooks(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := parseRunbooks(doc)
	if err != nil {
		t.Fatalf("docs/runbooks.md: %v", err)
	}
	return rb
}

// TestRunbooksAreTested: docs/runbooks.md holds exactly the runbooks this
// package tests, each with commands, so none goes untested.
func TestRunbooksAreTested(t *testing.T) {
	rb := runbooks(t)
	if got := slices.Sorted(maps.Keys(rb)); !slices.Equal(got, slices.Sorted(slices.Values(runbookIDs))) {
		t.Fatalf("docs/runbooks.md has runbooks %v; the tests cover %v", got, runbookIDs)
	}
	for id, blocks := range rb {
		if len(blocks) == 0 {
			t.Errorf("runbook %s has no sh block", id)
		}
	}
	if _, err := parseRunbooks([]byte("## x\n```sh\necho\n```\n")); err == nil {
		t.Error("a sh block outside a runbook was accepted")
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// strataBin builds strata once for the package's tests.
func strataBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "runbooktest-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "strata"), filepath.Join(testenv.RepoRoot(t), "cmd", "strata")).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// harness is one runbook's world: the strata binary on PATH, a repository
// password, a working directory, and the variables the runbook reads.
type harness struct {
	t    *testing.T
	dir  string   // the runbook's working directory
	vars []string // NAME=value, for setup commands and the runbook
}

func newHarness(t *testing.T, vars ...string) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("builds strata and runs a runbook against real servers; not in -short")
	}
	bin := strataBin(t)
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	tmp := t.TempDir()
	pw := filepath.Join(tmp, "repo.pass")
	if err := os.WriteFile(pw, []byte("runbook-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: filepath.Join(tmp, "work")}
	if err := os.Mkdir(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") && !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") {
			h.vars = append(h.vars, kv)
		}
	}
	h.vars = append(h.vars, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"STRATA_PASSWORD_FILE="+pw, "STRATA_REPO="+filepath.Join(tmp, "repo"))
	h.vars = append(h.vars, vars...)
	return h
}

func (h *harness) set(kv ...string) { h.vars = append(h.vars, kv...) }

func (h *harness) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "strata"), args...)
	cmd.Env, cmd.Dir = h.vars, h.dir
	return cmd
}

// strata runs a setup command and returns its stdout.
func (h *harness) strata(stdin []byte, args ...string) string {
	h.t.Helper()
	cmd := h.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// capture starts `strata log` in the background; the returned function
// ends it with SIGTERM, as systemd stops the unit.
func (h *harness) capture(args ...string) (stop func()) {
	h.t.Helper()
	cmd := h.command(append([]string{"log"}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			h.t.Errorf("capture after SIGTERM: %v\n%s", err, errb.String())
		}
	}
	h.t.Cleanup(stop)
	return stop
}

// runbook runs a runbook's blocks in order in one bash, with -euo pipefail,
// and returns what it printed.
func (h *harness) runbook(id string) string {
	h.t.Helper()
	blocks := runbooks(h.t)[id]
	if len(blocks) == 0 {
		h.t.Fatalf("no runbook %s", id)
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail\nset -x\n"+strings.Join(blocks, ""))
	cmd.Env, cmd.Dir = h.vars, h.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("runbook %s failed: %v\n%s", id, err, out)
	}
	h.t.Logf("runbook %s:\n%s", id, out)
	return string(out)
}

func (h *harness) file(name string) []byte {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// waitBase waits for a capture's first base snapshot of stream, so the
// writes that follow are logged changes, as on a capture long running.
func (h *harness) waitBase(stream string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := h.command("snapshots", "--stream", stream, "--json").Output()
		var snaps []any
		if err == nil && json.Unmarshal(out, &snaps) == nil && len(snaps) > 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no base snapshot of %s after 30s", stream)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loggedThrough returns the end position of the stream's last window (0 for none).
func (h *harness) loggedThrough(stream string) uint64 {
	h.t.Helper()
	var cov struct {
		Windows []struct {
			To uint64 `json:"to_position"`
		}
	}
	if err := json.Unmarshal([]byte(h.strata(nil, "coverage", "--stream", stream, "--json")), &cov); err != nil {
		h.t.Fatal(err)
	}
	if len(cov.Windows) == 0 {
		return 0
	}
	return cov.Windows[len(cov.Windows)-1].To
}

// TestRunbookLostNode: a Redis node captured continuously is lost; the
// runbook restores its newest state into a fresh server.
func TestRunbookLostNode(t *testing.T) {
	h := newHarness(t, "STREAM=cache/main")
	src := redistest.Start(t, redistest.Options{})
	sc := src.Client(t)
	h.strata(nil, "init")
	stop := h.capture("--stream", "cache/main", "--source", "redis://"+src.Addr, "--segment-interval", "200ms")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sc.Info("replication")["slave0"], "state=online") {
		if time.Now().After(deadline) {
			t.Fatal("the capture never came online")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitBase("cache/main")
	for i := range 200 {
		sc.Must("SET", fmt.Sprint("session:", i), fmt.Sprint("v", i))
		sc.Must("HINCRBY", "stats", fmt.Sprint(i%9), i)
		if i%10 == 0 {
			sc.Must("DEL", fmt.Sprint("session:", i/2))
		}
	}
	sc.Must("SELECT", 3)
	sc.Must("RPUSH", "queue", "a", "b", "c")
	sc.Must("SELECT", 0)
	sc.WaitReplicas(20 * time.Second) // acknowledged only once sealed in the repository
	want := sc.State()
	stop()
	src.Stop() // the node is lost

	fresh := redistest.Start(t, redistest.Options{})
	h.set("NEW_NODE=redis://" + fresh.Addr)
	h.runbook("lost-node")
	if got := fresh.Client(t).State(); got != want {
		t.Fatalf("the new node after the runbook:\n got %s\nwant %s", got, want)
	}
}

// TestRunbookBadDeploy: a deploy overwrites and deletes etcd keys; the
// runbook restores the cluster in place to just before it, leaving a
// rollback point of the bad state.
func TestRunbookBadDeploy(t *testing.T) {
	h := newHarness(t, "STREAM=config/app")
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := t.Context()
	h.strata(nil, "init")
	stop := h.capture("--stream", "config/app", "--source", srv.URL, "--segment-interval", "200ms")
	waitLogged := func() {
		rev := uint64(srv.Revision(t))
		deadline := time.Now().Add(20 * time.Second)
		for h.loggedThrough("config/app") < rev {
			if time.Now().After(deadline) {
				t.Fatalf("the capture did not store revision %d", rev)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	h.waitBase("config/app")
	for i := range 40 {
		if _, err := cli.Put(ctx, fmt.Sprintf("app/flag%02d", i), fmt.Sprint("on-", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitLogged()
	want, _ := srv.Dump(t)
	// The deploy begins in a later second than the last good write.
	time.Sleep(2500 * time.Millisecond)
	deployAt := time.Now().UTC().Format(time.RFC3339)
	for i := range 40 {
		var err error
		switch i % 3 {
		case 0:
			_, err = cli.Delete(ctx, fmt.Sprintf("app/flag%02d", i))
		case 1:
			_, err = cli.Put(ctx, fmt.Sprintf("app/flag%02d", i), "broken")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "app/migrated", "v2"); err != nil {
		t.Fatal(err)
	}
	waitLogged()
	stop()
	bad, _ := srv.Dump(t)

	h.set("TARGET="+srv.URL, "DEPLOY_AT="+deployAt)
	h.runbook("bad-deploy")
	if got, _ := srv.Dump(t); !maps.Equal(got, want) {
		t.Fatalf("after the runbook: %v\nwant %v", got, want)
	}
	undo := strings.TrimSpace(string(h.file("undo.sh")))
	if !strings.HasPrefix(undo, "strata restore ") || !strings.Contains(undo, "--stream config/app.rollback.") {
		t.Fatalf("undo.sh holds %q", undo)
	}
	// The printed command really undoes the restore.
	cmd := exec.Command("bash", "undo.sh")
	cmd.Env, cmd.Dir = h.vars, h.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash undo.sh: %v\n%s", err, out)
	}
	if got, _ := srv.Dump(t); !maps.Equal(got, bad) {
		t.Fatalf("after undo.sh: %v\nwant %v", got, bad)
	}
}

// TestRunbookLostStore: one of two stores of a repository is lost; the
// runbook restores through the other, then rebuilds the lost one.
func TestRunbookLostStore(t *testing.T) {
	h := newHarness(t, "STREAM=shop/users")
	a, b := filepath.Join(t.TempDir(), "store-eu"), filepath.Join(t.TempDir(), "store-us")
	h.set("SURVIVING_STORE="+a, "LOST_STORE="+b)
	h.strata(nil, "init", "--repo", a, "--store", b, "--data-shards", "2", "--parity-shards", "2")
	export := []byte(h.strata(nil, "sample", "--docs", "3000"))
	h.strata(export, "backup", "--repo", a, "--stream", "shop/users", "--format", "ndjson", "--stdin")
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	h.runbook("lost-store")
	if got := h.file("restored.ndjson"); !bytes.Equal(got, export) {
		t.Fatalf("restored %d bytes, want the %d of the export", len(got), len(export))
	}
	// The rebuilt store alone opens the repository and restores it.
	if got := h.strata(nil, "restore", "--repo", b, "--stream", "shop/users"); got != string(export) {
		t.Fatal("the rebuilt store does not restore the export")
	}
}

// TestRunbookRansomware: an attacker with the storage credentials shadows
// every pack shard with junk and hides the snapshot manifests and index
// files behind delete markers; Object Lock keeps the versions Strata wrote,
// and the runbook restores from them.
func TestRunbookRansomware(t *testing.T) {
	o := miniotest.Bucket(t, true)
	h := newHarness(t, "STREAM=shop/users",
		"STRATA_REPO="+o.String(), "AWS_ACCESS_KEY_ID="+o.AccessKey, "AWS_SECRET_ACCESS_KEY="+o.SecretKey)
	// governance, not compliance, only so the test can remove its bucket.
	h.strata(nil, "init", "--retention", "1h", "--retention-mode", "governance", "--data-shards", "2", "--parity-shards", "1")
	export := []byte(h.strata(nil, "sample", "--docs", "3000"))
	h.strata(export, "backup", "--stream", "shop/users", "--format", "ndjson", "--stdin")

	c := miniotest.Client(t, o)
	ctx := t.Context()
	var names []string
	for obj := range c.ListObjectsIter(ctx, o.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		switch {
		case strings.HasPrefix(obj.Key, repo.DataPrefix):
			if _, err := c.PutObject(ctx, o.Bucket, obj.Key, bytes.NewReader([]byte("encrypted by the attacker")), -1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(obj.Key, repo.SnapshotsPrefix), strings.HasPrefix(obj.Key, repo.IndexPrefix):
			if err := c.RemoveObject(ctx, o.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			// Removing the version itself is what Object Lock refuses.
			if err := c.RemoveObject(ctx, o.Bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID}); err == nil {
				t.Fatalf("the bucket let %s's locked version be removed", obj.Key)
			}
		default:
			continue
		}
		names = append(names, obj.Key)
	}
	if len(names) < 3 {
		t.Fatalf("the attack touched only %v", names)
	}

	h.runbook("ransomware")
	if got := h.file("restored.ndjson"); !bytes.Equal(got, export) {
		t.Fatalf("restored %d bytes, want the %d of the export", len(got), len(export))
	}
	var damage struct{ Problems []string }
	if err := json.Unmarshal(h.file("damage.json"), &damage); err != nil {
		t.Fatal(err)
	}
	if len(damage.Problems) == 0 {
		t.Fatal("check named no tampered object")
	}
}

// TestRunbookCorruptedLog: a segment manifest of an ndjson stream's log is
// altered (no parity can restore it) and a pack shard is damaged (parity
// can); the runbook repairs the shard and restores on both sides of the
// lost segment, each state equal to that of the undamaged repository.
func TestRunbookCorruptedLog(t *testing.T) {
	const docs = "2000"
	h := newHarness(t, "STREAM=pitr/users")
	repoDir := filepath.Join(t.TempDir(), "repo")
	h.set("STRATA_REPO=" + repoDir)
	h.strata(nil, "init")
	day0 := []byte(h.strata(nil, "sample", "--docs", docs, "--day", "0"))
	h.strata(day0, "backup", "--stream", "pitr/users", "--format", "ndjson", "--time", "2026-01-01T00:00:00Z", "--position", "0", "--stdin")
	day2 := []byte(h.strata(nil, "sample", "--docs", docs, "--day", "2"))
	pos2 := strings.TrimSpace(h.strata(nil, "sample", "--docs", docs, "--day", "2", "--position"))
	h.strata(day2, "backup", "--stream", "pitr/users", "--format", "ndjson", "--time", "2026-01-03T00:00:00Z", "--position", pos2, "--stdin")
	var events []byte
	for _, d := range []string{"1", "2", "3"} {
		events = append(events, h.strata(nil, "sample", "--docs", docs, "--day", d, "--changes")...)
	}
	h.strata(events, "log", "--stream", "pitr/users", "--stdin", "--segment-bytes", "4096")

	pristine := filepath.Join(t.TempDir(), "pristine")
	if out, err := exec.Command("cp", "-a", repoDir, pristine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	segs, err := filepath.Glob(filepath.Join(repoDir, "logs", "pitr", "users", "@*"))
	if err != nil || len(segs) < 4 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	sort.Strings(segs)
	seg := segs[1] // inside day 1: before the day-2 snapshot
	var first, last uint64
	if _, err := fmt.Sscanf(filepath.Base(seg), "@%020d-%020d.", &first, &last); err != nil {
		t.Fatalf("segment name %s: %v", seg, err)
	}
	flip := func(name string, at int64) {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, at); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x55
		if _, err := f.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}
	// The manifest and its second copy (FORMAT.md §25) are both damaged:
	// one damaged copy alone is healed by the repair, and the runbook is for
	// the log that cannot be.
	flip(seg, 20)
	rel, err := filepath.Rel(repoDir, seg)
	if err != nil {
		t.Fatal(err)
	}
	flip(filepath.Join(repoDir, "copies", rel), 20)
	shards, err := filepath.Glob(filepath.Join(repoDir, "data", "*", "*"))
	if err != nil || len(shards) == 0 {
		t.Fatalf("shards %v, %v", shards, err)
	}
	flip(shards[0], 64)

	out := h.runbook("corrupted-log")
	if !strings.Contains(out, "rebuilt shards") {
		t.Errorf("the repair rebuilt no shard")
	}
	if got := strings.TrimSpace(string(h.file("damaged.txt"))); got != fmt.Sprintf("%d-%d", first, last) {
		t.Fatalf("damaged.txt %q, want the segment %d-%d", got, first, last)
	}
	good := func(args ...string) string {
		return h.strata(nil, append([]string{"restore", "--repo", pristine, "--stream", "pitr/users"}, args...)...)
	}
	if got, want := string(h.file("before-damage.ndjson")), good("--at-position", fmt.Sprint(first-1)); got != want {
		t.Fatalf("before the damage: %d bytes, want %d", len(got), len(want))
	}
	if got, want := string(h.file("after-damage.ndjson")), good("--at", "2026-01-03T00:00:00Z"); got != want {
		t.Fatalf("after the damage: %d bytes, want %d", len(got), len(want))
	}
	// Across the damage, a restore is refused, never silently wrong.
	cmd := h.command("restore", "--stream", "pitr/users", "--at-position", fmt.Sprint(last), "--to", "x.ndjson")
	if out, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("restore across the damage: %v\n%s", err, out)
	}
}
