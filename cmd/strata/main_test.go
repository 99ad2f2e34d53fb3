package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
)

// cli runs strata in-process with the given environment variables and stdin.
type cli struct {
	t    *testing.T
	vars map[string]string
	// stdoutTTY makes standard output look like a terminal.
	stdoutTTY bool
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, vars: map[string]string{"STRATA_PASSWORD": "pw-1", "STRATA_REPO": filepath.Join(t.TempDir(), "repo")}}
}

func (c *cli) run(stdin []byte, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &environment{
		getenv: func(k string) string { return c.vars[k] },
		stdin:  bytes.NewReader(stdin), stdout: &out, stderr: &errb, host: "testhost", user: "tester",
		stdoutTTY: c.stdoutTTY,
	}
	start := time.Now()
	code = run(context.Background(), args, env)
	if os.Getenv("STRATA_TEST_TIMING") != "" {
		c.t.Logf("%6.2fs strata %s", time.Since(start).Seconds(), strings.Join(args, " "))
	}
	return code, out.String(), errb.String()
}

func (c *cli) ok(stdin []byte, args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(stdin, args...)
	if code != 0 {
		c.t.Fatalf("strata %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

// repository opens the CLI's local repository in the test's process, to
// look at or damage what the commands stored.
func (c *cli) repository() (*repo.Repository, *local.Store) {
	c.t.Helper()
	st, err := local.Open(c.vars["STRATA_REPO"])
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, []byte(c.vars["STRATA_PASSWORD"]))
	if err != nil {
		c.t.Fatal(err)
	}
	return r, st
}

func genNDJSON(n int, seed uint64) []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"_id":"%08x","n":%d,"s":"%x"}`+"\n", i, r.IntN(1e6), r.Uint64())
	}
	return b.Bytes()
}

// wholeLines returns the lines of an NDJSON export that end within its
// first n bytes: an export cut mid-line is refused by backup.
func wholeLines(b []byte, n int) []byte {
	return b[:bytes.LastIndexByte(b[:n], '\n')+1]
}

// newKeys renames the keys of an export ("_id":"x…), so it can follow
// another from the same generator without repeating a key.
func newKeys(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(`"_id":"`), []byte(`"_id":"x`))
}

func TestCLIEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	data := genNDJSON(20000, 1)
	id0 := strings.TrimSpace(c.ok(data, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", "2026-01-01T00:00:00.5Z", "--stdin"))
	file := filepath.Join(t.TempDir(), "export.ndjson")
	// New documents after the old ones (a key on two lines would be refused).
	data1 := append(append([]byte{}, data...), newKeys(genNDJSON(10, 2))...)
	os.WriteFile(file, data1, 0o600)
	id1 := strings.TrimSpace(c.ok(nil, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", "1767312000.25", file))
	if len(id0) != 64 || len(id1) != 64 || id0 == id1 {
		t.Fatalf("snapshot IDs %q %q", id0, id1)
	}

	var snaps []map[string]any
	if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[0]["id"] != id0 || snaps[0]["stream"] != "shop/users" || snaps[1]["size"].(float64) != float64(len(data1)) {
		t.Fatalf("snapshots --json: %v", snaps)
	}
	if snaps[0]["time"] != "2026-01-01T00:00:00.5Z" || snaps[1]["time"] != "2026-01-02T00:00:00.25Z" {
		t.Fatalf("times: %v %v", snaps[0]["time"], snaps[1]["time"])
	}

	if got := c.ok(nil, "restore", "--stream", "shop/users", "--to", "-"); got != string(data1) {
		t.Fatal("restore of the latest differs")
	}
	out := filepath.Join(t.TempDir(), "restored.ndjson")
	c.ok(nil, "restore", "--stream", "shop/users", "--snapshot", id0[:8], "--to", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("restore --snapshot to a file differs")
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Fatalf("restore left temporary files: %v", entries)
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check: %s", o)
	}
}

func TestCLIErrors(t *testing.T) {
	c := newCLI(t)
	if code, _, _ := c.run(nil, "snapshots"); code != exitNoRepository {
		t.Fatalf("no repository: exit %d", code)
	}
	c.ok(nil, "init")
	if code, _, errs := c.run(nil, "init"); code == 0 || !strings.Contains(errs, "already exists") {
		t.Fatalf("init twice: exit %d %s", code, errs)
	}
	cases := []struct {
		args []string
		vars map[string]string
		want int
	}{
		{[]string{"backup", "--stdin"}, nil, exitUsage},                          // no stream
		{[]string{"backup", "--stream", "a", "--stdin", "file"}, nil, exitUsage}, // both inputs
		{[]string{"backup", "--stream", "../etc", "--stdin"}, nil, exitUsage},    // bad stream
		{[]string{"backup", "--stream", "a", "--time", "yesterday", "--stdin"}, nil, exitUsage},
		{[]string{"backup", "--stream", "a", "--format", "xml", "--stdin"}, nil, exitUsage},
		{[]string{"restore", "--stream", "nothing"}, nil, exitNotRestorable},
		{[]string{"snapshots"}, map[string]string{"STRATA_PASSWORD": "wrong"}, exitWrongPassword},
		{[]string{"snapshots"}, map[string]string{"STRATA_PASSWORD": ""}, exitUsage},                                                                // no password, no terminal
		{[]string{"snapshots"}, map[string]string{"STRATA_PASSWORD": "", "STRATA_PASSWORD_FILE": filepath.Join(t.TempDir(), "missing")}, exitUsage}, // README: no password given is 2
		{[]string{"frobnicate"}, nil, exitUsage},
		{[]string{"key", "frobnicate"}, nil, exitUsage},
	}
	for _, tc := range cases {
		saved := map[string]string{}
		for k, v := range tc.vars {
			saved[k] = c.vars[k]
			c.vars[k] = v
		}
		if code, _, errs := c.run([]byte("x\n"), tc.args...); code != tc.want {
			t.Errorf("strata %v: exit %d, want %d (%s)", tc.args, code, tc.want, errs)
		}
		for k, v := range saved {
			c.vars[k] = v
		}
	}
}

func TestCLIPasswordFileAndKeys(t *testing.T) {
	c := newCLI(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	c.vars["STRATA_PASSWORD"] = ""
	c.vars["STRATA_PASSWORD_FILE"] = pwFile
	c.ok(nil, "init")
	c.vars["STRATA_NEW_PASSWORD"] = "second"
	c.ok(nil, "key", "add")
	var keys []map[string]any
	json.Unmarshal([]byte(c.ok(nil, "key", "list", "--json")), &keys)
	if len(keys) != 2 {
		t.Fatalf("keys: %v", keys)
	}
	c.vars["STRATA_PASSWORD_FILE"] = ""
	c.vars["STRATA_PASSWORD"] = "second"
	var other string
	for _, k := range keys {
		if k["current"] == false {
			other = k["id"].(string)
		}
	}
	// Opened with "second", the current key is the other one now: remove the first.
	for _, k := range keys {
		if k["current"] == true {
			other = k["id"].(string)
		}
	}
	c.ok(nil, "key", "remove", other[:12])
	c.vars["STRATA_NEW_PASSWORD"] = "third"
	c.ok(nil, "key", "passwd")
	c.vars["STRATA_PASSWORD"] = "third"
	c.ok(nil, "snapshots")
	c.vars["STRATA_PASSWORD"] = "second"
	if code, _, _ := c.run(nil, "snapshots"); code != exitWrongPassword {
		t.Fatalf("old password still works after passwd: exit %d", code)
	}
}

// TestKilledBackup kills a real strata process with SIGKILL in the middle of
// a backup, then checks that the repository is consistent and the next backup
// and restore work.
func TestKilledBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	env := append(os.Environ(), "STRATA_PASSWORD=pw", "STRATA_REPO="+repoDir)
	runBin := func(stdin io.Reader, args ...string) ([]byte, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, stdin
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%v: %s", err, errb.String())
		}
		return out, nil
	}
	if _, err := runBin(nil, "init"); err != nil {
		t.Fatal(err)
	}
	data := genNDJSON(200000, 3) // about 8 MB
	if _, err := runBin(bytes.NewReader(wholeLines(data, 1<<20)), "backup", "--stream", "s", "--format", "ndjson", "--stdin"); err != nil {
		t.Fatal(err)
	}

	// Feed half the export, wait until packs land, then SIGKILL.
	cmd := exec.Command(bin, "backup", "--stream", "s", "--format", "ndjson", "--stdin")
	cmd.Env = env
	pipe, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pipe.Write(data[:len(data)/2])
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		filepath.WalkDir(filepath.Join(repoDir, "data"), func(string, os.DirEntry, error) error { n++; return nil })
		if n > 12 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	pipe.Close()

	out, err := runBin(nil, "check", "--read-data")
	if err != nil {
		t.Fatalf("check after SIGKILL: %v\n%s", err, out)
	}
	if _, err := runBin(bytes.NewReader(data), "backup", "--stream", "s", "--format", "ndjson", "--stdin"); err != nil {
		t.Fatal(err)
	}
	got, err := runBin(nil, "restore", "--stream", "s")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore after a killed backup: %v (%d of %d bytes)", err, len(got), len(data))
	}
	var snaps []map[string]any
	list, _ := runBin(nil, "snapshots", "--json")
	json.Unmarshal(list, &snaps)
	if len(snaps) != 2 {
		t.Fatalf("want 2 snapshots (the killed one must not appear), got %d", len(snaps))
	}
}
