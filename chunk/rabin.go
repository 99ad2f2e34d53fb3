package chunk

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/restic/chunker"
)

// MaxRabinChunk is the largest allowed RabinParams.Max (1 GiB).
const MaxRabinChunk = 1 << 30

// RabinParams are the raw-mode parameters from the repository config.
// Repository defaults: Min 512 KiB, Max 8 MiB, AverageBits 20 (about 1 MiB).
type RabinParams struct {
	// Min is the least length of any chunk but the last; at least 64, the
	// Rabin window size (restic/chunker misbehaves below it).
	Min uint
	// Max is the greatest chunk length; a chunk reaching it is cut there.
	Max uint
	// AverageBits sets the cut probability: a cut where the low AverageBits
	// bits of the window digest are zero, one per 2^AverageBits bytes.
	AverageBits int
}

// Validate reports whether 64 ≤ Min ≤ Max ≤ MaxRabinChunk and
// 1 ≤ AverageBits ≤ 32; the error wraps ErrInvalidParams.
func (p RabinParams) Validate() error {
	if p.Min < 64 || p.Min > p.Max || p.Max > MaxRabinChunk || p.AverageBits < 1 || p.AverageBits > 32 {
		return fmt.Errorf("chunk: rabin params min %d max %d average bits %d: want 64 ≤ min ≤ max ≤ %d, 1 ≤ average bits ≤ 32: %w",
			p.Min, p.Max, p.AverageBits, MaxRabinChunk, ErrInvalidParams)
	}
	return nil
}

// NewRabin returns a raw-mode Chunker over src using restic/chunker with the
// repository's secret polynomial pol, which MUST be irreducible of degree 53.
// An empty src gives io.EOF at once. If pol or p is invalid, Next returns an
// error wrapping ErrInvalidParams.
func NewRabin(src io.Reader, pol chunker.Pol, p RabinParams) Chunker {
	if err := p.Validate(); err != nil {
		return errorChunker{err}
	}
	if !validPolynomial(pol) {
		return errorChunker{fmt.Errorf("chunk: rabin polynomial %v: want irreducible of degree 53: %w", pol, ErrInvalidParams)}
	}
	c, _ := rabinPool.Get().(*chunker.Chunker)
	if c == nil {
		c = chunker.NewWithBoundaries(src, pol, p.Min, p.Max)
	} else {
		c.ResetWithBoundaries(src, pol, p.Min, p.Max)
	}
	c.SetAverageBits(p.AverageBits)
	return &rabin{c: c}
}

// rabinPool holds restic chunkers whose run ended, for their 512 KiB read
// buffer: allocating and clearing it cost more than chunking a small object.
var rabinPool sync.Pool // *chunker.Chunker

// checkedPolynomials remembers the polynomials found valid: the
// irreducibility test costs about a millisecond, more than chunking a small
// object, and a repository has one polynomial.
var checkedPolynomials sync.Map // chunker.Pol → struct{}

// validPolynomial reports whether pol is irreducible of degree 53.
func validPolynomial(pol chunker.Pol) bool {
	if _, ok := checkedPolynomials.Load(pol); ok {
		return true
	}
	if pol.Deg() != 53 || !pol.Irreducible() {
		return false
	}
	checkedPolynomials.Store(pol, struct{}{})
	return true
}

// rabin adapts restic's Chunker, whose Chunk.Data aliases the buffer passed
// to Next, to the ownership contract of Chunker.
type rabin struct {
	c *chunker.Chunker
	// scratch is handed to restic to append the chunk into and reused; it
	// grows to the largest chunk seen. Returning restic's slice itself would
	// save one copy but cost an append-grown allocation per chunk, up to twice
	// the chunk's size, for the engine to hold on to.
	scratch []byte
	err     error // sticky
}

var _ Chunker = (*rabin)(nil)

// Next returns the next chunk; see Chunker.
func (r *rabin) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	ch, err := r.c.Next(r.scratch)
	if err != nil {
		// The run is over: nothing aliases the chunker's buffer any more.
		rabinPool.Put(r.c)
		r.c, r.scratch = nil, nil
		r.err = io.EOF
		if err != io.EOF {
			r.err = fmt.Errorf("chunk: read source: %w", err)
		}
		return nil, r.err
	}
	r.scratch = ch.Data[:0]
	return bytes.Clone(ch.Data), nil
}
