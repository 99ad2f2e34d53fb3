package main

import (
	"os"
	"path/filepath"
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
