package repo

import (
	"fmt"
	"testing"
)

// A key filter never rules out a key it holds, rules out most others, and
// an invalid one rules out nothing.
func TestKeyFilter(t *testing.T) {
	const n = 20000
	f := NewKeyFilter(n)
	for i := range n {
		f.Add(fmt.Appendf(nil, "key-%d", i))
	}
	for i := range n {
		if !f.MayContain(fmt.Appendf(nil, "key-%d", i)) {
			t.Fatalf("key-%d ruled out", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.MayContain(fmt.Appendf(nil, "key-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Errorf("false positives %.3f, want about 0.008", rate)
	}
	big := NewKeyFilter(10_000_000)
	if len(big.Data) != MaxKeyFilterBytes {
		t.Errorf("a filter of %d bytes, over the cap", len(big.Data))
	}
	for _, bad := range []*KeyFilter{
		{Bits: 64, Hashes: 7, Data: make([]byte, 4)},
		{Bits: 60, Hashes: 7, Data: make([]byte, 8)},
		{Bits: 64, Hashes: 0, Data: make([]byte, 8)},
		{Bits: 64, Hashes: 99, Data: make([]byte, 8)},
		nil,
	} {
		if !bad.MayContain([]byte("x")) {
			t.Errorf("invalid filter %+v ruled a key out", bad)
		}
	}
}
