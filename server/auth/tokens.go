package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/strata-backup/strata/internal/atomicfile"
)

// Token layout: TokenPrefix, then the unpadded base64url encoding of
// tokenBytes random bytes (43 characters), 50 characters in all.
const (
	// TokenPrefix starts every token, so a leaked token is recognisable to
	// secret scanners and to people.
	TokenPrefix = "strata_"
	tokenBytes  = 32
	// MaxTokenLen bounds what Authenticate hashes, so a client cannot make
	// the server hash megabytes per request. Real tokens are 50 bytes.
	MaxTokenLen = 256
	// maxNameLen is the longest token name.
	maxNameLen = 64
	// maxFileSize bounds the tokens file read into memory: at about 150
	// bytes a line, it holds over 100 000 tokens.
	maxFileSize = 16 << 20
)

// Errors callers branch on.
var (
	// ErrUnsafeMode: the tokens file is writable by group or others. Anyone
	// who can write it can grant themselves access, so it is refused.
	ErrUnsafeMode = errors.New("tokens file is writable by group or others (chmod go-w it)")
	// ErrDuplicateName: Create was given a name the file already has.
	ErrDuplicateName = errors.New("a token with this name already exists")
	// ErrUnknownName: Revoke was given a name the file does not have.
	ErrUnknownName = errors.New("no token with this name")
)

// LineError is a syntax error in a tokens file. It names the line but never
// quotes it: a line may hold a token hash, which must not reach logs.
type LineError struct {
	Line int // 1-based
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// hashToken returns the SHA-256 of the whole token, prefix included.
//
// A fast, unsalted hash is right here, unlike for passwords: a token carries
// 256 bits from crypto/rand, so nobody can guess one from its hash however
// fast they hash, and a slow KDF would only cost the server time on every
// request.
func hashToken(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

// newToken returns a fresh random token.
func newToken() string {
	var b [tokenBytes]byte
	// crypto/rand.Read never fails (it aborts the program instead).
	rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidName checks a token name: 1 to 64 bytes of [A-Za-z0-9._-], not
// starting with TokenPrefix and not 40 or more hex digits, so that no name
// can be mistaken for a token or a hash (see looksSecret).
func ValidName(name string) error {
	if len(name) == 0 || len(name) > maxNameLen {
		return fmt.Errorf("token name must be 1 to %d bytes", maxNameLen)
	}
	if looksSecret(name) {
		return fmt.Errorf("token name looks like a token or a token hash")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("token name %q: byte %q not allowed (use letters, digits, '.', '_' and '-')", name, c)
		}
	}
	return nil
}

// looksSecret reports whether a field could be a token or a token hash:
// parse errors quote names and scopes, and must not quote those when an
// operator has pasted them into the wrong field.
func looksSecret(s string) bool {
	if strings.HasPrefix(s, TokenPrefix) {
		return true
	}
	return len(s) >= 40 && longestHexRun(s) == len(s)
}

// longestHexRun returns the length of the longest run of hex digits in s.
func longestHexRun(s string) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// entry is one token line.
type entry struct {
	id   Identity
	hash [sha256.Size]byte
	line int // 0-based index into the file's lines, for Revoke
}

// Set is a parsed tokens file. It is immutable: share it between goroutines
// and replace it whole (atomic.Pointer[Set]) to reload.
type Set struct {
	entries []entry
}

// Parse reads a tokens file: UTF-8 text, one token per line as
//
//	NAME SCOPES SHA256HEX
//
// separated by single spaces, where NAME is 1 to 64 bytes of
// [A-Za-z0-9._-] and unique in the file, SCOPES is as ParseScopes reads it,
// and SHA256HEX is the SHA-256 of the token in 64 lowercase hex digits,
// unique in the file. Lines that are blank or whose first non-blank
// character is '#' are ignored; a line may end in "\r\n".
//
// Errors are *LineError (inside any wrapping) and never quote a hash.
func Parse(r io.Reader) (*Set, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return parse(data)
}

func parse(data []byte) (*Set, error) {
	s := &Set{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	for i, raw := range splitLines(data) {
		n := i + 1
		line := strings.TrimSuffix(string(raw), "\r")
		if !utf8.ValidString(line) {
			return nil, &LineError{n, "not valid UTF-8"}
		}
		if t := strings.TrimLeft(line, " \t"); t == "" || t[0] == '#' {
			continue
		}
		fields := strings.Split(line, " ")
		if len(fields) != 3 || slices.Contains(fields, "") {
			return nil, &LineError{n, "want NAME SCOPES SHA256HEX separated by single spaces"}
		}
		name, scopeText, hexHash := fields[0], fields[1], fields[2]
		if looksSecret(name) || looksSecret(scopeText) {
			return nil, &LineError{n, "a token or token hash is out of place: want NAME SCOPES SHA256HEX in that order"}
		}
		if err := ValidName(name); err != nil {
			return nil, &LineError{n, err.Error()}
		}
		if prev, ok := names[name]; ok {
			return nil, &LineError{n, fmt.Sprintf("token name %q is already used on line %d", name, prev)}
		}
		scopes, err := ParseScopes(scopeText)
		if err != nil {
			// The error quotes the bad item, which may be a pasted secret
			// after a comma: say less then.
			if strings.Contains(scopeText, TokenPrefix) || longestHexRun(scopeText) >= 40 {
				return nil, &LineError{n, "invalid scopes, containing what looks like a token or a token hash"}
			}
			return nil, &LineError{n, err.Error()}
		}
		hash, ok := parseHash(hexHash)
		if !ok {
			return nil, &LineError{n, "the token hash must be 64 lowercase hex digits"}
		}
		// Two names for one token would make the identity depend on which
		// entry wins; it is always a copied line, so refuse it.
		if prev, ok := hashes[hash]; ok {
			return nil, &LineError{n, fmt.Sprintf("the token hash is the same as on line %d", prev)}
		}
		names[name], hashes[hash] = n, n
		s.entries = append(s.entries, entry{id: Identity{Name: name, Scopes: scopes}, hash: hash, line: i})
	}
	return s, nil
}

// splitLines splits data at '\n'; a final newline does not start a line.
func splitLines(data []byte) [][]byte {
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// parseHash decodes 64 lowercase hex digits. Uppercase is refused so that a
// hash has one spelling, as object IDs do.
func parseHash(s string) (h [sha256.Size]byte, ok bool) {
	if len(s) != 2*sha256.Size || strings.ToLower(s) != s {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, false
	}
	return h, true
}

// formatLine writes one token line the way parse reads it.
func formatLine(name string, scopes []Scope, hash [sha256.Size]byte) string {
	return name + " " + FormatScopes(scopes) + " " + hex.EncodeToString(hash[:])
}

// LoadFile reads and parses the tokens file at path. It returns an error
// wrapping ErrUnsafeMode if the file is writable by group or others (except
// on Windows, which has no such mode bits), and errors naming the path and
// line otherwise.
func LoadFile(path string) (*Set, error) {
	data, _, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return s, nil
}

// readFile reads the tokens file after checking, on the open file so that
// a rename in between cannot swap it, that it is a regular file nobody but
// its owner can write. It returns the file's permission bits.
func readFile(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("tokens file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("tokens file %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 {
		return nil, 0, fmt.Errorf("tokens file %s (mode %04o): %w", path, fi.Mode().Perm(), ErrUnsafeMode)
	}
	if fi.Size() > maxFileSize {
		return nil, 0, fmt.Errorf("tokens file %s: larger than %d bytes", path, maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("tokens file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, 0, fmt.Errorf("tokens file %s: larger than %d bytes", path, maxFileSize)
	}
	return data, fi.Mode().Perm(), nil
}

// Authenticate returns the identity whose hash matches the token. The
// identity is a copy the caller may keep and modify.
//
// It compares the token's hash with every entry in constant time and
// without stopping at a match, so the response time reveals neither which
// entry matched nor how much of a hash did. Tokens that are empty or longer
// than MaxTokenLen are refused before hashing; their length is no secret.
func (s *Set) Authenticate(token string) (*Identity, bool) {
	if s == nil || token == "" || len(token) > MaxTokenLen {
		return nil, false
	}
	h := hashToken(token)
	found := -1
	for i := range s.entries {
		eq := subtle.ConstantTimeCompare(h[:], s.entries[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil, false
	}
	id := s.entries[found].id
	return &Identity{Name: id.Name, Scopes: slices.Clone(id.Scopes)}, true
}

// Identities returns every token's name and scopes, in file order, without
// the hashes. The slice and scopes are copies.
func (s *Set) Identities() []Identity {
	if s == nil {
		return nil
	}
	ids := make([]Identity, len(s.entries))
	for i, e := range s.entries {
		ids[i] = Identity{Name: e.id.Name, Scopes: slices.Clone(e.id.Scopes)}
	}
	return ids
}

// Len returns the number of tokens.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// fileHeader starts a tokens file that Create makes, for the operator who
// opens it.
const fileHeader = "# strata index server tokens: NAME SCOPES SHA256(token), one a line.\n" +
	"# Managed with 'strata token create|list|revoke'; tokens themselves are never stored.\n"

// Create adds a token named name with the given scopes to the tokens file
// at path and returns the token, which exists nowhere else afterwards: the
// file keeps only its hash.
//
// It creates the file with mode 0600 if it is missing (the directory must
// exist), and otherwise keeps the file's mode, comments and other lines.
// The file is replaced atomically: a reader sees the old or the new file,
// never a partial one. It returns an error wrapping ErrDuplicateName if the
// name is taken, ErrUnsafeMode if the existing file is writable by group or
// others, and an error for an invalid name or scope or an empty scope list.
//
// Create and Revoke hold an exclusive lock on path + ".lock" from reading
// the file to replacing it, so updates by several processes at once are
// applied one after the other and none is lost.
func Create(path, name string, scopes []Scope) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	if len(scopes) == 0 {
		return "", errors.New("no scopes")
	}
	var uniq []Scope
	for _, sc := range scopes {
		if err := sc.validate(); err != nil {
			return "", err
		}
		if !slices.Contains(uniq, sc) {
			uniq = append(uniq, sc)
		}
	}
	unlock, err := lockFile(path)
	if err != nil {
		return "", err
	}
	defer unlock()
	data, mode, err := readFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data, mode = []byte(fileHeader), 0o600
	case err != nil:
		return "", err
	}
	s, err := parse(data)
	if err != nil {
		return "", fmt.Errorf("tokens file %s: %w", path, err)
	}
	for _, e := range s.entries {
		if e.id.Name == name {
			return "", fmt.Errorf("tokens file %s: %q: %w", path, name, ErrDuplicateName)
		}
	}
	token := newToken()
	out := make([]byte, 0, len(data)+256)
	out = append(out, data...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, formatLine(name, uniq, hashToken(token))...)
	out = append(out, '\n')
	if err := atomicfile.WriteBytes(path, mode, out); err != nil {
		return "", fmt.Errorf("tokens file %s: %w", path, err)
	}
	return token, nil
}

// Revoke removes the token named name from the tokens file at path,
// keeping every other line and the file's mode, and replacing the file
// atomically. A server stops accepting the token when it next loads the
// file. It returns an error wrapping ErrUnknownName if there is no such
// token, and ErrUnsafeMode as LoadFile does.
func Revoke(path, name string) error {
	unlock, err := lockFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	data, mode, err := readFile(path)
	if err != nil {
		return err
	}
	s, err := parse(data)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	i := slices.IndexFunc(s.entries, func(e entry) bool { return e.id.Name == name })
	if i < 0 {
		return fmt.Errorf("tokens file %s: %q: %w", path, name, ErrUnknownName)
	}
	lines := splitLines(data)
	lines = slices.Delete(lines, s.entries[i].line, s.entries[i].line+1)
	var out []byte
	for _, l := range lines {
		out = append(append(out, l...), '\n')
	}
	if err := atomicfile.WriteBytes(path, mode, out); err != nil {
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	return nil
}
