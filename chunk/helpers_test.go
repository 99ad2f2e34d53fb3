package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"
)

// defaultRecord are the repository's default record-mode parameters.
var defaultRecord = RecordParams{Min: 1024, Avg: 2560, Max: 65536, Delim: '\n'}

// seq32 is the seed 0, 1, …, 31 of the golden tests.
func seq32() (s [32]byte) {
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

// collect drains c and returns its chunks. It fails the test if a chunk comes
// with an error or is empty, and returns the first error other than io.EOF.
func collect(t testing.TB, c Chunker) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	for {
		b, err := c.Next()
		if err != nil {
			if b != nil {
				t.Fatalf("Next returned %d bytes together with error %v", len(b), err)
			}
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		if len(b) == 0 {
			t.Fatalf("Next returned an empty chunk after %d chunks", len(out))
		}
		out = append(out, b)
	}
}

// mustCollect is collect for inputs that cannot fail.
func mustCollect(t testing.TB, c Chunker) [][]byte {
	t.Helper()
	out, err := collect(t, c)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return out
}

func lengths(chunks [][]byte) []int {
	ls := make([]int, len(chunks))
	for i, c := range chunks {
		ls[i] = len(c)
	}
	return ls
}

// refGear derives the Gear table the long way round, through the streaming
// BLAKE3 API, as an independent check of gearTable.
func refGear(seed [32]byte) [256]uint64 {
	h := blake3.NewDeriveKey("strata v1 2026-11-24 record chunker gear table")
	h.Write(seed[:])
	var out [2048]byte
	if _, err := io.ReadFull(h.Digest(), out[:]); err != nil {
		panic(err)
	}
	var g [256]uint64
	for i := range g {
		for j := 7; j >= 0; j-- {
			g[i] = g[i]<<8 | uint64(out[8*i+j])
		}
	}
	return g
}

// refRecords is the record-mode algorithm written byte by byte exactly as the
// package documentation states it; it returns the chunk lengths.
func refRecords(data []byte, seed [32]byte, p RecordParams) []int {
	g := refGear(seed)
	s := uint64(p.Avg - p.Min)
	var lens []int
	var h uint64
	L, n := 0, 0
	for _, b := range data {
		L++
		n++
		h = bits.RotateLeft64(h, 1) ^ g[b]
		if b == p.Delim {
			m := min(n, L-p.Min+1)
			cut := m >= 1 && (uint64(m) >= s || h>>32 < (uint64(m)<<32)/s)
			h, n = 0, 0
			if cut {
				lens = append(lens, L)
				L = 0
				continue
			}
		}
		if L == p.Max {
			lens = append(lens, L)
			L = 0
		}
	}
	if L > 0 {
		lens = append(lens, L)
	}
	return lens
}

var words = []string{"order", "shipped", "pending", "customer", "invoice", "alpha", "beta",
	"refund", "warehouse", "Berlin", "Lyon", "priority", "express", "note", "item", "qty",
	"the", "a", "of", "and", "returned", "damaged", "gift", "wrap", "discount", "2026"}

// ndjsonRecord returns one NDJSON document of exactly size bytes (size ≥ 200),
// newline included, shaped like a document-store export.
func ndjsonRecord(r *rand.Rand, id, size int) []byte {
	b := fmt.Appendf(make([]byte, 0, size), `{"_id":"%016x%08x","seq":%d,"email":"user%d@example.com",`+
		`"created":"2026-%02d-%02dT%02d:%02d:%02dZ","status":%q,"score":%d,"body":"`,
		r.Uint64(), r.Uint32(), id, r.IntN(1e6), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60),
		[]string{"new", "paid", "shipped", "closed"}[r.IntN(4)], r.IntN(100000))
	for len(b) < size-3 {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, ' ')
	}
	b = append(b[:size-3], `"}`+"\n"...)
	return b
}

// ndjson returns n records of sizes uniform in [lo, hi] and each record's offset.
func ndjson(seed uint64, n, lo, hi int) (data []byte, offs []int) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		offs = append(offs, len(data))
		data = append(data, ndjsonRecord(r, i, lo+r.IntN(hi-lo+1))...)
	}
	return data, offs
}

// randomBytes returns n pseudo-random bytes (stable across Go versions: PCG).
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// splitReader returns the data in reads of pseudo-random sizes 0..max,
// sometimes with io.EOF on the last data-bearing read.
type splitReader struct {
	data []byte
	r    *rand.Rand
	max  int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(s.r.IntN(s.max+1), len(p), len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	if len(s.data) == 0 && s.r.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// errBoom is the failure of failReader.
var errBoom = errors.New("disk on fire")

// failReader returns its data, then fails with errBoom.
type failReader struct{ rd io.Reader }

func (f failReader) Read(p []byte) (int, error) {
	n, err := f.rd.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

// stallReader never returns data nor an error.
type stallReader struct{}

func (stallReader) Read([]byte) (int, error) { return 0, nil }

// checkConcat fails the test unless the chunks concatenate to want.
func checkConcat(t testing.TB, chunks [][]byte, want []byte) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, want) {
		t.Fatalf("concatenated chunks: %d bytes, differ from the %d-byte input", len(got), len(want))
	}
}
