package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/repo/shard"
)

// BlobType says what a blob holds (FORMAT.md, "Blobs").
type BlobType uint8

const (
	// DataBlob holds a chunk of a backed-up stream.
	DataBlob BlobType = 0
	// ListBlob holds a run of 32-byte IDs: one node of a snapshot's blob tree.
	ListBlob BlobType = 1
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case ListBlob:
		return "list"
	case LogBlob:
		return "log"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Frame compression modes: the first plaintext byte of every frame.
const (
	frameStored byte = 0
	frameZstd   byte = 1
)

// Decoding limits. A frame never holds more than MaxFrameRaw bytes of blobs,
// which bounds what a hostile or corrupt frame can make a reader allocate.
const (
	MaxFrameRaw     = 32 << 20
	MaxBlobsInFrame = 1 << 16
	packMagic       = "STRATAPK"
	packTailSize    = 4 + len(packMagic) // trailer length + magic
	trailerVersion  = 1
)

// BlobInfo is one blob of a frame, in frame order.
type BlobInfo struct {
	Type BlobType
	ID   ID
	Len  uint32
}

// Frame is a sealed run of blobs, ready to be appended to a pack.
type Frame struct {
	Blobs  []BlobInfo
	Sealed []byte // nonce || AEAD(mode || payload) || tag
	Raw    int    // sum of blob lengths
}

var (
	zstdEncoders sync.Map // encoderKey -> *zstd.Encoder
	zstdDecoder  *zstd.Decoder
)

func init() {
	var err error
	zstdDecoder, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxFrameRaw), zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic(err)
	}
}

// smallWindow is the zstd window of the encoders that compress frames of
// at most that many bytes (the default FrameSize of 256 KiB plus its last
// blob): no match reaches further back than the frame's start, so the
// output is the same as with the level's own 4–8 MiB window, and each
// encoder's history buffer is 640 KiB instead of 4–8 MiB (EncodeAll keeps
// one per worker, for each level in use).
const smallWindow = 512 << 10

type encoderKey struct {
	level zstd.EncoderLevel
	small bool // window smallWindow
}

// encoder returns the shared encoder for level, for frames of n bytes.
func encoder(level zstd.EncoderLevel, n int) *zstd.Encoder {
	k := encoderKey{level, n <= smallWindow}
	if e, ok := zstdEncoders.Load(k); ok {
		return e.(*zstd.Encoder)
	}
	// EncodeAll is safe for concurrent use; one encoder per level serves every worker.
	opts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(0), zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true)}
	if k.small {
		opts = append(opts, zstd.WithWindowSize(smallWindow))
	}
	e, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		panic(err)
	}
	actual, _ := zstdEncoders.LoadOrStore(k, e)
	return actual.(*zstd.Encoder)
}

// Incompressible reports whether data looks like it will not compress:
// the order-0 entropy of up to 16 KiB sampled across it (16 spans of
// 1 KiB) exceeds 7.8 bits a byte. Frames of list blobs (keyed hashes) and
// of already compressed or encrypted exports measure about 7.99; text and
// JSON 4–6. The sample costs about a twentieth of zstd's fastest level on
// the same frame (bench/RESULTS.md, "Compression options"), so checking
// first saves the attempt on frames that would be stored as they are.
// Data whose bytes are uniformly spread yet repeat at long range (a
// random block written twice into one frame) is misjudged and stored
// uncompressed: chunk-level dedup already removes most such repeats.
func Incompressible(data []byte) bool {
	if len(data) < 4096 {
		return false
	}
	var hist [256]uint32
	n := 0
	const span, spans = 1024, 16
	step := max(len(data)/spans, span)
	for off := 0; off < len(data); off += step {
		for _, c := range data[off:min(off+span, len(data))] {
			hist[c]++
		}
		n += min(span, len(data)-off)
	}
	h := 0.0
	for _, k := range hist {
		if k > 0 {
			p := float64(k) / float64(n)
			h -= p * math.Log2(p)
		}
	}
	return h > 7.8
}

// compressionPays is the largest compressed/raw ratio still worth storing
// compressed: below a 3% saving the decompression cost is not worth it.
const compressionPays = 0.97

// SealFrame compresses (when it pays) and encrypts the concatenation of
// blobs, whose infos must already carry their IDs. It is safe to call from
// many goroutines.
func (r *Repository) SealFrame(infos []BlobInfo, blobs [][]byte, level zstd.EncoderLevel) (Frame, error) {
	if len(infos) != len(blobs) || len(infos) == 0 || len(infos) > MaxBlobsInFrame {
		return Frame{}, fmt.Errorf("seal frame: %d infos for %d blobs", len(infos), len(blobs))
	}
	raw := 0
	for i, b := range blobs {
		if int(infos[i].Len) != len(b) {
			return Frame{}, fmt.Errorf("seal frame: blob %d length mismatch", i)
		}
		raw += len(b)
	}
	if raw > MaxFrameRaw {
		return Frame{}, fmt.Errorf("seal frame: %d bytes exceeds the frame limit %d", raw, MaxFrameRaw)
	}
	// The plaintext and its compression are scratch, garbage once sealed:
	// they come from a pool (a backup seals a frame for each 256 KiB it
	// stores, and these were a third of its allocations). ps and cs are
	// always two distinct buffers.
	ps, cs := scratch(1+raw), scratch(1+raw)
	defer func() {
		frameScratch.Put(ps)
		frameScratch.Put(cs)
	}()
	buf := append(*ps, frameStored)
	for _, b := range blobs {
		buf = append(buf, b...)
	}
	*ps = buf
	plain := buf
	if level != 0 && raw >= 64 && !Incompressible(buf[1:]) {
		comp := encoder(level, raw).EncodeAll(buf[1:], append(*cs, frameZstd))
		*cs = comp // EncodeAll may have grown it
		if float64(len(comp)-1) <= compressionPays*float64(raw) {
			plain = comp
		}
	}
	aead := r.keys.data
	sealed := make([]byte, 0, aead.NonceSize()+len(plain)+aead.Overhead())
	return Frame{Blobs: infos, Sealed: seal(sealed, aead, plain, adFrame), Raw: raw}, nil
}

// frameScratch holds *[]byte buffers SealFrame compresses through.
var frameScratch sync.Pool

// scratch returns an empty buffer of at least n bytes' capacity from
// frameScratch, or a new one.
func scratch(n int) *[]byte {
	if p, ok := frameScratch.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, n)
	return &b
}

// OpenFrame decrypts and decompresses a sealed frame whose blobs total raw
// bytes, or at most MaxFrameRaw when raw is -1 (reads through the index,
// which does not record frame lengths). The caller verifies blob IDs.
func (r *Repository) OpenFrame(sealed []byte, raw int) ([]byte, error) {
	if raw > MaxFrameRaw {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit", raw)
	}
	plain, err := r.keys.openData(sealed, adFrame)
	if err != nil {
		return nil, err
	}
	return DecodeFramePlaintext(plain, raw)
}

// DecodeFramePlaintext decodes an opened frame (mode byte and payload) into
// the concatenated blobs, which must total raw bytes (-1: unknown, at most
// MaxFrameRaw). It never allocates more than MaxFrameRaw for the output.
func DecodeFramePlaintext(plain []byte, raw int) ([]byte, error) {
	if raw > MaxFrameRaw {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit", raw)
	}
	if len(plain) == 0 {
		return nil, errors.New("empty frame")
	}
	switch plain[0] {
	case frameStored:
		if raw >= 0 && len(plain)-1 != raw {
			return nil, fmt.Errorf("stored frame holds %d bytes, index says %d", len(plain)-1, raw)
		}
		return plain[1:], nil
	case frameZstd:
		out, err := zstdDecoder.DecodeAll(plain[1:], make([]byte, 0, max(raw, 0)))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if raw >= 0 && len(out) != raw || len(out) > MaxFrameRaw {
			return nil, fmt.Errorf("frame decompresses to %d bytes, index says %d", len(out), raw)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unknown frame mode %d", plain[0])
	}
}

// Pack layout (FORMAT.md, "Packs"):
//
//	frame_0 || … || frame_{n-1} || sealed trailer || uint32 LE len(sealed trailer) || "STRATAPK"
//
// trailer plaintext:
//
//	u8 version (1) | uvarint n frames | per frame: uvarint sealed length, uvarint n blobs,
//	per blob: u8 type | 32-byte ID | uvarint length

// PackFrame is one frame as listed by a pack trailer, with its position.
type PackFrame struct {
	Offset uint32 // from the start of the pack
	Length uint32 // sealed length
	Blobs  []BlobInfo
}

// BuildPack concatenates frames and appends the sealed trailer: the whole
// pack in one buffer, for callers that need its bytes. Writers that only
// store the pack use EncodePack (or StoreFrames), which lays the pack out
// as its shard objects directly and saves a copy of every byte.
func (r *Repository) BuildPack(frames []Frame) ([]byte, []PackFrame, error) {
	tail, pfs, size, err := r.packTail(frames)
	if err != nil {
		return nil, nil, err
	}
	pack := make([]byte, 0, size)
	for _, f := range frames {
		pack = append(pack, f.Sealed...)
	}
	return append(pack, tail...), pfs, nil
}

// packTail returns what follows the frames of a pack of frames (the
// sealed trailer, its length and the magic), the frames' places in the
// pack, and the pack's length.
func (r *Repository) packTail(frames []Frame) ([]byte, []PackFrame, int, error) {
	size := packTailSize + 64
	framesLen := 0
	for _, f := range frames {
		size += len(f.Sealed) + 8 + len(f.Blobs)*(IDSize+4)
		framesLen += len(f.Sealed)
	}
	if size > maxPackSize {
		return nil, nil, 0, fmt.Errorf("pack of %d bytes exceeds the limit %d", size, maxPackSize)
	}
	trailer := []byte{trailerVersion}
	trailer = binary.AppendUvarint(trailer, uint64(len(frames)))
	pfs := make([]PackFrame, len(frames))
	off := 0
	for i, f := range frames {
		pfs[i] = PackFrame{Offset: uint32(off), Length: uint32(len(f.Sealed)), Blobs: f.Blobs}
		off += len(f.Sealed)
		trailer = binary.AppendUvarint(trailer, uint64(len(f.Sealed)))
		trailer = binary.AppendUvarint(trailer, uint64(len(f.Blobs)))
		for _, b := range f.Blobs {
			trailer = append(trailer, byte(b.Type))
			trailer = append(trailer, b.ID[:]...)
			trailer = binary.AppendUvarint(trailer, uint64(b.Len))
		}
	}
	tail := seal(make([]byte, 0, r.keys.metadata.NonceSize()+len(trailer)+r.keys.metadata.Overhead()+packTailSize), r.keys.metadata, trailer, adTrailer)
	tail = binary.LittleEndian.AppendUint32(tail, uint32(len(tail)))
	tail = append(tail, packMagic...)
	return tail, pfs, framesLen + len(tail), nil
}

// EncodedPack is a pack laid out as its k+m shard objects, ready for
// PutPack: what EncodePack builds from frames.
type EncodedPack struct {
	Info   PackInfo
	Frames []PackFrame // the frames' places in the pack, for its index entries
	objs   [][]byte
}

// EncodePack builds the pack of frames (frames, then the sealed trailer)
// straight into its shard objects (FORMAT.md §9): each frame's bytes are
// copied once, to their place in a data shard's payload, the pack is never
// whole in one buffer, and the parity is computed in place. The frames are
// not needed once EncodePack returns.
func (r *Repository) EncodePack(frames []Frame) (*EncodedPack, error) {
	tail, pfs, size, err := r.packTail(frames)
	if err != nil {
		return nil, err
	}
	k := DataShardsFor(int(size), r.cfg.DataShards)
	w, err := shard.NewWriter(k, r.cfg.ParityShards, size)
	if err != nil {
		return nil, err
	}
	for _, f := range frames {
		w.Write(f.Sealed) // cannot fail: size counts every byte
	}
	w.Write(tail)
	id, objs, err := w.Finish()
	if err != nil {
		return nil, err
	}
	return &EncodedPack{Info: PackInfo{ID: ID(id), Length: uint64(size), K: k, M: r.cfg.ParityShards}, Frames: pfs, objs: objs}, nil
}

// maxPackSize bounds packs so offsets fit in 32 bits with room to spare.
const maxPackSize = 1 << 30

// ParseTrailer decrypts and decodes the trailer of a whole pack. name is used
// in errors.
func (r *Repository) ParseTrailer(name string, pack []byte) ([]PackFrame, error) {
	return parseTrailer(name, pack, func(sealed []byte) ([]byte, error) {
		return r.keys.openMeta(sealed, adTrailer)
	})
}

func parseTrailer(name string, pack []byte, openFn func([]byte) ([]byte, error)) ([]PackFrame, error) {
	if len(pack) < packTailSize || string(pack[len(pack)-len(packMagic):]) != packMagic {
		return nil, corrupt(name, -1, "no pack magic at the end")
	}
	tlen := int64(binary.LittleEndian.Uint32(pack[len(pack)-packTailSize:]))
	tstart := int64(len(pack)-packTailSize) - tlen
	if tstart < 0 {
		return nil, corrupt(name, int64(len(pack)-packTailSize), "trailer length %d exceeds the pack", tlen)
	}
	plain, err := openFn(pack[tstart : len(pack)-packTailSize])
	if err != nil {
		return nil, corrupt(name, tstart, "trailer fails authentication")
	}
	return decodeTrailer(name, plain, tstart)
}

// DecodePackTrailer parses a pack trailer's plaintext (after decryption);
// framesEnd is the offset where the sealed trailer starts, which the frames
// must exactly reach. name is used in errors.
func DecodePackTrailer(name string, plain []byte, framesEnd int64) ([]PackFrame, error) {
	return decodeTrailer(name, plain, framesEnd)
}

// decodeTrailer parses trailer plaintext; framesEnd is where the frames must end.
func decodeTrailer(name string, p []byte, framesEnd int64) ([]PackFrame, error) {
	d := decoder{b: p}
	if v := d.byte(); d.err == nil && v != trailerVersion {
		return nil, fmt.Errorf("%s: %w: pack trailer version %d", name, ErrUnsupportedVersion, v)
	}
	n := d.count(2) // a frame takes at least 2 bytes of trailer
	frames := make([]PackFrame, 0, n)
	var off int64
	for i := 0; i < n && d.err == nil; i++ {
		fl := d.uvarint()
		nb := d.count(1 + IDSize + 1)
		if nb == 0 || nb > MaxBlobsInFrame {
			d.fail("frame %d has %d blobs", i, nb)
			break
		}
		f := PackFrame{Offset: uint32(off), Length: uint32(fl), Blobs: make([]BlobInfo, nb)}
		var raw uint64
		for j := range f.Blobs {
			f.Blobs[j].Type = BlobType(d.byte())
			d.id(&f.Blobs[j].ID)
			l := d.uvarint()
			raw += l
			f.Blobs[j].Len = uint32(l)
			if f.Blobs[j].Type > LogBlob {
				d.fail("unknown blob type %d", f.Blobs[j].Type)
			}
		}
		if raw > MaxFrameRaw {
			d.fail("frame %d holds %d bytes, over the limit", i, raw)
		}
		off += int64(fl)
		if fl == 0 || off > framesEnd {
			d.fail("frame %d runs past the frames area", i)
		}
		frames = append(frames, f)
	}
	if d.err == nil && off != framesEnd {
		d.fail("frames cover %d bytes, the pack has %d", off, framesEnd)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, corrupt(name, -1, "pack trailer: %v", d.err)
	}
	return frames, nil
}

// decoder reads the binary layouts with sticky errors, so parsing code reads
// like the layout it follows and no read can run past the input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// u32 reads a uvarint that must fit in 32 bits.
func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("value %d out of range", v)
	}
	return uint32(v)
}

// count reads an element count and refuses one that the remaining bytes
// cannot hold at minSize bytes per element, so a forged count cannot make
// the reader allocate.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds the remaining %d bytes", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *decoder) id(id *ID) {
	if d.err != nil || len(d.b) < IDSize {
		d.fail("truncated")
		return
	}
	copy(id[:], d.b)
	d.b = d.b[IDSize:]
}
