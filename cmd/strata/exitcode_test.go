package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-backup/strata/internal/testenv"
)

// TestExitCodes runs one representative failing invocation for every
// exit code of README's table and wants that code.
func TestExitCodes(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	dir := c.vars["STRATA_REPO"]
	id := strings.TrimSpace(c.ok(genNDJSON(200, 1), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "1000"))
	// A second stream whose only snapshot manifest is damaged.
	bad := strings.TrimSpace(c.ok(genNDJSON(50, 2), "backup", "--stream", "bad", "--format", "ndjson", "--stdin", "--time", "1000"))
	// Both copies (FORMAT.md §25): one damaged copy alone is read around.
	for _, manifest := range []string{filepath.Join(dir, "snapshots", bad), filepath.Join(dir, "copies", "snapshots", bad)} {
		b, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x40
		os.WriteFile(manifest, b, 0o600)
	}

	tokens := filepath.Join(t.TempDir(), "tokens")
	readTok := strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", "reader", "--scope", "read"))
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port))

	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want int
	}{
		{"success", nil, []string{"restore", "--stream", "s", "--snapshot", id[:8], "--to", filepath.Join(t.TempDir(), "out")}, exitOK},
		{"error", nil, []string{"backup", "--stream", "s", filepath.Join(t.TempDir(), "missing")}, exitFailure},
		{"usage", nil, []string{"restore"}, exitUsage},
		{"integrity", nil, []string{"restore", "--stream", "bad", "--snapshot", bad[:8], "--to", filepath.Join(t.TempDir(), "out")}, exitDamage},
		{"password", map[string]string{"STRATA_PASSWORD": "wrong"}, []string{"snapshots"}, exitWrongPassword},
		{"unknown token", map[string]string{"STRATA_REPO": srv.url, "STRATA_TOKEN": "not-a-token"}, []string{"snapshots"}, exitWrongPassword},
		{"no repository", nil, []string{"snapshots", "--repo", filepath.Join(t.TempDir(), "typo")}, exitNoRepository},
		{"scope", map[string]string{"STRATA_REPO": srv.url, "STRATA_TOKEN": readTok}, []string{"backup", "--stream", "s", "--format", "ndjson", "--stdin"}, exitForbidden},
		{"unknown stream", nil, []string{"coverage", "--stream", "typo"}, exitNotRestorable},
		{"unknown stream json", nil, []string{"coverage", "--stream", "typo", "--json"}, exitNotRestorable},
		{"unknown stream restore", nil, []string{"restore", "--stream", "typo"}, exitNotRestorable},
		{"before the first snapshot", nil, []string{"restore", "--stream", "s", "--at", "10"}, exitNotRestorable},
	} {
		saved := map[string]string{}
		for k, v := range tc.vars {
			saved[k] = c.vars[k]
			c.vars[k] = v
		}
		code, _, errs := c.run([]byte(`{"_id":"x"}`+"\n"), tc.args...)
		if code != tc.want {
			t.Errorf("%s: strata %v: exit %d, want %d\n%s", tc.name, tc.args, code, tc.want, errs)
		}
		for k, v := range saved {
			c.vars[k] = v
		}
	}

	// An interrupt (the signal context done) that ends a command is 130.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	env := &environment{getenv: func(k string) string { return c.vars[k] }, stdin: bytes.NewReader(genNDJSON(2000, 3)), stdout: &bytes.Buffer{}, stderr: &errb}
	if code := run(ctx, []string{"backup", "--stream", "s", "--format", "ndjson", "--stdin"}, env); code != exitInterrupted {
		t.Errorf("interrupted backup: exit %d, want %d\n%s", code, exitInterrupted, errb.String())
	}
}
