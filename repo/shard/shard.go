package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
)

// Shard object layout (FORMAT.md, section 9, "Shards"):
//
//	0-7    magic "STRATASH"
//	8      u8 version (1)
//	9      u8 k, data shards of the pack
//	10     u8 m, parity shards of the pack
//	11     u8 index of this shard, 0 ≤ index < k+m
//	12-19  u64le length of the pack
//	20-23  u32le shard length S = ceil(pack length / k)
//	24-55  pack ID: BLAKE3 of the whole pack
//	56…    S bytes of payload: pack bytes [index·S, (index+1)·S), zero-padded,
//	       for a data shard; Reed–Solomon parity for index ≥ k
//	last   32 bytes: BLAKE3 of everything before it (header and payload)
const (
	HeaderSize   = 56
	ChecksumSize = 32
	Overhead     = HeaderSize + ChecksumSize
	magic        = "STRATASH"
	version      = 1
	// MaxPackLen bounds the pack length a header may declare (FORMAT.md: packs are at most 1 GiB).
	MaxPackLen = 1 << 30
)

// Sentinels. ErrTooFewShards is what a caller branches on: the pack cannot
// be recovered from what is left. ErrBadShard marks a single shard that is
// truncated, damaged or not what its name says.
var (
	ErrTooFewShards = errors.New("too few intact shards to reconstruct the pack")
	ErrBadShard     = errors.New("bad shard")
)

// Header is the clear header of a shard object.
type Header struct {
	K, M     int
	Index    int
	PackLen  uint64
	ShardLen uint32
	PackID   [32]byte
}

// NewHeader returns the header shared by the shards of a pack of packLen
// bytes split k+m (Index 0), with ShardLen derived as FORMAT.md defines it.
func NewHeader(k, m int, packLen uint64, packID [32]byte) Header {
	return Header{K: k, M: m, PackLen: packLen, ShardLen: shardLen(packLen, k), PackID: packID}
}

// Size returns the length of every shard object of the pack.
func (h Header) Size() int64 { return int64(Overhead) + int64(h.ShardLen) }

// shardLen is ceil(packLen/k), the payload length of every shard.
func shardLen(packLen uint64, k int) uint32 {
	return uint32((packLen + uint64(k) - 1) / uint64(k))
}

func (h Header) append(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, version, byte(h.K), byte(h.M), byte(h.Index))
	b = binary.LittleEndian.AppendUint64(b, h.PackLen)
	b = binary.LittleEndian.AppendUint32(b, h.ShardLen)
	return append(b, h.PackID[:]...)
}

var encoders sync.Map // [2]int{k, m} -> reedsolomon.Encoder

// encoder returns the Reed–Solomon coder for k+m. It MUST be built with
// reedsolomon's default options: the Vandermonde-derived systematic matrix
// that FORMAT.md pins. Options such as WithCauchyMatrix or
// WithFastOneParityMatrix change the parity bytes, and so the format.
func encoder(k, m int) (reedsolomon.Encoder, error) {
	key := [2]int{k, m}
	if e, ok := encoders.Load(key); ok {
		return e.(reedsolomon.Encoder), nil
	}
	e, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, err
	}
	actual, _ := encoders.LoadOrStore(key, e)
	return actual.(reedsolomon.Encoder), nil
}

func validKM(k, m int) error {
	if k < 1 || m < 0 || k+m > 255 {
		return fmt.Errorf("erasure coding %d+%d: need 1 ≤ k, 0 ≤ m, k+m ≤ 255", k, m)
	}
	return nil
}

// Encode splits a sealed pack into k data and m parity shard objects and
// returns the pack ID (BLAKE3 of the pack) with them, in shard order. A
// writer that builds the pack itself uses NewWriter instead and saves the
// copy of the pack.
func Encode(pack []byte, k, m int) ([32]byte, [][]byte, error) {
	w, err := NewWriter(k, m, len(pack))
	if err != nil {
		return [32]byte{}, nil, err
	}
	if _, err := w.Write(pack); err != nil {
		return [32]byte{}, nil, err
	}
	return w.Finish()
}

// Writer lays a pack of a length known in advance out as its k+m shard
// objects while the pack's bytes are written to it: each byte is copied
// once, straight to its place in its data shard's payload. Finish then
// hashes the pack ID and adds the padding, headers, parity (computed in
// place) and checksums. The result is byte for byte what Encode of the
// whole pack gives (FORMAT.md §9). A Writer is not safe for concurrent use.
type Writer struct {
	h    Header
	objs [][]byte
	pos  int // pack bytes written
	done bool
}

// NewWriter returns a Writer for a pack of packLen bytes split k+m. Each
// shard object is its own allocation, as Encode's always were: one buffer
// for all of them raised a backup's peak RSS by ~5 MiB (bench/RESULTS.md,
// "Fewer copies and fsyncs"), the runtime reusing freed spans of a pack's
// size less readily than spans of a shard's.
func NewWriter(k, m, packLen int) (*Writer, error) {
	if err := validKM(k, m); err != nil {
		return nil, err
	}
	if packLen <= 0 || packLen > MaxPackLen {
		return nil, fmt.Errorf("shard: pack of %d bytes: want 1 to %d", packLen, MaxPackLen)
	}
	h := NewHeader(k, m, uint64(packLen), [32]byte{})
	objs := make([][]byte, k+m)
	for i := range objs {
		objs[i] = make([]byte, h.Size())
	}
	return &Writer{h: h, objs: objs}, nil
}

// Write appends p to the pack. Writing past the length given to NewWriter,
// or after Finish, is an error and writes nothing.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("shard: write after finish")
	}
	if len(p) > int(w.h.PackLen)-w.pos {
		return 0, fmt.Errorf("shard: write of %d bytes at %d overruns the pack of %d", len(p), w.pos, w.h.PackLen)
	}
	w.place(p)
	return len(p), nil
}

// place copies p to pack offset w.pos onward in the data payloads.
func (w *Writer) place(p []byte) {
	s := int(w.h.ShardLen)
	for len(p) > 0 {
		i, in := w.pos/s, w.pos%s
		n := copy(w.objs[i][HeaderSize+in:HeaderSize+s], p)
		w.pos += n
		p = p[n:]
	}
}

// Finish completes the objects once the whole pack is written and returns
// the pack ID with them, in shard order; the caller owns them.
func (w *Writer) Finish() ([32]byte, [][]byte, error) {
	if w.done {
		return [32]byte{}, nil, errors.New("shard: finish called twice")
	}
	if w.pos != int(w.h.PackLen) {
		return [32]byte{}, nil, fmt.Errorf("shard: pack of %d bytes finished after %d", w.h.PackLen, w.pos)
	}
	w.done = true
	// The pack ID is hashed over the data payloads, in runs of S bytes:
	// the hasher copies into its own buffer whatever does not fill its
	// 8 KiB blocks, which would be most of each frame if it hashed frame
	// by frame as they are written.
	sum := blake3.New()
	for i, rem := 0, w.pos; rem > 0; i++ {
		n := min(int(w.h.ShardLen), rem)
		sum.Write(w.objs[i][HeaderSize : HeaderSize+n])
		rem -= n
	}
	var id [32]byte
	sum.Sum(id[:0])
	w.h.PackID = id
	// The last data payloads' padding: fewer than k zero bytes, which may
	// spread over several shards when the shard length is below k. (New
	// objects are zero already; written all the same, so the padding does
	// not rest on where the objects came from.)
	var zeros [255]byte
	w.place(zeros[:w.h.K*int(w.h.ShardLen)-w.pos])
	payloads := make([][]byte, len(w.objs))
	for i, obj := range w.objs {
		h := w.h
		h.Index = i
		h.append(obj[:0])
		payloads[i] = obj[HeaderSize : HeaderSize+int(h.ShardLen) : HeaderSize+int(h.ShardLen)]
	}
	if w.h.M > 0 {
		enc, err := encoder(w.h.K, w.h.M)
		if err != nil {
			return [32]byte{}, nil, err
		}
		if err := enc.Encode(payloads); err != nil {
			return [32]byte{}, nil, fmt.Errorf("shard: encode: %w", err)
		}
	}
	for _, obj := range w.objs {
		body := obj[:len(obj)-ChecksumSize]
		sum := blake3.Sum256(body)
		copy(obj[len(body):], sum[:])
	}
	return id, w.objs, nil
}

// Verify checks a shard object on its own: magic, version, lengths and
// checksum. It returns the header of a shard that passes; a shard that does
// not is an error wrapping ErrBadShard (or ErrUnsupportedVersion-like text
// for a future version). It needs no key.
func Verify(obj []byte) (Header, error) {
	if len(obj) < Overhead {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a header and checksum", ErrBadShard, len(obj))
	}
	if string(obj[:8]) != magic {
		return Header{}, fmt.Errorf("%w: no shard magic", ErrBadShard)
	}
	if obj[8] != version {
		return Header{}, fmt.Errorf("%w: shard format version %d, this build reads %d", ErrBadShard, obj[8], version)
	}
	h := Header{
		K: int(obj[9]), M: int(obj[10]), Index: int(obj[11]),
		PackLen:  binary.LittleEndian.Uint64(obj[12:20]),
		ShardLen: binary.LittleEndian.Uint32(obj[20:24]),
	}
	copy(h.PackID[:], obj[24:56])
	body, sum := obj[:len(obj)-ChecksumSize], obj[len(obj)-ChecksumSize:]
	if got := blake3.Sum256(body); !bytes.Equal(got[:], sum) {
		return Header{}, fmt.Errorf("%w: checksum mismatch", ErrBadShard)
	}
	switch {
	case validKM(h.K, h.M) != nil:
		return Header{}, fmt.Errorf("%w: erasure coding %d+%d", ErrBadShard, h.K, h.M)
	case h.Index >= h.K+h.M:
		return Header{}, fmt.Errorf("%w: index %d of %d shards", ErrBadShard, h.Index, h.K+h.M)
	case h.PackLen == 0 || h.PackLen > MaxPackLen:
		return Header{}, fmt.Errorf("%w: pack length %d", ErrBadShard, h.PackLen)
	case h.ShardLen != shardLen(h.PackLen, h.K):
		return Header{}, fmt.Errorf("%w: shard length %d does not match pack length %d over %d shards", ErrBadShard, h.ShardLen, h.PackLen, h.K)
	case int64(len(obj)) != h.Size():
		return Header{}, fmt.Errorf("%w: %d bytes, the header implies %d", ErrBadShard, len(obj), h.Size())
	}
	return h, nil
}

// Span is a byte range of one shard object.
type Span struct {
	Shard          int
	Offset, Length int64 // within the shard object, header included
}

// Locate maps a byte range of the pack to ranges of its data shard objects,
// so a reader can fetch one frame without the rest of the pack. Only
// h.K, h.PackLen and h.ShardLen are used.
func Locate(h Header, offset, length int64) ([]Span, error) {
	if offset < 0 || length <= 0 || uint64(offset+length) > h.PackLen || h.ShardLen == 0 {
		return nil, fmt.Errorf("range [%d, +%d) outside a pack of %d bytes", offset, length, h.PackLen)
	}
	var spans []Span
	s := int64(h.ShardLen)
	for length > 0 {
		i := offset / s
		in := offset % s
		n := min(length, s-in)
		spans = append(spans, Span{Shard: int(i), Offset: HeaderSize + in, Length: n})
		offset += n
		length -= n
	}
	return spans, nil
}

// Report says which shards of a pack were missing or failed verification.
type Report struct {
	Missing []int
	Bad     map[int]error
}

// Problems describes the damage, one line a shard, in shard order.
func (r Report) Problems() []string {
	lines := map[int]string{}
	for _, i := range r.Missing {
		lines[i] = fmt.Sprintf("shard %d missing", i)
	}
	for i, err := range r.Bad {
		lines[i] = fmt.Sprintf("shard %d: %v", i, err)
	}
	out := make([]string, 0, len(lines))
	for _, i := range slices.Sorted(maps.Keys(lines)) {
		out = append(out, lines[i])
	}
	return out
}

// Damaged reports whether any shard was missing or bad.
func (r Report) Damaged() bool { return len(r.Missing)+len(r.Bad) > 0 }

// sort verifies every shard object against the pack it must belong to and
// returns the good payloads (nil where missing or bad) with a report.
// objs[i] is the object stored under shard name i, nil when absent.
func sortShards(want [32]byte, objs [][]byte) (Header, [][]byte, Report, error) {
	rep := Report{Bad: map[int]error{}}
	payloads := make([][]byte, len(objs))
	var ref Header
	good := 0
	for i, obj := range objs {
		if obj == nil {
			rep.Missing = append(rep.Missing, i)
			continue
		}
		h, err := Verify(obj)
		switch {
		case err != nil:
		case h.PackID != want:
			err = fmt.Errorf("%w: belongs to pack %x", ErrBadShard, h.PackID[:4])
		case h.Index != i:
			err = fmt.Errorf("%w: is shard %d of its pack", ErrBadShard, h.Index)
		case h.K+h.M != len(objs):
			err = fmt.Errorf("%w: pack has %d+%d shards, expected %d in all", ErrBadShard, h.K, h.M, len(objs))
		case good > 0 && (h.K != ref.K || h.PackLen != ref.PackLen):
			err = fmt.Errorf("%w: header disagrees with the other shards", ErrBadShard)
		}
		if err != nil {
			rep.Bad[i] = err
			continue
		}
		if good == 0 {
			ref = h
		}
		good++
		payloads[i] = obj[HeaderSize : len(obj)-ChecksumSize]
	}
	if good == 0 || good < ref.K {
		k := ref.K
		if good == 0 {
			k = -1
		}
		return ref, nil, rep, fmt.Errorf("%w: %d intact of %d (need %s)", ErrTooFewShards, good, len(objs), needText(k))
	}
	return ref, payloads, rep, nil
}

func needText(k int) string {
	if k < 0 {
		return "k, unknown: no shard verified"
	}
	return fmt.Sprint(k)
}

// reconstruct fills in missing data payloads (and parity ones too when all
// is true) from the good ones.
func reconstruct(h Header, payloads [][]byte, all bool) error {
	complete := true
	for i, p := range payloads {
		if p == nil && (all || i < h.K) {
			complete = false
		}
	}
	if complete {
		return nil
	}
	enc, err := encoder(h.K, h.M)
	if err != nil {
		return err
	}
	if all {
		err = enc.Reconstruct(payloads)
	} else {
		err = enc.ReconstructData(payloads)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTooFewShards, err)
	}
	return nil
}

// join concatenates the data payloads and checks the pack against want.
func join(h Header, payloads [][]byte, want [32]byte) ([]byte, error) {
	pack := make([]byte, 0, int(h.ShardLen)*h.K)
	for _, p := range payloads[:h.K] {
		pack = append(pack, p...)
	}
	pack = pack[:h.PackLen]
	if blake3.Sum256(pack) != want {
		return nil, fmt.Errorf("reassembled pack does not match its ID %x", want[:4])
	}
	return pack, nil
}

// Decode returns the pack whose ID is want from its shard objects, indexed
// by shard number (nil where missing). Every shard is verified first; the
// pack is rebuilt from any k good ones and checked against want. The report
// names the missing and bad shards even when the pack was recovered. When
// fewer than k shards are good the error wraps ErrTooFewShards.
func Decode(want [32]byte, objs [][]byte) ([]byte, Report, error) {
	h, payloads, rep, err := sortShards(want, objs)
	if err != nil {
		return nil, rep, err
	}
	if err := reconstruct(h, payloads, false); err != nil {
		return nil, rep, err
	}
	pack, err := join(h, payloads, want)
	return pack, rep, err
}

// Rebuild re-creates the shard objects that are missing or bad. It returns a
// slice indexed by shard number holding a new object where one is needed
// and nil elsewhere, after checking that the rebuilt pack matches want, so
// it never writes parity derived from wrong data.
func Rebuild(want [32]byte, objs [][]byte) ([][]byte, Report, error) {
	h, payloads, rep, err := sortShards(want, objs)
	if err != nil {
		return nil, rep, err
	}
	if !rep.Damaged() {
		return make([][]byte, len(objs)), rep, nil
	}
	if err := reconstruct(h, payloads, true); err != nil {
		return nil, rep, err
	}
	if _, err := join(h, payloads, want); err != nil {
		return nil, rep, err
	}
	out := make([][]byte, len(objs))
	for i, p := range payloads {
		if _, bad := rep.Bad[i]; objs[i] != nil && !bad {
			continue
		}
		hi := h
		hi.Index = i
		obj := make([]byte, 0, h.Size())
		obj = append(hi.append(obj), p...)
		sum := blake3.Sum256(obj)
		out[i] = append(obj, sum[:]...)
	}
	return out, rep, nil
}
