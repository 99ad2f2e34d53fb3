package repo

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels callers branch on. They are wrapped with context; test with errors.Is.
var (
	// ErrWrongPassword: no key file opens with the given password.
	ErrWrongPassword = errors.New("wrong password: no key file of this repository opens with it")
	// ErrUnsupportedVersion: an object declares a format version this build does not know.
	ErrUnsupportedVersion = errors.New("unsupported repository format version")
	// ErrNotRepository: the store holds no config object.
	ErrNotRepository = errors.New("no repository here (no config object)")
	// ErrExists: init on a store that already holds a repository.
	ErrExists = errors.New("a repository already exists here")
	// ErrCorrupt is matched by every *CorruptError.
	ErrCorrupt = errors.New("corrupt data")
)

// CorruptError reports stored bytes that fail authentication, a checksum or
// parsing. Object and Offset locate the damage; Hint tells the operator what to do.
type CorruptError struct {
	Object string // object name, or "pack <id>" for a reconstructed pack
	Offset int64  // byte offset in the object, -1 when unknown
	Reason string
	Hint   string
	Err    error // the underlying cause, if any (for example shard.ErrTooFewShards)
}

func (e *CorruptError) Error() string {
	s := "corrupt " + e.Object
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	s += ": " + e.Reason
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap returns the underlying cause, so errors.Is sees through to it.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true for every CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Hints by kind of object. Only packs have parity: a hint never sends the
// operator to a repair that cannot rebuild the object it is about.
const (
	hintCheck    = "run 'strata check --read-data' to see the extent and 'strata check --read-data --repair' to rebuild from parity"
	hintMetadata = "from format version 2 every metadata object has a second copy (copies/<name>), which readers fall back to: this one and its copy are both unreadable, or the repository is version 1 ('strata upgrade' adds copies); 'strata check' lists what depends on it, and only another store (--store) may still hold it"
	hintIndex    = "index files are rebuilt from the packs' own trailers: 'strata check --repair' re-indexes the packs and removes the damaged file"
	hintKeyFile  = "a key file and its copy (copies/keys/…, format version 2) are both unreadable, or the repository is version 1: 'strata key remove ID' drops a damaged one and 'strata key add' wraps the master key under a password again"
)

// hintFor returns the hint for damage to the named object.
func hintFor(object string) string {
	switch {
	case strings.HasPrefix(object, "pack "), strings.HasPrefix(object, DataPrefix):
		return hintCheck
	case strings.HasPrefix(object, KeysPrefix):
		return hintKeyFile
	case strings.HasPrefix(object, IndexPrefix):
		return hintIndex
	}
	return hintMetadata
}

func corrupt(object string, offset int64, format string, args ...any) *CorruptError {
	return &CorruptError{Object: object, Offset: offset, Reason: fmt.Sprintf(format, args...), Hint: hintFor(object)}
}
