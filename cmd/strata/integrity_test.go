package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// damageKeyFile changes one character of the wrapped key in the key file
// that password opens, keeping it valid JSON: only its name can tell.
func damageKeyFile(t *testing.T, c *cli, password string) {
	t.Helper()
	dir := filepath.Join(c.vars["STRATA_REPO"], "keys")
	before := c.vars["STRATA_PASSWORD"]
	c.vars["STRATA_PASSWORD"] = password
	out := c.ok(nil, "key", "list")
	c.vars["STRATA_PASSWORD"] = before
	var id string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "*") {
			id = strings.Fields(line)[1]
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), id) {
			continue
		}
		// Both copies (FORMAT.md §25): one damaged copy alone is read around.
		for _, name := range []string{filepath.Join(dir, e.Name()), filepath.Join(c.vars["STRATA_REPO"], "copies", "keys", e.Name())} {
			damageWrapped(t, name)
		}
		return
	}
	t.Fatalf("key file %s not found", id)
}

// damageWrapped changes one character of the wrapped key in a key file.
func damageWrapped(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"wrapped":"`)) + len(`"wrapped":"`) + 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	os.Chmod(name, 0o600)
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedKeyFile: a key file whose bytes no longer match its name is
// damage: opening with its password says so (never "wrong password"),
// and check finds it with exit 3.
func TestDamagedKeyFile(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.vars["STRATA_NEW_PASSWORD"] = "second"
	c.ok(nil, "key", "add")
	damageKeyFile(t, c, "second")

	c.vars["STRATA_PASSWORD"] = "second"
	code, _, errs := c.run(nil, "snapshots")
	if code == exitWrongPassword || code == 0 || strings.Contains(errs, "wrong password") || !strings.Contains(errs, "does not match its name") {
		t.Fatalf("open with the damaged key's password: exit %d, %s", code, errs)
	}
	code, out, _ := c.run(nil, "check")
	if code != exitDamage || !strings.Contains(out, "problem: ") || !strings.Contains(out, "does not match its name") {
		t.Fatalf("check with the damaged key's password: exit %d, %s", code, out)
	}
	c.vars["STRATA_PASSWORD"] = "pw-1"
	code, out, _ = c.run(nil, "check")
	if code != exitDamage || !strings.Contains(out, "keys: ") || !strings.Contains(out, "does not match its name") || strings.Contains(out, "--repair") {
		t.Fatalf("check with the intact key: exit %d, %s", code, out)
	}
	if code, _, errs := c.run(nil, "key", "list"); code == 0 || !strings.Contains(errs, "does not match its name") {
		t.Fatalf("key list: exit %d, %s", code, errs)
	}
	// A wrong password is still that.
	c.vars["STRATA_PASSWORD"] = "nobody's"
	if code, _, _ := c.run(nil, "snapshots"); code == 0 {
		t.Fatal("opened with a wrong password")
	}
}

// TestRestoreToDirectory: restore --to DIR says the target is a directory,
// before reading anything.
func TestRestoreToDirectory(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok(genNDJSON(100, 1), "backup", "--stream", "s", "--format", "ndjson", "--stdin")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600)
	code, _, errs := c.run(nil, "restore", "--stream", "s", "--to", dir)
	if code == 0 || !strings.Contains(errs, "is a directory") || strings.Contains(errs, "file exists") {
		t.Fatalf("restore --to DIR: exit %d, %s", code, errs)
	}
}

// TestLogFullDisk fills a small tmpfs (which needs the privilege to mount)
// during a capture: the summary counts the segments and events stored, and
// says how many arrived but were not.
func TestLogFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	c := newCLI(t)
	c.vars["STRATA_REPO"] = filepath.Join(dir, "repo")
	c.ok(nil, "init")
	var ev bytes.Buffer
	for i := 1; i <= 30000; i++ {
		fmt.Fprintf(&ev, `{"seq":%d,"ts":%d,"op":"put","key":"k%d","doc":{"_id":"k%d","pad":"%032x"}}`+"\n", i, 1000+i, i, i, uint64(i)*0x9e3779b97f4a7c15)
	}
	code, _, errs := c.run(ev.Bytes(), "log", "--stream", "s", "--stdin", "--segment-bytes", "65536")
	if code == 0 || !strings.Contains(errs, "no space left") {
		t.Fatalf("log onto a full disk: exit %d, %s", code, errs)
	}
	var stored, segs, lost int
	i := strings.Index(errs, "log s: ")
	if i < 0 {
		t.Fatalf("no summary: %s", errs)
	}
	fmt.Sscanf(errs[i:], "log s: %d events stored in %d segments", &stored, &segs)
	if k := strings.Index(errs[i:], "gaps; "); k >= 0 {
		fmt.Sscanf(errs[i+k+len("gaps; "):], "%d events received", &lost)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "repo", "logs", "s"))
	if segs == 0 || segs != len(entries) || lost == 0 {
		t.Fatalf("summary says %d events in %d segments, %d not stored; the store holds %d segments\n%s", stored, segs, lost, len(entries), errs)
	}
	last := 0
	for _, e := range entries {
		k, err := repo.ParseSegmentName("logs/s/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, int(k.Last))
	}
	if stored != last {
		t.Fatalf("summary says %d events stored, the log ends at %d\n%s", stored, last, errs)
	}
}

// TestCheckExitCodes: a snapshot manifest deleted while its label remains,
// and a segment manifest missing from a chain, are damage: exit 3.
func TestCheckExitCodes(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	id := strings.TrimSpace(c.ok([]byte(`{"_id":"a"}`+"\n"), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0"))
	var ev bytes.Buffer
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&ev, `{"seq":%d,"ts":%d,"op":"put","key":"k%03d","doc":{"_id":"k%03d","pad":"%064d"}}`+"\n", i, 100+i, i, i, i)
	}
	c.ok(ev.Bytes(), "log", "--stream", "s", "--stdin", "--segment-bytes", "4096")
	if out := c.ok(nil, "check"); !strings.Contains(out, "no problems") {
		t.Fatalf("check before damage: %s", out)
	}
	root := c.vars["STRATA_REPO"]
	segs, _ := filepath.Glob(filepath.Join(root, "logs", "s", "*"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// Both copies (FORMAT.md §25): one lost copy alone is read around.
	os.Remove(segs[1])
	os.Remove(filepath.Join(root, "copies", "logs", "s", filepath.Base(segs[1])))
	code, out, _ := c.run(nil, "check")
	if code != exitDamage || !strings.Contains(out, "the segment manifest before it is missing") {
		t.Fatalf("check with a segment missing: exit %d\n%s", code, out)
	}
	os.Remove(filepath.Join(root, "snapshots", id))
	os.Remove(filepath.Join(root, "copies", "snapshots", id))
	code, out, _ = c.run(nil, "check")
	if code != exitDamage || !strings.Contains(out, "snapshot "+id[:8]) || !strings.Contains(out, "only its label remains") {
		t.Fatalf("check with a snapshot manifest deleted: exit %d\n%s", code, out)
	}
}
