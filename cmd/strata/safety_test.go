package main

import (
	"bytes"
	"encoding/json"
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

// backup without --format sniffs its input: NDJSON is backed up as ndjson,
// anything else as raw, the choice is said on stderr, and a raw backup of
// what looks like NDJSON is warned about.
func TestBackupDetectsFormat(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	nd := genNDJSON(3000, 1) // more than 64 KiB
	binary := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
	broken := append(append([]byte{}, wholeLines(nd, 1000)...), "not json\n"...)
	for _, tc := range []struct {
		name   string
		data   []byte
		args   []string
		format string
		warn   bool
	}{
		{"ndjson", nd, nil, "ndjson", false},
		{"binary", binary, nil, "raw", false},
		{"broken", broken, nil, "raw", true},
		{"explicit-raw", nd, []string{"--format", "raw"}, "raw", true},
		{"explicit-ndjson", nd, []string{"--format", "ndjson"}, "ndjson", false},
	} {
		code, _, errs := c.run(tc.data, append([]string{"backup", "--stream", tc.name, "--stdin"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, errs)
		}
		if tc.args == nil && !strings.Contains(errs, "backing up as "+tc.format) {
			t.Errorf("%s: stderr does not say it backs up as %s:\n%s", tc.name, tc.format, errs)
		}
		if got := strings.Contains(errs, "loses record-level deduplication"); got != tc.warn {
			t.Errorf("%s: raw-of-NDJSON warning %v, want %v:\n%s", tc.name, got, tc.warn, errs)
		}
		var snaps []struct{ Format string }
		if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--stream", tc.name, "--json")), &snaps); err != nil || len(snaps) != 1 || snaps[0].Format != tc.format {
			t.Errorf("%s: snapshots %+v (%v), want one of format %s", tc.name, snaps, err, tc.format)
		}
		if out := c.ok(nil, "restore", "--stream", tc.name); out != string(tc.data) {
			t.Errorf("%s: restore differs from the export", tc.name)
		}
	}
}
