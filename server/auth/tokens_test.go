package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Tokens whose hashes validFile holds.
const (
	tokenCI    = "strata_ci-token-for-tests"
	tokenAdmin = "strata_admin-token-for-tests"
)

func hexHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

var validFile = "# a comment\n" +
	"\n" +
	"ci backup:shop/*,read " + hexHash(tokenCI) + "\n" +
	"   # an indented comment\n" +
	"ops admin " + hexHash(tokenAdmin) + "\r\n"

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(validFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []Identity{
		{Name: "ci", Scopes: []Scope{{Backup, "shop/*"}, {Read, ""}}},
		{Name: "ops", Scopes: []Scope{{Admin, ""}}},
	}
	got := s.Identities()
	if len(got) != len(want) || s.Len() != len(want) {
		t.Fatalf("identities %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].Scopes, want[i].Scopes) {
			t.Fatalf("identity %d: %v, want %v", i, got[i], want[i])
		}
	}
	// Identities hands out copies: the Set stays as parsed.
	got[0].Scopes[0] = Scope{Admin, ""}
	if s.Identities()[0].Scopes[0] != (Scope{Backup, "shop/*"}) {
		t.Fatal("modifying Identities' result changed the Set")
	}
	if s, err := Parse(strings.NewReader("")); err != nil || s.Len() != 0 {
		t.Fatalf("empty file: %v, %v", s, err)
	}
}

func TestParseErrors(t *testing.T) {
	h1, h2 := hexHash("strata_one"), hexHash("strata_two")
	cases := []struct {
		file string
		line int
	}{
		{"ci read", 1},
		{"ci read " + h1 + " extra\n", 1},
		{"# x\nci  read " + h1 + "\n", 2},     // two spaces
		{"ci\tread\t" + h1 + "\n", 1},         // tabs
		{" ci read " + h1 + "\n", 1},          // leading space
		{"ci read " + h1 + " \n", 1},          // trailing space
		{"ci read " + strings.ToUpper(h1), 1}, // one spelling per hash
		{"ci read " + h1[:63], 1},
		{"ci read " + h1 + "0", 1},
		{"ci read " + h1[:63] + "g", 1},
		{"ci read " + tokenCI, 1},
		{"ci write " + h1, 1},
		{"ci read:x " + h1, 1},
		{"c/i read " + h1, 1},
		{strings.Repeat("n", 65) + " read " + h1, 1},
		{"ci read " + h1 + "\n\nci admin " + h2 + "\n", 3}, // duplicate name
		{"ci read " + h1 + "\nops admin " + h1 + "\n", 2},  // duplicate hash
		{"ci read " + h1 + "\n# \xff\n", 2},                // not UTF-8
		{"ops " + h1 + " read\n", 1},                       // fields swapped
		{tokenCI + " read " + h1 + "\n", 1},                // a token as the name
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.file))
		var le *LineError
		if !errors.As(err, &le) || le.Line != tc.line {
			t.Errorf("Parse(%q) = %v, want an error on line %d", tc.file, err, tc.line)
			continue
		}
		// No hash, and no token, ever reaches the message.
		for _, secret := range []string{h1, h2, h1[:40], tokenCI, "strata_"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Parse(%q): the error %q quotes a secret", tc.file, err)
			}
		}
	}
	if _, err := Parse(strings.NewReader(strings.Repeat("#\n", maxFileSize/2+1))); err == nil {
		t.Error("an over-large file parses")
	}
}

func TestAuthenticate(t *testing.T) {
	s, err := Parse(strings.NewReader(validFile))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Authenticate(tokenCI); !ok || id.Name != "ci" {
		t.Fatalf("ci token: %v %v", id, ok)
	}
	id, ok := s.Authenticate(tokenAdmin)
	if !ok || id.Name != "ops" || !id.Allows(Admin, "") {
		t.Fatalf("admin token: %v %v", id, ok)
	}
	// The identity is the caller's to keep: changing it changes no Set.
	id.Scopes[0] = Scope{Read, ""}
	if id, _ := s.Authenticate(tokenAdmin); !id.Allows(Admin, "") {
		t.Fatal("modifying an identity changed the Set")
	}
	for _, bad := range []string{
		"",
		"strata_wrong",
		tokenCI + "x",
		tokenCI[:len(tokenCI)-1],
		strings.ToUpper(tokenCI),
		hexHash(tokenCI), // the hash is not the token
		tokenCI + strings.Repeat("x", MaxTokenLen),
	} {
		if id, ok := s.Authenticate(bad); ok || id != nil {
			t.Errorf("Authenticate(%.20q…) = %v, %v", bad, id, ok)
		}
	}
	// A token over MaxTokenLen is refused even when its hash is in the file.
	long := "strata_" + strings.Repeat("a", MaxTokenLen)
	s2, err := Parse(strings.NewReader("long read " + hexHash(long) + "\nok read " + hexHash(long[:MaxTokenLen]) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Authenticate(long); ok {
		t.Error("an over-long token authenticates")
	}
	if id, ok := s2.Authenticate(long[:MaxTokenLen]); !ok || id.Name != "ok" {
		t.Errorf("a token of exactly MaxTokenLen bytes: %v %v", id, ok)
	}
	var none *Set
	if _, ok := none.Authenticate(tokenCI); ok {
		t.Error("a nil Set authenticates")
	}
}

func TestCreateRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	ci, err := Create(path, "ci", []Scope{{Backup, "shop/*"}, {Read, ""}, {Read, ""}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(ci, TokenPrefix))
	if !strings.HasPrefix(ci, TokenPrefix) || err != nil || len(raw) != 32 || len(ci) != 50 {
		t.Fatalf("token %q: %v", ci, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v %v", fi, err)
	}
	ops, err := Create(path, "ops", []Scope{{Admin, ""}})
	if err != nil || ops == ci {
		t.Fatalf("second token %q: %v", ops, err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), ci) || strings.Contains(string(data), ops) {
		t.Fatal("the file holds a token")
	}

	s, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Authenticate(ci); !ok || id.Name != "ci" || FormatScopes(id.Scopes) != "backup:shop/*,read" {
		t.Fatalf("ci: %v %v", id, ok)
	}
	if id, ok := s.Authenticate(ops); !ok || id.Name != "ops" {
		t.Fatalf("ops: %v %v", id, ok)
	}

	if _, err := Create(path, "ci", []Scope{{Read, ""}}); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, bad := range [][]Scope{nil, {{Read, "x"}}, {{Backup, ""}}, {{Kind("write"), ""}}, {{Restore, "a b"}}} {
		if _, err := Create(path, "other", bad); err == nil {
			t.Errorf("Create with scopes %v succeeded", bad)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", strings.Repeat("n", 65), "strata_x", hexHash("x")} {
		if _, err := Create(path, bad, []Scope{{Read, ""}}); err == nil {
			t.Errorf("Create with name %q succeeded", bad)
		}
	}

	// Revoke keeps comments and the file's mode, and the other token.
	os.WriteFile(path, append([]byte("# kept\n"), data...), 0o600)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(path, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(path, "ci"); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("revoke twice: %v", err)
	}
	s, err = LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate(ci); ok {
		t.Fatal("a revoked token authenticates")
	}
	if _, ok := s.Authenticate(ops); !ok {
		t.Fatal("revoking ci revoked ops")
	}
	data, _ = os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# kept\n") {
		t.Fatalf("revoke lost a comment:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("revoke changed the mode to %v", fi.Mode())
	}
	// Create appends to a file that lacks a final newline.
	os.WriteFile(path, []byte(strings.TrimSuffix(string(data), "\n")), 0o640)
	if _, err := Create(path, "late", []Scope{{Read, ""}}); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadFile(path); err != nil || s.Len() != 2 {
		t.Fatalf("after appending to an unterminated file: %v %v", s, err)
	}
	// The tokens file and its lock file (kept for the next update), nothing else.
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Fatalf("temporary files left: %v", entries)
	}

	if err := Revoke(filepath.Join(t.TempDir(), "missing"), "ci"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("revoke in a missing file: %v", err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "no", "dir"), "ci", []Scope{{Read, ""}}); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if _, err := LoadFile(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(validFile), 0o600); err != nil {
		t.Fatal(err)
	}
	// The mode bits are read from the file, so this holds for root too.
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666, 0o622} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(path); !errors.Is(err, ErrUnsafeMode) {
			t.Errorf("mode %v: %v", mode, err)
		}
		if _, err := Create(path, "new", []Scope{{Read, ""}}); !errors.Is(err, ErrUnsafeMode) {
			t.Errorf("Create in a file of mode %v: %v", mode, err)
		}
		if err := Revoke(path, "ci"); !errors.Is(err, ErrUnsafeMode) {
			t.Errorf("Revoke in a file of mode %v: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o644, 0o400, 0o640} {
		os.Chmod(path, mode)
		if _, err := LoadFile(path); err != nil {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	if _, err := LoadFile(dir); err == nil {
		t.Error("a directory loads as a tokens file")
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("# one\nci read nothex\n"), 0o600)
	var le *LineError
	if _, err := LoadFile(bad); !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad line: %v", err)
	}
}
