package index

import (
	"encoding/binary"

	"github.com/strata-backup/strata/repo"
)

// IDSet is a growable set of blob IDs for deduplication, with open
// addressing. It keys on the first 128 bits of each ID: IDs are keyed BLAKE3
// outputs, so two distinct blobs share a 128-bit prefix with probability
// about n²/2¹²⁹ (below 2⁻⁴⁸ at 2⁴⁰ blobs), and a slot costs 16 bytes, about
// 21 bytes an ID at the load factor of at most 3/4. Not safe for concurrent use.
type IDSet struct {
	slots []key // a zero key marks an empty slot
	n     int
	zero  bool // the all-zero key is a member (it cannot be stored in a slot)
}

type key [16]byte

func keyOf(id repo.ID) key { return key(id[:16]) }

// NewIDSet returns a set sized for about n IDs.
func NewIDSet(n int) *IDSet {
	size := 64
	for size*3/4 < n {
		size *= 2
	}
	return &IDSet{slots: make([]key, size)}
}

// Len returns the number of members.
func (s *IDSet) Len() int { return s.n }

func (s *IDSet) slot(k key) int {
	// IDs are keyed hashes: their first bytes are already uniform.
	mask := len(s.slots) - 1
	i := int(binary.LittleEndian.Uint64(k[:8])) & mask
	for s.slots[i] != k && s.slots[i] != (key{}) {
		i = (i + 1) & mask
	}
	return i
}

// Has reports membership.
func (s *IDSet) Has(id repo.ID) bool {
	k := keyOf(id)
	if k == (key{}) {
		return s.zero
	}
	return s.slots[s.slot(k)] == k
}

// Add inserts id and reports whether it was new.
func (s *IDSet) Add(id repo.ID) bool {
	k := keyOf(id)
	if k == (key{}) {
		added := !s.zero
		s.zero = true
		return added
	}
	i := s.slot(k)
	if s.slots[i] == k {
		return false
	}
	s.slots[i] = k
	s.n++
	if s.n > len(s.slots)*3/4 {
		s.grow()
	}
	return true
}

func (s *IDSet) grow() {
	old := s.slots
	s.slots = make([]key, len(old)*2)
	for _, k := range old {
		if k != (key{}) {
			s.slots[s.slot(k)] = k
		}
	}
}
