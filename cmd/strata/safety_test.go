package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Read-only commands never create a directory: a mistyped --repo is "no
// repository" (exit 5), and nothing appears on disk.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	c := newCLI(t)
	root := t.TempDir()
	typo := filepath.Join(root, "typo", "deep", "repo")
	for _, args := range [][]string{
		{"snapshots", "--repo", typo},
		{"coverage", "--repo", typo, "--stream", "a/b"},
		{"check", "--repo", typo},
	} {
		code, _, errs := c.run(nil, args...)
		if code != exitNoRepository {
			t.Errorf("strata %v: exit %d, want %d\n%s", args, code, exitNoRepository, errs)
		}
		if _, err := os.Stat(filepath.Join(root, "typo")); !os.IsNotExist(err) {
			t.Fatalf("strata %v created %s (stat: %v)", args, filepath.Join(root, "typo"), err)
		}
	}
}

// A failed init removes the directories it made.
func TestFailedInitLeavesNothing(t *testing.T) {
	c := newCLI(t)
	delete(c.vars, "STRATA_PASSWORD") // no password and no terminal: init fails after creating the store
	root := t.TempDir()
	loc := filepath.Join(root, "new", "repo")
	if code, _, errs := c.run(nil, "init", "--repo", loc); code == 0 {
		t.Fatalf("init without a password succeeded\n%s", errs)
	}
	if _, err := os.Stat(filepath.Join(root, "new")); !os.IsNotExist(err) {
		t.Fatalf("failed init left %s behind (stat: %v)", filepath.Join(root, "new"), err)
	}
	// An existing directory is not removed.
	c.vars["STRATA_PASSWORD"] = "pw-1"
	c.ok(nil, "init", "--repo", loc)
	if code, _, _ := c.run(nil, "init", "--repo", loc); code == 0 {
		t.Fatal("second init succeeded")
	}
	if _, err := os.Stat(filepath.Join(loc, "config")); err != nil {
		t.Fatalf("a refused init on an existing repository touched it: %v", err)
	}
}

// restore refuses a terminal as its output, and an existing --to file
// without --force; --force overwrites it.
func TestRestoreSafeOutput(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	data := genNDJSON(50, 1)
	c.ok(data, "backup", "--stream", "s", "--format", "ndjson", "--stdin")

	c.stdoutTTY = true
	for _, args := range [][]string{
		{"restore", "--stream", "s"},
		{"restore", "--stream", "s", "--to", "-"},
		{"restore", "--stream", "s", "--at", "2100-01-01T00:00:00Z"},
		{"restore", "--stream", "s", "--key-prefix", "0"},
	} {
		code, out, errs := c.run(nil, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "terminal") {
			t.Errorf("strata %v on a terminal: exit %d, %d bytes out, %s", args, code, len(out), errs)
		}
	}
	// To a file is fine with a terminal on stdout.
	file := filepath.Join(t.TempDir(), "out.ndjson")
	c.ok(nil, "restore", "--stream", "s", "--to", file)
	c.stdoutTTY = false

	os.WriteFile(file, []byte("precious\n"), 0o600)
	for _, args := range [][]string{
		{"restore", "--stream", "s", "--to", file},
		{"restore", "--stream", "s", "--to", file, "--key-prefix", "0"},
	} {
		code, _, errs := c.run(nil, args...)
		if code != exitUsage || !strings.Contains(errs, "--force") {
			t.Errorf("strata %v over an existing file: exit %d, %s", args, code, errs)
		}
		if b, _ := os.ReadFile(file); string(b) != "precious\n" {
			t.Fatalf("strata %v overwrote %s without --force", args, file)
		}
	}
	c.ok(nil, "restore", "--stream", "s", "--to", file, "--force")
	if b, _ := os.ReadFile(file); !bytes.Equal(b, data) {
		t.Fatalf("restore --force: %d bytes, want the %d backed up", len(b), len(data))
	}
}
