package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/strata-backup/strata/repo"
)

// Kind is what a scope permits. The zero value is not a valid kind.
type Kind string

// The scope kinds. Admin implies every other kind, for every stream.
const (
	// Read permits lookups that change nothing: the index, coverage, restore
	// plans. It is not limited to streams.
	Read Kind = "read"
	// Backup permits append-only writes (new objects, snapshots, log
	// segments) for the streams its glob matches; never deletion.
	Backup Kind = "backup"
	// Restore permits downloading the data of the streams its glob matches.
	Restore Kind = "restore"
	// Admin permits forget, prune, audit and check, and implies Read, and
	// Backup and Restore for every stream.
	Admin Kind = "admin"
)

// maxGlob is the longest glob: no stream name is longer (repo.ValidStream).
const maxGlob = 200

// Scope is one permission. Glob is set exactly when Kind is Backup or
// Restore.
type Scope struct {
	Kind Kind
	Glob string
}

// String returns the scope as ParseScopes reads it: "read", "admin",
// "backup:GLOB" or "restore:GLOB".
func (sc Scope) String() string {
	if sc.Glob == "" {
		return string(sc.Kind)
	}
	return string(sc.Kind) + ":" + sc.Glob
}

// validate reports whether sc is a scope ParseScopes could have returned,
// so Create refuses hand-built scopes that would not load again.
func (sc Scope) validate() error {
	switch sc.Kind {
	case Read, Admin:
		if sc.Glob != "" {
			return fmt.Errorf("scope %q: %s takes no stream glob", sc.String(), sc.Kind)
		}
	case Backup, Restore:
		if sc.Glob == "" {
			return fmt.Errorf("scope %q: %s needs a stream glob, for example %s:shop/*", sc.String(), sc.Kind, sc.Kind)
		}
		if err := validGlob(sc.Glob); err != nil {
			return fmt.Errorf("scope %q: %w", sc.String(), err)
		}
	default:
		return fmt.Errorf("scope %q: unknown kind %q (want read, backup:GLOB, restore:GLOB or admin)", sc.String(), sc.Kind)
	}
	return nil
}

// ParseScopes reads comma-separated scopes such as
// "read,backup:shop/*,restore:*,admin". Items are case-sensitive and may not
// be empty or carry spaces; a repeated scope is kept once, in the place it
// first appears. It returns an error for an empty list, an unknown kind, a
// glob on read or admin, a missing or invalid glob on backup or restore.
func ParseScopes(s string) ([]Scope, error) {
	if s == "" {
		return nil, fmt.Errorf("no scopes (want read, backup:GLOB, restore:GLOB or admin, comma-separated)")
	}
	var scopes []Scope
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return nil, fmt.Errorf("scopes %q: empty item", s)
		}
		kind, glob, colon := strings.Cut(item, ":")
		sc := Scope{Kind: Kind(kind), Glob: glob}
		if err := sc.validate(); err != nil {
			return nil, err
		}
		// validate cannot tell "read:" from "read": refuse the colon, so
		// every accepted item is spelled the one way FormatScopes writes it.
		if colon && glob == "" {
			return nil, fmt.Errorf("scope %q: %s takes no stream glob", item, sc.Kind)
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return scopes, nil
}

// FormatScopes writes scopes the way ParseScopes reads them, in their order.
// The result parses back only if every scope is valid and there is at least
// one.
func FormatScopes(scopes []Scope) string {
	parts := make([]string, len(scopes))
	for i, sc := range scopes {
		parts[i] = sc.String()
	}
	return strings.Join(parts, ",")
}

// validGlob checks a glob: 1 to 200 bytes of stream-name characters
// (repo.ValidStream), '*' and '?'.
func validGlob(g string) error {
	if len(g) == 0 || len(g) > maxGlob {
		return fmt.Errorf("stream glob must be 1 to %d bytes", maxGlob)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '/' || c == '*' || c == '?') {
			return fmt.Errorf("stream glob: byte %q not allowed (use stream-name characters, '*' and '?')", c)
		}
	}
	return nil
}

// ValidGlob checks a stream glob as scopes take it: stream-name
// characters, '*' and '?'.
func ValidGlob(g string) error { return validGlob(g) }

// MatchGlob reports whether glob matches all of name, as scopes match
// stream names (see matchGlob).
func MatchGlob(glob, name string) bool { return matchGlob(glob, name) }

// matchGlob reports whether glob matches all of name. '*' matches any run of
// bytes, '/' included, and '?' one byte other than '/'. Stream names are
// ASCII, so bytes are characters.
//
// On a mismatch it backtracks only to the most recent '*', letting it
// swallow one more byte: because a later '*' can absorb anything an earlier
// one could, retrying earlier stars never finds a match the latest one
// misses. That keeps the work at O(len(glob)·len(name)) instead of
// exponential for globs like "*a*a*a*b".
func matchGlob(glob, name string) bool {
	gi, ni := 0, 0
	star, resume := -1, 0 // the last '*' seen and where its match ends
	for ni < len(name) {
		if gi < len(glob) {
			c := glob[gi]
			if c == '*' {
				star, resume = gi, ni
				gi++
				continue
			}
			if c == '?' && name[ni] != '/' || c != '?' && c == name[ni] {
				gi++
				ni++
				continue
			}
		}
		if star < 0 {
			return false
		}
		resume++
		gi, ni = star+1, resume
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}

// Identity is an authenticated token: its name in the tokens file and the
// scopes it grants.
type Identity struct {
	Name   string
	Scopes []Scope
}

// Allows reports whether the identity may do an operation of kind k on
// stream. A non-empty stream that is not a valid stream name
// (repo.ValidStream) is never allowed, so names such as "../x" cannot slip
// past a glob.
//
// stream "" means the operation concerns no single stream. For Backup and
// Restore it then asks whether the identity may write or read any stream
// at all, as for content-addressed objects that streams share. For Read and
// Admin the stream does not matter beyond being valid.
//
// Admin allows everything. A nil identity allows nothing.
func (id *Identity) Allows(k Kind, stream string) bool {
	if id == nil {
		return false
	}
	if stream != "" && repo.ValidStream(stream) != nil {
		return false
	}
	switch k {
	case Read, Backup, Restore, Admin:
	default:
		return false
	}
	for _, sc := range id.Scopes {
		if sc.Kind == Admin {
			return true
		}
		if sc.Kind != k {
			continue
		}
		if sc.Glob == "" || stream == "" || matchGlob(sc.Glob, stream) {
			return true
		}
	}
	return false
}

// AllowsAllStreams reports whether the identity may do operations of kind k
// on every stream, including streams that do not exist yet: through admin,
// through read (which is not limited to streams), or through a backup or
// restore scope whose glob is exactly "*". The server uses it to decide
// whether to answer a listing unfiltered.
func (id *Identity) AllowsAllStreams(k Kind) bool {
	if id == nil {
		return false
	}
	for _, sc := range id.Scopes {
		if sc.Kind == Admin {
			return true
		}
		if sc.Kind == k && (k == Read || (k == Backup || k == Restore) && sc.Glob == "*") {
			return true
		}
	}
	return false
}
