package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-backup/strata/repo"
)

// ErrBadSubset is returned (wrapped) by ParseSubset for a spec that is not
// N/M with 1 ≤ N ≤ M, nor P% with 0 < P ≤ 100.
var ErrBadSubset = errors.New("bad data subset")

// MaxSubsets bounds M in N/M: beyond it a slice of a real repository is
// empty or one pack, and the bound keeps N·2⁶⁴/M exact.
const MaxSubsets = 1 << 20

// Subset is a part of the repository's packs to read (`check
// --read-data-subset`). Either N and M are set (the Nth of M slices) or
// Percent is.
//
// Slice N of M holds the packs whose ID, its first 8 bytes read as a
// big-endian number x, has ⌊x·M/2⁶⁴⌋ = N−1: M contiguous ranges of the ID
// space in ID order, so slices 1/M … M/M together read every pack exactly
// once, and a pack stays in its slice as the repository grows. Percent
// picks that share of the packs at random, rounded up, a different set each
// run.
type Subset struct {
	N, M    int
	Percent float64
}

// ParseSubset parses "N/M" or "P%" (P may have a fraction: "2.5%").
func ParseSubset(s string) (Subset, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0 && v <= 100) {
			return Subset{}, fmt.Errorf("%w %q: a percentage must be more than 0 and at most 100", ErrBadSubset, s)
		}
		return Subset{Percent: v}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return Subset{}, fmt.Errorf("%w %q: want N/M (the Nth of M slices) or P%% (a random P percent)", ErrBadSubset, s)
	}
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || m < 1 || m > MaxSubsets || n < 1 || n > m {
		return Subset{}, fmt.Errorf("%w %q: want N/M with 1 ≤ N ≤ M ≤ %d", ErrBadSubset, s, MaxSubsets)
	}
	return Subset{N: n, M: m}, nil
}

// String returns the spec ParseSubset reads.
func (s Subset) String() string {
	if s.M > 0 {
		return fmt.Sprintf("%d/%d", s.N, s.M)
	}
	return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
}

// SliceOf returns the slice (1 … m) of m that the pack id belongs to.
func SliceOf(id repo.ID, m int) int {
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(id[:8]), uint64(m))
	return int(hi) + 1
}

// Select returns the packs of the subset, in the order given; it is a
// CheckOptions.Select.
func (s Subset) Select(packs []repo.PackInfo) []repo.PackInfo {
	if s.M > 0 {
		var out []repo.PackInfo
		for _, pi := range packs {
			if SliceOf(pi.ID, s.M) == s.N {
				out = append(out, pi)
			}
		}
		return out
	}
	n := int(math.Ceil(float64(len(packs)) * s.Percent / 100))
	n = min(n, len(packs))
	idx := rand.Perm(len(packs))[:n]
	slices.Sort(idx)
	out := make([]repo.PackInfo, n)
	for i, j := range idx {
		out[i] = packs[j]
	}
	return out
}
