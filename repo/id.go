package repo

import (
	"bytes"
	"encoding/hex"
	"fmt"
)

// IDSize is the length of every ID in the repository: blob IDs, pack IDs and
// object names are all 32-byte BLAKE3 outputs.
const IDSize = 32

// ID names a blob (keyed BLAKE3 of its plaintext) or an object (BLAKE3 of its
// stored bytes). FORMAT.md, "IDs".
type ID [IDSize]byte

// String returns the lowercase hex form used in object names.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for display only.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// Compare orders IDs bytewise, the order of index files.
func (id ID) Compare(other ID) int { return bytes.Compare(id[:], other[:]) }

// IsZero reports whether id is all zeros (never a real ID in practice).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses 64 lowercase hex digits: the one form IDs are written in,
// so an object name has exactly one spelling and names that parse always
// round-trip.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*IDSize)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'F' {
			return id, fmt.Errorf("invalid ID %q: hex digits must be lowercase", s)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return id, nil
}

// MarshalText encodes the ID as hex (JSON manifests).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
