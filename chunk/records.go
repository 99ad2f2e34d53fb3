package chunk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// MaxRecordChunk is the largest allowed RecordParams.Max (1 GiB). It keeps
// S = Avg−Min below 2^32, so the cut threshold (m << 32) / S, with m < S,
// never overflows 64 bits.
const MaxRecordChunk = 1 << 30

// gearContext is the BLAKE3 derive_key context that turns the record seed into
// the Gear table (FORMAT.md section 5.2). Changing it changes every boundary.
const gearContext = "strata v1 2026-11-24 record chunker gear table"

// readSize sizes the record chunker's buffer: every Read is offered at least
// readSize/2 bytes, so the per-call overhead of the source is negligible.
const readSize = 1 << 20

// RecordParams are the record-mode parameters from the repository config.
// Repository defaults: Min 1024, Avg 2560, Max 65536, Delim '\n'.
type RecordParams struct {
	// Min is the least length of any chunk but the last; at least 1.
	Min int
	// Avg is the intended mean chunk length: from a chunk's Min-th byte on,
	// record ends cut at a rate of one per Avg−Min bytes, so chunks average
	// Avg−1 bytes when records are at most Avg−Min bytes long.
	Avg int
	// Max is the greatest chunk length; a chunk reaching it is cut there even
	// inside a record (the Max fallback).
	Max int
	// Delim ends a record; it belongs to the record (and chunk) it ends.
	Delim byte
}

// Validate reports whether 1 ≤ Min < Avg ≤ Max ≤ MaxRecordChunk; the error
// wraps ErrInvalidParams.
func (p RecordParams) Validate() error {
	if p.Min < 1 || p.Min >= p.Avg || p.Avg > p.Max || p.Max > MaxRecordChunk {
		return fmt.Errorf("chunk: record params min %d avg %d max %d: want 1 ≤ min < avg ≤ max ≤ %d: %w",
			p.Min, p.Avg, p.Max, MaxRecordChunk, ErrInvalidParams)
	}
	return nil
}

// NewRecords returns a record-mode Chunker over src, keyed by the repository's
// 32-byte record seed (algorithm in the package documentation and FORMAT.md
// section 5.2). Chunks end just after p.Delim, except for the Max fallback and
// the last chunk. The boundaries depend only on the bytes of src, seed and p,
// never on how src's Read calls split the data. If p is invalid, Next returns
// an error wrapping ErrInvalidParams.
func NewRecords(src io.Reader, seed [32]byte, p RecordParams) Chunker {
	if err := p.Validate(); err != nil {
		return errorChunker{err}
	}
	return &records{
		src:   src,
		gear:  newGearTables(seed),
		min:   p.Min,
		max:   p.Max,
		span:  p.Avg - p.Min,
		delim: p.Delim,
		// A pending chunk is shorter than max when the buffer is refilled, so
		// after compaction there are always more than readSize bytes free.
		buf: make([]byte, readSize+p.Max),
	}
}

// gearTable derives the 256-entry Gear table from the record seed:
// G[i] = u64le(BLAKE3-derive_key(gearContext, seed)[8i:8i+8]) over 2048 bytes
// of extended output.
func gearTable(seed [32]byte) *[256]uint64 {
	var out [256 * 8]byte
	blake3.DeriveKey(gearContext, seed[:], out[:])
	g := new([256]uint64)
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(out[8*i:])
	}
	return g
}

// gearTables holds the Gear table pre-rotated for each position in an 8-byte
// block: t[j][b] = rotl64(G[b], 7−j). 16 KiB, so it stays in L1 cache.
type gearTables [8][256]uint64

func newGearTables(seed [32]byte) *gearTables {
	g := gearTable(seed)
	t := new(gearTables)
	for j := range t {
		for b := range t[j] {
			t[j][b] = bits.RotateLeft64(g[b], 7-j)
		}
	}
	return t
}

// update extends the record hash h by p: h = rotl64(h, 1) XOR G[b] for each
// byte b. Rotation distributes over XOR, so eight bytes b_0…b_7 are folded at
// once as rotl64(h, 8) XOR (XOR over j of rotl64(G[b_j], 7−j)), one table load
// per byte and a single rotate on the serial dependency per 8 bytes.
func (t *gearTables) update(h uint64, p []byte) uint64 {
	for len(p) >= 8 {
		_ = p[7]
		a := t[0][p[0]] ^ t[1][p[1]] ^ t[2][p[2]] ^ t[3][p[3]]
		b := t[4][p[4]] ^ t[5][p[5]] ^ t[6][p[6]] ^ t[7][p[7]]
		h = bits.RotateLeft64(h, 8) ^ a ^ b
		p = p[8:]
	}
	for _, c := range p {
		h = bits.RotateLeft64(h, 1) ^ t[7][c]
	}
	return h
}

// cutAfter is the cut rule at the end of a record with hash h, of which m ≥ 1
// bytes lie at chunk positions Min and beyond: cut with probability
// min(1, m/span). The decision (FORMAT.md section 5.2) compares the top 32 bits
// of h with floor(m·2^32 / span).
func cutAfter(h uint64, m, span int) bool {
	if m >= span {
		return true
	}
	return h>>32 < (uint64(m)<<32)/uint64(span)
}

// records is the record-mode Chunker. Positions are indexes into buf; bytes
// before start have been returned and may be discarded by compaction.
type records struct {
	src   io.Reader
	gear  *gearTables
	min   int
	max   int
	span  int // Avg − Min
	delim byte

	buf   []byte
	start int // first byte of the pending chunk
	scan  int // next byte not yet examined; start ≤ scan ≤ end
	end   int // end of the buffered data

	// The current record's bytes before hpos are folded into h; folded counts
	// them (including bytes already discarded after a Max fallback). Records
	// are hashed lazily, only when they end at an eligible length, so hpos is
	// normally the record's start. hpos ≥ start always holds.
	hpos   int
	h      uint64
	folded int

	eof bool  // src returned io.EOF
	err error // sticky: io.EOF after the last chunk, or the first failure
}

var _ Chunker = (*records)(nil)

// Next returns the next chunk; see Chunker.
func (c *records) Next() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	for {
		if chunk := c.cut(); chunk != nil {
			return chunk, nil
		}
		if c.eof {
			c.err = io.EOF
			if c.end > c.start {
				return c.emit(c.end), nil
			}
			return nil, io.EOF
		}
		if err := c.fill(); err != nil {
			c.err = err
			return nil, err
		}
	}
}

// cut scans the buffered bytes for the next cut point and returns the chunk
// ending there, or nil if the buffer ran out first.
func (c *records) cut() []byte {
	limit := min(c.end, c.start+c.max)
	// A record ending before index start+min−1 cannot end the chunk, so its
	// hash is never needed: only the last delimiter there matters, because
	// it starts the record that may. (bytes.LastIndexByte is a plain loop;
	// IndexByte is vectorised, hence the forward search.)
	if lo := c.start + c.min - 1; c.scan < lo {
		stop := min(lo, limit)
		for {
			i := bytes.IndexByte(c.buf[c.scan:stop], c.delim)
			if i < 0 {
				break
			}
			c.scan += i + 1
			c.newRecord(c.scan)
		}
		c.scan = stop
	}
	for c.scan < limit {
		i := bytes.IndexByte(c.buf[c.scan:limit], c.delim)
		if i < 0 {
			c.scan = limit
			break
		}
		e := c.scan + i + 1
		// Only the record's bytes at chunk positions min..L (1-based) count
		// towards the cut probability, which makes the mean chunk length
		// exactly Min−1+span: counting the whole first eligible record would
		// shorten chunks by about half a record.
		m := min(c.folded+e-c.hpos, e-c.start-c.min+1)
		h := c.gear.update(c.h, c.buf[c.hpos:e])
		c.newRecord(e)
		c.scan = e
		if cutAfter(h, m, c.span) {
			return c.emit(e)
		}
	}
	if c.scan-c.start == c.max {
		// Max fallback. The record goes on past the cut, so fold the part
		// of it that is about to leave the buffer into its hash.
		c.h = c.gear.update(c.h, c.buf[c.hpos:c.scan])
		c.folded += c.scan - c.hpos
		c.hpos = c.scan
		return c.emit(c.scan)
	}
	return nil
}

// newRecord starts a new record at position p, just after a delimiter.
func (c *records) newRecord(p int) {
	c.hpos, c.h, c.folded = p, 0, 0
}

// emit returns buf[start:e] as a new slice of exactly that length (one
// allocation, one copy) and starts the next chunk at e.
func (c *records) emit(e int) []byte {
	chunk := bytes.Clone(c.buf[c.start:e])
	c.start = e
	return chunk
}

// fill reads more of src into buf, first moving the pending chunk to the
// front if the free tail is small. It returns nil after reading at least one
// byte or reaching the end of src.
func (c *records) fill() error {
	if len(c.buf)-c.end < readSize/2 {
		n := copy(c.buf, c.buf[c.start:c.end])
		d := c.start
		c.start, c.scan, c.hpos, c.end = 0, c.scan-d, c.hpos-d, n
	}
	// Like bufio, give up on a source that keeps returning nothing.
	for range 100 {
		n, err := c.src.Read(c.buf[c.end:])
		if n < 0 || n > len(c.buf)-c.end {
			return fmt.Errorf("chunk: read source: invalid count %d from Read", n)
		}
		c.end += n
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("chunk: read source: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("chunk: read source: %w", io.ErrNoProgress)
}
