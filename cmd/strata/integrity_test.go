package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		name := filepath.Join(dir, e.Name())
		b, _ := os.ReadFile(name)
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
		return
	}
	t.Fatalf("key file %s not found", id)
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
