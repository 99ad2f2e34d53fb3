package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-backup/strata/internal/testenv"
)

// TestKeyRotate: `strata key rotate` refuses without every password, then
// rotates with them; snapshots from before and after restore byte-exact with
// each password, check is clean, and a rerun makes the next generation. An
// index server's client is refused with a message saying where to run it.
func TestKeyRotate(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.vars["STRATA_NEW_PASSWORD"] = "pw-2"
	c.ok(nil, "key", "add")
	day0 := genNDJSON(3000, 41)
	ids := []string{strings.TrimSpace(c.ok(day0, "backup", "--stream", "db", "--format", "ndjson", "--stdin"))}

	code, _, errs := c.run(nil, "key", "rotate")
	if code == 0 || !strings.Contains(errs, "open with none of the passwords given") || !strings.Contains(errs, "--other-password-file") && !strings.Contains(errs, "give their passwords") {
		t.Fatalf("rotate without the second password: exit %d: %s", code, errs)
	}
	other := filepath.Join(t.TempDir(), "pw-2")
	if err := os.WriteFile(other, []byte("pw-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.ok(nil, "key", "rotate", "--other-password-file", other)
	if !strings.Contains(out, "key generation 0 -> 1; 2 key file(s) re-wrapped") {
		t.Fatalf("rotate printed %q", out)
	}
	day1 := genNDJSON(3000, 42)
	ids = append(ids, strings.TrimSpace(c.ok(day1, "backup", "--stream", "db", "--format", "ndjson", "--stdin")))
	// Each password restores: the old generation's snapshot with one, the
	// new one's with the other (argon2id makes every open cost a second).
	for i, pw := range []string{"pw-2", "pw-1"} {
		c.vars["STRATA_PASSWORD"] = pw
		if got := c.ok(nil, "restore", "--stream", "db", "--snapshot", ids[i][:12], "--to", "-"); got != string([][]byte{day0, day1}[i]) {
			t.Fatalf("password %s: snapshot %d does not restore byte-exact", pw, i)
		}
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check after rotation: %s", o)
	}
	// Opened with the second password this time: the first is the other one.
	c.vars["STRATA_PASSWORD"] = "pw-2"
	first := filepath.Join(t.TempDir(), "pw-1")
	if err := os.WriteFile(first, []byte("pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := c.ok(nil, "key", "rotate", "--other-password-file", first, "--json"); !strings.Contains(out, `"to":2`) {
		t.Fatalf("second rotation: %s", out)
	}

	// Through an index server: refused, naming the way to do it.
	tokens := filepath.Join(t.TempDir(), "tokens")
	admin := strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", "admin", "--scope", "admin"))
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, c.vars["STRATA_REPO"], tokens, fmt.Sprintf("127.0.0.1:%d", port))
	remote := newCLI(t)
	remote.vars["STRATA_REPO"], remote.vars["STRATA_TOKEN"], remote.vars["STRATA_PASSWORD"] = srv.url, admin, "pw-1"
	remote.ok(nil, "snapshots", "--stream", "db")
	if code, _, errs := remote.run(nil, "key", "rotate", "--other-password-file", other); code == 0 || !strings.Contains(errs, "not through a server") {
		t.Fatalf("rotate through the server: exit %d: %s", code, errs)
	}
}
