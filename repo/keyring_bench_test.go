package repo

import (
	"fmt"
	"testing"
)

// BenchmarkOpenOldFrame measures the cost of trial decryption (FORMAT.md
// §4.1): opening a 256 KiB frame sealed under generation 0 with a keyring
// of n generations: cold, every newer generation is tried and fails first
// (the first frame of a run); warm, the generation that opened the last
// frame is tried first (the rest of the run).
func BenchmarkOpenOldFrame(b *testing.B) {
	for _, cipherName := range []string{CipherXChaCha20Poly1305, CipherAES256GCM} {
		for _, n := range []int{1, 2, 4, 16} {
			ring := make(Keyring, n)
			for i := range ring {
				ring[i].Gen = uint32(i)
				ring[i].Key[0] = byte(i + 1)
			}
			k, err := deriveRing(ring, cipherName, ring.Newest())
			if err != nil {
				b.Fatal(err)
			}
			frame := seal(nil, k.gens[len(k.gens)-1].data, make([]byte, 256<<10), adFrame)
			for _, cold := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/generations=%d/cold=%v", cipherName, n, cold), func(b *testing.B) {
					b.SetBytes(256 << 10)
					for b.Loop() {
						if cold {
							k.lastData.Store(0) // the newest generation first: every other try fails
						}
						if _, err := k.openData(frame, adFrame); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
