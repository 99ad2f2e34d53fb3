package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-backup/strata/spec"
)

// TestCLIUpgrade: a repository the version-1 build wrote (the version-1
// Appendix A, spec/testdata) is read by this build, check says it is
// version 1 and what upgrade does, upgrade makes it version 2, and after
// that a deleted snapshot manifest is put back by check --repair.
func TestCLIUpgrade(t *testing.T) {
	blocks, err := spec.ReadBlocks("../../spec/testdata/version1.md")
	if err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	dir := c.vars["STRATA_REPO"]
	for _, b := range blocks {
		name, ok := strings.CutPrefix(b.Info, "object ")
		if b.Info == "vector worked-repository" {
			c.vars["STRATA_PASSWORD"] = b.Fields()["password"]
		}
		if !ok {
			continue
		}
		data, err := b.Hex()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := c.ok(nil, "check", "--read-data"); !strings.Contains(out, "format version 1") || !strings.Contains(out, "strata upgrade") {
		t.Fatalf("check of a version-1 repository: %s", out)
	}
	if out := c.ok(nil, "upgrade"); !strings.Contains(out, "format version 1 -> 2") {
		t.Fatalf("upgrade: %s", out)
	}
	if out := c.ok(nil, "upgrade"); !strings.Contains(out, "already format version 2") {
		t.Fatalf("second upgrade: %s", out)
	}
	snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	manifest := filepath.Join(dir, "snapshots", snaps[0].Name())
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := c.run(nil, "check"); code != 3 || !strings.Contains(out, "is intact") {
		t.Fatalf("check with a deleted manifest: exit %d\n%s", code, out)
	}
	c.ok(nil, "check", "--read-data", "--repair")
	if _, err := os.Stat(manifest); err != nil {
		t.Fatalf("the manifest was not put back: %v", err)
	}
	if out := c.ok(nil, "restore", "--stream", "spec/users"); out != "{\"_id\":\"a\",\"n\":1}\n{\"_id\":\"b\",\"n\":2}\n" {
		t.Fatalf("restore: %q", out)
	}
}
