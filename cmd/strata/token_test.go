package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-backup/strata/server/auth"
)

func TestTokenCommands(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "tokens")

	code, out, errs := c.run(nil, "token", "create", "--tokens", file, "--name", "ci", "--scope", "read,backup:shop/*")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	token, ok := strings.CutSuffix(out, "\n")
	if !ok || !strings.HasPrefix(token, auth.TokenPrefix) || strings.ContainsAny(token, " \n") {
		t.Fatalf("create printed %q; want the token and a newline alone", out)
	}
	if !strings.Contains(errs, "only this once") || strings.Contains(errs, token) {
		t.Fatalf("create's note: %q", errs)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v %v", fi, err)
	}
	opsToken := strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", file, "--name", "ops", "--scope", "admin"))

	s, err := auth.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Authenticate(token); !ok || id.Name != "ci" || !id.Allows(auth.Backup, "shop/users") || id.Allows(auth.Restore, "shop/users") {
		t.Fatalf("ci token: %v %v", id, ok)
	}
	if id, ok := s.Authenticate(opsToken); !ok || id.Name != "ops" {
		t.Fatalf("ops token: %v %v", id, ok)
	}

	list := c.ok(nil, "token", "list", "--tokens", file)
	want := "NAME  SCOPES\nci    read,backup:shop/*\nops   admin\n"
	if list != want {
		t.Fatalf("list:\n%s\nwant:\n%s", list, want)
	}

	if out := c.ok(nil, "token", "revoke", "--tokens", file, "--name", "ci"); !strings.Contains(out, `"ci"`) {
		t.Fatalf("revoke: %q", out)
	}
	if got := c.ok(nil, "token", "list", "--tokens", file); got != "NAME  SCOPES\nops   admin\n" {
		t.Fatalf("list after revoke:\n%s", got)
	}
	if s, _ := auth.LoadFile(file); s == nil || s.Len() != 1 {
		t.Fatal("revoke did not leave one token")
	}
}

func TestTokenErrors(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "tokens")
	c.ok(nil, "token", "create", "--tokens", file, "--name", "ci", "--scope", "read")
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"token"}, exitUsage},
		{[]string{"token", "rotate", "--tokens", file}, exitUsage},
		{[]string{"token", "create", "--name", "x", "--scope", "read"}, exitUsage},    // no --tokens
		{[]string{"token", "create", "--tokens", file, "--scope", "read"}, exitUsage}, // no --name
		{[]string{"token", "create", "--tokens", file, "--name", "x"}, exitUsage},     // no --scope
		{[]string{"token", "create", "--tokens", file, "--name", "a b", "--scope", "read"}, exitUsage},
		{[]string{"token", "create", "--tokens", file, "--name", "x", "--scope", "read:x"}, exitUsage},
		{[]string{"token", "create", "--tokens", file, "--name", "x", "--scope", "write"}, exitUsage},
		{[]string{"token", "create", "--tokens", file, "--name", "x", "--scope", "read,"}, exitUsage},
		{[]string{"token", "create", "--tokens", file, "--name", "ci", "--scope", "admin"}, exitFailure}, // taken
		{[]string{"token", "list", "--tokens", file, "extra"}, exitUsage},
		{[]string{"token", "list", "--tokens", file, "--name", "ci"}, exitUsage}, // list takes no --name
		{[]string{"token", "list", "--tokens", filepath.Join(t.TempDir(), "missing")}, exitFailure},
		{[]string{"token", "revoke", "--tokens", file}, exitUsage},
		{[]string{"token", "revoke", "--tokens", file, "--name", "nobody"}, exitFailure},
		{[]string{"token", "create", "-h"}, exitOK},
	}
	for _, tc := range cases {
		if code, out, errs := c.run(nil, tc.args...); code != tc.want || tc.want != exitOK && out != "" {
			t.Errorf("strata %v: exit %d, want %d; stdout %q (%s)", tc.args, code, tc.want, out, errs)
		}
	}
	// A group-writable file grants access to the group: every command refuses it.
	if err := os.Chmod(file, 0o660); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "list", "--tokens", file},
		{"token", "create", "--tokens", file, "--name", "x", "--scope", "read"},
		{"token", "revoke", "--tokens", file, "--name", "ci"},
	} {
		if code, _, errs := c.run(nil, args...); code != exitFailure || !strings.Contains(errs, "writable by group or others") {
			t.Errorf("strata %v on a group-writable file: exit %d (%s)", args, code, errs)
		}
	}
}
