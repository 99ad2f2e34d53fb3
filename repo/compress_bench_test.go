package repo

import (
	"bytes"
	"crypto/rand"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/internal/sample"
)

// Compression options for frames (issue 15 item 1), measured on the
// project's sample export cut by the record chunker as a backup cuts it:
// zstd level, frame size, a dictionary trained on the stream's first
// chunks, and skipping frames that will not compress. Each sub-benchmark
// reports the compressed share of the input ("ratio") and MB/s of one
// core, compressing (BenchmarkFrameCompression) and decompressing
// (BenchmarkFrameDecompression). Results: bench/RESULTS.md.
//
//	go test -run '^$' -bench 'Frame(Compression|Decompression)|Incompressible' -benchtime 3x ./repo/

var benchChunks = sync.OnceValue(func() [][]byte {
	g, err := sample.New(sample.Options{Docs: 30000})
	if err != nil {
		panic(err)
	}
	var b bytes.Buffer
	if err := g.Export(&b, 0); err != nil {
		panic(err)
	}
	ch := chunk.NewRecords(&b, [32]byte{}, chunk.RecordParams{Min: 1024, Avg: 2560, Max: 64 << 10, Delim: '\n'})
	var out [][]byte
	for {
		c, err := ch.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			panic(err)
		}
		out = append(out, bytes.Clone(c))
	}
})

// benchFrames concatenates chunks into frames of about size bytes, as the
// backup's dedupAndGroup does.
func benchFrames(chunks [][]byte, size int) [][]byte {
	var frames [][]byte
	var cur []byte
	for _, c := range chunks {
		cur = append(cur, c...)
		if len(cur) >= size {
			frames = append(frames, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		frames = append(frames, cur)
	}
	return frames
}

type compressionOption struct {
	name  string
	level zstd.EncoderLevel
	frame int
	dict  bool
}

var compressionOptions = []compressionOption{
	{"fastest/256K", zstd.SpeedFastest, 256 << 10, false},
	{"default/256K", zstd.SpeedDefault, 256 << 10, false},
	{"better/256K", zstd.SpeedBetterCompression, 256 << 10, false},
	{"fastest/1M", zstd.SpeedFastest, 1 << 20, false},
	{"default/1M", zstd.SpeedDefault, 1 << 20, false},
	{"fastest/4M", zstd.SpeedFastest, 4 << 20, false},
	{"fastest/256K+dict", zstd.SpeedFastest, 256 << 10, true},
	{"default/256K+dict", zstd.SpeedDefault, 256 << 10, true},
	{"fastest/64K", zstd.SpeedFastest, 64 << 10, false},
	{"fastest/64K+dict", zstd.SpeedFastest, 64 << 10, true},
}

// trainDict builds a 64 KiB dictionary from the first 4 MiB of chunks,
// as a backup could from the start of its stream's first export.
func trainDict(chunks [][]byte) []byte {
	var sampleChunks [][]byte
	n := 0
	for _, c := range chunks {
		if n >= 4<<20 {
			break
		}
		sampleChunks = append(sampleChunks, c)
		n += len(c)
	}
	d, err := dict.BuildZstdDict(sampleChunks, dict.Options{MaxDictSize: 64 << 10, HashBytes: 6, ZstdDictID: 1})
	if err != nil {
		panic(err)
	}
	return d
}

var benchDict = sync.OnceValue(func() []byte { return trainDict(benchChunks()) })

func (o compressionOption) codecs() (*zstd.Encoder, *zstd.Decoder) {
	eo := []zstd.EOption{zstd.WithEncoderLevel(o.level), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true)}
	do := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxFrameRaw)}
	if o.dict {
		eo = append(eo, zstd.WithEncoderDict(benchDict()))
		do = append(do, zstd.WithDecoderDicts(benchDict()))
	}
	enc, err := zstd.NewWriter(nil, eo...)
	if err != nil {
		panic(err)
	}
	dec, err := zstd.NewReader(nil, do...)
	if err != nil {
		panic(err)
	}
	return enc, dec
}

func BenchmarkFrameCompression(b *testing.B) {
	chunks := benchChunks()
	for _, o := range compressionOptions {
		b.Run(o.name, func(b *testing.B) {
			frames := benchFrames(chunks, o.frame)
			enc, _ := o.codecs()
			raw, comp := 0, 0
			for _, f := range frames {
				raw += len(f)
			}
			b.SetBytes(int64(raw))
			b.ResetTimer()
			var dst []byte
			for range b.N {
				comp = 0
				for _, f := range frames {
					dst = enc.EncodeAll(f, dst[:0])
					comp += len(dst)
				}
			}
			b.ReportMetric(float64(comp)/float64(raw), "ratio")
		})
	}
}

func BenchmarkFrameDecompression(b *testing.B) {
	chunks := benchChunks()
	for _, o := range compressionOptions {
		b.Run(o.name, func(b *testing.B) {
			frames := benchFrames(chunks, o.frame)
			enc, dec := o.codecs()
			raw := 0
			comp := make([][]byte, len(frames))
			for i, f := range frames {
				raw += len(f)
				comp[i] = enc.EncodeAll(f, nil)
			}
			b.SetBytes(int64(raw))
			b.ResetTimer()
			var dst []byte
			for range b.N {
				for i, c := range comp {
					var err error
					if dst, err = dec.DecodeAll(c, dst[:0]); err != nil || len(dst) != len(frames[i]) {
						b.Fatalf("decode: %v", err)
					}
				}
			}
		})
	}
}

// BenchmarkIncompressible: a frame of list blobs (32-byte IDs, random to
// zstd) at the fastest level, compressed and then stored anyway because it
// saves nothing, against an entropy estimate on a sample that skips it.
func BenchmarkIncompressible(b *testing.B) {
	frame := make([]byte, 256<<10)
	rand.Read(frame)
	text := bytes.Join(benchFrames(benchChunks(), 256<<10)[:1], nil)
	b.Run("try-zstd", func(b *testing.B) {
		enc, _ := compressionOption{level: zstd.SpeedFastest}.codecs()
		b.SetBytes(int64(len(frame)))
		var dst []byte
		for range b.N {
			dst = enc.EncodeAll(frame, dst[:0])
		}
		b.ReportMetric(float64(len(dst))/float64(len(frame)), "ratio")
	})
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{{"entropy/random", frame, true}, {"entropy/ndjson", text, false}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for range b.N {
				if Incompressible(tc.data) != tc.want {
					b.Fatalf("Incompressible = %v", !tc.want)
				}
			}
		})
	}
}
