package repo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestSmallWindowSameBytes: the small-window encoders that compress frames
// of at most smallWindow bytes write exactly what the level's own window
// writes, so sealed frames (and their dedup, and FORMAT.md's vectors) do
// not change with the memory saving.
func TestSmallWindowSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"\"_id\":", "\"name\":\"", "value", "2026-01-01T00:00:00Z", "}\n{", ",", "\"tags\":[", "]"}
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		full, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 100, 4 << 10, 64 << 10, 256<<10 + 3000, smallWindow} {
			var b bytes.Buffer
			for b.Len() < n {
				if rng.IntN(4) == 0 {
					fmt.Fprintf(&b, "%x", rng.Uint64())
				} else {
					b.WriteString(words[rng.IntN(len(words))])
				}
			}
			src := b.Bytes()[:n]
			want := full.EncodeAll(src, nil)
			got := encoder(level, n).EncodeAll(src, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("level %v, %d bytes: small window writes %d bytes, the level's window %d", level, n, len(got), len(want))
			}
		}
		full.Close()
	}
	if encoder(zstd.SpeedFastest, smallWindow+1) == encoder(zstd.SpeedFastest, smallWindow) {
		t.Fatal("a frame above the small window shares its encoder")
	}
}
