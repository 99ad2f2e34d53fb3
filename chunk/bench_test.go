package chunk

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

// benchData is ~64 MiB of NDJSON with records of 300–1500 bytes, built once.
var benchData = sync.OnceValue(func() []byte {
	data, _ := ndjson(42, 64<<20/900, 300, 1500)
	return data
})

// benchChunker drains a fresh chunker over benchData per iteration; MB/s
// includes the copy out of the source reader and one allocation per chunk.
func benchChunker(b *testing.B, mk func(io.Reader) Chunker) {
	b.Helper()
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	chunks := 0
	for b.Loop() {
		c := mk(bytes.NewReader(data))
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			chunks++
		}
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/float64(chunks), "B/chunk")
}

// BenchmarkRecords measures record mode with the repository defaults.
func BenchmarkRecords(b *testing.B) {
	benchChunker(b, func(r io.Reader) Chunker { return NewRecords(r, seq32(), defaultRecord) })
}

// BenchmarkRabin measures raw mode with the repository defaults.
func BenchmarkRabin(b *testing.B) {
	pol := testPol(b)
	p := RabinParams{Min: 512 << 10, Max: 8 << 20, AverageBits: 20}
	benchChunker(b, func(r io.Reader) Chunker { return NewRabin(r, pol, p) })
}

// BenchmarkGearUpdate measures the record hash alone over 1 KiB records.
func BenchmarkGearUpdate(b *testing.B) {
	g := newGearTables(seq32())
	rec := benchData()[:1024]
	b.SetBytes(int64(len(rec)))
	var h uint64
	for b.Loop() {
		h ^= g.update(0, rec)
	}
	_ = h
}
