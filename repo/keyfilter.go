package repo

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// Segment key filters (FORMAT.md §15.1, version 2): a Bloom filter of the
// keys a segment's events touch, in its manifest, so a reader looking for
// one key skips the segments that never touch it. Bit i of the filter is
// bit i%8 of byte i/8. A key sets, for j in 0..hashes-1, bit
// (h1 + j·h2) mod bits, where h1 and h2|1 are the first two u64le of the
// unkeyed BLAKE3 of the key (the manifest is sealed, so the filter reveals
// nothing without the metadata key).

// Key filter sizes: KeyFilterBitsPerKey bits a key (about 0.8% false
// positives with KeyFilterHashes), at most MaxKeyFilterBytes of filter (a
// segment with more keys gets a fuller, still correct, filter).
const (
	KeyFilterBitsPerKey = 10
	KeyFilterHashes     = 7
	MaxKeyFilterBytes   = 192 << 10
	maxKeyFilterHashes  = 32
)

// KeyFilter is a segment manifest's `key_filter`.
type KeyFilter struct {
	Bits   uint64 `json:"bits"`
	Hashes int    `json:"hashes"`
	Data   []byte `json:"data"` // base64 in JSON
}

// NewKeyFilter returns an empty filter sized for keys keys.
func NewKeyFilter(keys int) *KeyFilter {
	n := (max(keys, 1)*KeyFilterBitsPerKey + 7) / 8
	n = min(max(n, 8), MaxKeyFilterBytes)
	return &KeyFilter{Bits: uint64(n) * 8, Hashes: KeyFilterHashes, Data: make([]byte, n)}
}

func keyFilterHashes(key []byte) (h1, h2 uint64) {
	sum := blake3.Sum256(key)
	return binary.LittleEndian.Uint64(sum[0:8]), binary.LittleEndian.Uint64(sum[8:16]) | 1
}

// Add records key. The filter MUST be valid (NewKeyFilter's are).
func (f *KeyFilter) Add(key []byte) {
	h1, h2 := keyFilterHashes(key)
	for j := range uint64(f.Hashes) {
		b := (h1 + j*h2) % f.Bits
		f.Data[b/8] |= 1 << (b % 8)
	}
}

// MayContain reports whether key may be one the filter recorded: false
// only when it certainly is not. An invalid filter (Validate) answers
// true: it never makes a reader skip a segment.
func (f *KeyFilter) MayContain(key []byte) bool {
	if f == nil || f.Validate() != nil {
		return true
	}
	h1, h2 := keyFilterHashes(key)
	for j := range uint64(f.Hashes) {
		b := (h1 + j*h2) % f.Bits
		if f.Data[b/8]&(1<<(b%8)) == 0 {
			return false
		}
	}
	return true
}

// Validate checks the filter's fields agree: bits a positive multiple of
// 8 equal to the data's bits, 1 to 32 hashes.
func (f *KeyFilter) Validate() error {
	switch {
	case f.Bits == 0 || f.Bits%8 != 0 || f.Bits/8 != uint64(len(f.Data)):
		return fmt.Errorf("key filter: %d bits for %d bytes", f.Bits, len(f.Data))
	case f.Hashes < 1 || f.Hashes > maxKeyFilterHashes:
		return errors.New("key filter: hashes out of range")
	}
	return nil
}
