package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/s3gw"
)

func TestCLIS3UsersAndRestore(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init", "--parity-shards", "1", "--data-shards", "2")
	users := filepath.Join(t.TempDir(), "users.json")
	out := c.ok(nil, "s3", "user", "add", "--users", users, "--name", "pg", "--buckets", "pg-*", "--read-only")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "STR") || len(lines[1]) != 40 {
		t.Fatalf("user add printed %q", out)
	}
	raw, _ := os.ReadFile(users)
	if strings.Contains(string(raw), lines[1]) {
		t.Fatal("the users file holds the secret in clear")
	}
	if fi, _ := os.Stat(users); fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v", fi.Mode())
	}
	if code, _, errs := c.run(nil, "s3", "user", "add", "--users", users, "--name", "pg"); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("duplicate user: %d %s", code, errs)
	}
	if list := c.ok(nil, "s3", "user", "list", "--users", users); !strings.Contains(list, "pg-*") || !strings.Contains(list, "read-only") || strings.Contains(list, lines[1]) {
		t.Fatalf("user list:\n%s", list)
	}

	// Objects written through the gateway, then a view at an instant on disk.
	ctx := context.Background()
	r, _ := c.repository()
	g, err := s3gw.Open(ctx, r, s3gw.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "pg-main", "", nil); err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) {
		if _, err := g.Put(ctx, "pg-main", key, strings.NewReader(body), s3gw.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("archive/wal/0001", "wal one")
	put("backup/full/manifest", "manifest v1")
	time.Sleep(5 * time.Millisecond)
	at := time.Now()
	time.Sleep(5 * time.Millisecond)
	put("backup/full/manifest", "overwritten by an attacker")
	if _, _, err := g.Delete(ctx, "pg-main", "archive/wal/0001", "", false); err != nil {
		t.Fatal(err)
	}
	g.Close()

	dir := t.TempDir()
	c.ok(nil, "s3", "restore", "--bucket", "pg-main", "--at", at.Format(time.RFC3339Nano), "--to", dir)
	for key, want := range map[string]string{"archive/wal/0001": "wal one", "backup/full/manifest": "manifest v1"} {
		if got, err := os.ReadFile(filepath.Join(dir, key)); err != nil || string(got) != want {
			t.Fatalf("%s: %q %v", key, got, err)
		}
	}
	dir2 := t.TempDir()
	c.ok(nil, "s3", "restore", "--bucket", "pg-main", "--prefix", "backup/", "--at", at.Format(time.RFC3339Nano), "--to", dir2)
	if _, err := os.Stat(filepath.Join(dir2, "archive")); !os.IsNotExist(err) {
		t.Fatalf("prefix restore wrote outside the prefix: %v", err)
	}

	c.ok(nil, "s3", "user", "remove", "--users", users, "--name", "pg")
	if list := c.ok(nil, "s3", "user", "list", "--users", users); strings.Contains(list, "pg-*") {
		t.Fatalf("removed user still listed:\n%s", list)
	}
}
