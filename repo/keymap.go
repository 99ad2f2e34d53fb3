package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Key maps (FORMAT.md §26, version 2): a snapshot of a sorted, keyed
// export may name a key map, which gives for every data chunk of its
// tree, in stream order, the key of the first record that starts in it
// and the chunk's direct location. A reader then finds the chunk that
// may hold a key from the root and one leaf, without index files or list
// blobs. Every location is a hint checked against the blob's ID.
//
// Root plaintext (a data blob, alone in its frame):
//
//	u8 version (1) | uvarint blobs | uvarint size | uvarint n leaves |
//	per leaf: u8 flags (bit 0: has key) | [uvarint key length | key] |
//	          uvarint entries | uvarint frame offset | uvarint frame length |
//	          uvarint blob length | 32-byte leaf ID
//
// Leaf plaintext (a data blob, alone in its frame, in the root's pack):
//
//	u8 version (1) | uvarint p packs | per pack: 32-byte ID | uvarint length | u8 k | u8 m |
//	uvarint e entries | per entry: u8 flags (bit 0: has key, bit 1: starts a line) |
//	[uvarint shared prefix | uvarint suffix length | suffix] | uvarint pack number |
//	uvarint frame offset | uvarint frame length | uvarint blob offset | uvarint blob length |
//	32-byte blob ID

const keyMapVersion = 1

// Key map limits: MaxKeyMapKey bounds a recorded key (longer keys are not
// recorded: the entry is keyless), MaxKeyMapLeaf the entries of a leaf and
// MaxKeyMapLeaves the leaves of a root.
const (
	MaxKeyMapKey    = 4096
	MaxKeyMapLeaf   = 1 << 16
	MaxKeyMapLeaves = 1 << 20
)

// Key map entry flags.
const (
	keyMapHasKey    = 1 << 0
	keyMapLineStart = 1 << 1
)

// KeyMapRef is the manifest's `key_map` field: where the root of the
// snapshot's key map is (a data blob alone in its frame).
type KeyMapRef struct {
	Pack        ID     `json:"pack"`
	PackLength  uint64 `json:"pack_length"`
	K           int    `json:"k"`
	M           int    `json:"m"`
	FrameOffset uint32 `json:"frame_offset"`
	FrameLength uint32 `json:"frame_length"`
	BlobLength  uint32 `json:"blob_length"`
	ID          ID     `json:"id"`
}

// PackInfo returns the root's pack.
func (k *KeyMapRef) PackInfo() PackInfo {
	return PackInfo{ID: k.Pack, Length: k.PackLength, K: k.K, M: k.M}
}

// Entry returns the root's location as an index entry.
func (k *KeyMapRef) Entry() IndexEntry {
	return IndexEntry{ID: k.ID, Type: DataBlob, Location: Location{Pack: k.Pack, FrameOffset: k.FrameOffset, FrameLength: k.FrameLength, BlobLength: k.BlobLength}}
}

// Validate checks the reference's fields. A snapshot whose reference is
// invalid is still restorable: only its key map is unusable (readers fall
// back to the blob tree, and check reports it), so DecodeSnapshot does not
// refuse it.
func (k *KeyMapRef) Validate() error {
	switch {
	case k.K < 1 || k.M < 0 || k.K+k.M > 255:
		return fmt.Errorf("k=%d m=%d out of range", k.K, k.M)
	case k.PackLength < 1 || k.PackLength > maxPackSize:
		return fmt.Errorf("pack length %d out of range", k.PackLength)
	case uint64(k.FrameOffset)+uint64(k.FrameLength) > k.PackLength || k.FrameLength == 0:
		return fmt.Errorf("frame [%d, +%d) outside the pack", k.FrameOffset, k.FrameLength)
	case k.BlobLength == 0 || k.BlobLength > MaxFrameRaw:
		return fmt.Errorf("blob length %d out of range", k.BlobLength)
	}
	return nil
}

// KeyMapEntry is one data chunk of a key map, in stream order. Key is set
// when HasKey: the key of the first record that starts in the chunk, a
// record whose line ends in the chunk. LineStart says the chunk begins a
// line (the stream's first chunk, or one after a chunk that ended with a
// newline); otherwise its first record starts after its first newline.
type KeyMapEntry struct {
	HasKey    bool
	LineStart bool
	Key       []byte
	Pack      PackInfo
	Entry     IndexEntry // ID and location; Type is DataBlob
}

// KeyMapLeafRef is one leaf as the root lists it: the key of its first
// keyed entry (none when no entry of the leaf has a key), how many entries
// it holds, and where it is in the root's pack.
type KeyMapLeafRef struct {
	HasKey      bool
	Key         []byte
	Entries     int
	FrameOffset uint32
	FrameLength uint32
	BlobLength  uint32
	ID          ID
}

// KeyMapRoot is the decoded root: the totals it covers (the snapshot's
// data blobs and bytes) and its leaves in stream order.
type KeyMapRoot struct {
	Blobs  int64
	Size   int64
	Leaves []KeyMapLeafRef
}

// EncodeKeyMapRoot returns the root plaintext.
func EncodeKeyMapRoot(root *KeyMapRoot) []byte {
	b := []byte{keyMapVersion}
	b = binary.AppendUvarint(b, uint64(root.Blobs))
	b = binary.AppendUvarint(b, uint64(root.Size))
	b = binary.AppendUvarint(b, uint64(len(root.Leaves)))
	for _, l := range root.Leaves {
		if l.HasKey {
			b = append(b, keyMapHasKey)
			b = binary.AppendUvarint(b, uint64(len(l.Key)))
			b = append(b, l.Key...)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(l.Entries))
		b = binary.AppendUvarint(b, uint64(l.FrameOffset))
		b = binary.AppendUvarint(b, uint64(l.FrameLength))
		b = binary.AppendUvarint(b, uint64(l.BlobLength))
		b = append(b, l.ID[:]...)
	}
	return b
}

// DecodeKeyMapRoot parses root plaintext. Leaf keys MUST strictly ascend
// and every leaf MUST hold 1 to MaxKeyMapLeaf entries summing to Blobs.
func DecodeKeyMapRoot(name string, p []byte) (*KeyMapRoot, error) {
	d := &decoder{b: p}
	if v := d.byte(); d.err == nil && v != keyMapVersion {
		return nil, corrupt(name, 0, "key map root version %d", v)
	}
	root := &KeyMapRoot{}
	blobs, size := d.uvarint(), d.uvarint()
	n := d.count(1 + 4 + IDSize)
	if d.err == nil && (blobs > 1<<62 || size > 1<<62 || n > MaxKeyMapLeaves) {
		d.fail("totals out of range")
	}
	root.Blobs, root.Size = int64(blobs), int64(size)
	var sum uint64
	var prev []byte
	for i := 0; i < n && d.err == nil; i++ {
		var l KeyMapLeafRef
		flags := d.byte()
		if flags&^keyMapHasKey != 0 {
			d.fail("leaf %d: unknown flags %#x", i, flags)
		}
		if l.HasKey = flags&keyMapHasKey != 0; l.HasKey {
			l.Key = d.bytes(MaxKeyMapKey)
			if d.err == nil && prev != nil && bytes.Compare(l.Key, prev) <= 0 {
				d.fail("leaf %d: key does not ascend", i)
			}
			prev = l.Key
		}
		e := d.uvarint()
		if d.err == nil && (e < 1 || e > MaxKeyMapLeaf) {
			d.fail("leaf %d: %d entries", i, e)
		}
		l.Entries = int(e)
		sum += e
		l.FrameOffset, l.FrameLength, l.BlobLength = d.u32(), d.u32(), d.u32()
		d.id(&l.ID)
		root.Leaves = append(root.Leaves, l)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the leaves", len(d.b))
	}
	if d.err == nil && sum != blobs {
		d.fail("leaves hold %d entries, the root says %d blobs", sum, blobs)
	}
	if d.err != nil {
		return nil, corrupt(name, -1, "key map root: %v", d.err)
	}
	return root, nil
}

// EncodeKeyMapLeaf returns the leaf plaintext of entries (each with its
// pack). Keys of keyed entries MUST strictly ascend.
func EncodeKeyMapLeaf(entries []KeyMapEntry) []byte {
	packNo := map[ID]int{}
	var packs []PackInfo
	for _, e := range entries {
		if _, ok := packNo[e.Pack.ID]; !ok {
			packNo[e.Pack.ID] = len(packs)
			packs = append(packs, e.Pack)
		}
	}
	b := []byte{keyMapVersion}
	b = binary.AppendUvarint(b, uint64(len(packs)))
	for _, p := range packs {
		b = append(b, p.ID[:]...)
		b = binary.AppendUvarint(b, p.Length)
		b = append(b, byte(p.K), byte(p.M))
	}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var prev []byte
	for _, e := range entries {
		var flags byte
		if e.HasKey {
			flags |= keyMapHasKey
		}
		if e.LineStart {
			flags |= keyMapLineStart
		}
		b = append(b, flags)
		if e.HasKey {
			shared := 0
			for shared < len(prev) && shared < len(e.Key) && prev[shared] == e.Key[shared] {
				shared++
			}
			b = binary.AppendUvarint(b, uint64(shared))
			b = binary.AppendUvarint(b, uint64(len(e.Key)-shared))
			b = append(b, e.Key[shared:]...)
			prev = e.Key
		}
		l := e.Entry.Location
		b = binary.AppendUvarint(b, uint64(packNo[e.Pack.ID]))
		b = binary.AppendUvarint(b, uint64(l.FrameOffset))
		b = binary.AppendUvarint(b, uint64(l.FrameLength))
		b = binary.AppendUvarint(b, uint64(l.BlobOffset))
		b = binary.AppendUvarint(b, uint64(l.BlobLength))
		b = append(b, e.Entry.ID[:]...)
	}
	return b
}

// DecodeKeyMapLeaf parses leaf plaintext. It checks what the layout
// promises (keys ascend, locations inside their packs, limits), not that
// the locations hold the IDs: readers check every blob they read.
func DecodeKeyMapLeaf(name string, p []byte) ([]KeyMapEntry, error) {
	d := &decoder{b: p}
	if v := d.byte(); d.err == nil && v != keyMapVersion {
		return nil, corrupt(name, 0, "key map leaf version %d", v)
	}
	np := d.count(IDSize + 3)
	packs := make([]PackInfo, 0, np)
	listed := make(map[ID]bool, np)
	for i := 0; i < np && d.err == nil; i++ {
		var pi PackInfo
		d.id(&pi.ID)
		pi.Length = d.uvarint()
		pi.K, pi.M = int(d.byte()), int(d.byte())
		switch {
		case d.err != nil:
		case pi.K < 1 || pi.K+pi.M > 255 || pi.Length < 1 || pi.Length > maxPackSize:
			d.fail("pack %d: fields out of range", i)
		case listed[pi.ID]:
			// A pack has one length and one shard layout: a second
			// listing could give its entries another.
			d.fail("pack %d: %s listed twice", i, pi.ID.Short())
		}
		listed[pi.ID] = true
		packs = append(packs, pi)
	}
	n := d.count(1 + 5 + IDSize)
	if d.err == nil && (n < 1 || n > MaxKeyMapLeaf) {
		d.fail("%d entries", n)
	}
	entries := make([]KeyMapEntry, 0, n)
	var prev []byte
	for i := 0; i < n && d.err == nil; i++ {
		var e KeyMapEntry
		flags := d.byte()
		if flags&^(keyMapHasKey|keyMapLineStart) != 0 {
			d.fail("entry %d: unknown flags %#x", i, flags)
		}
		e.HasKey, e.LineStart = flags&keyMapHasKey != 0, flags&keyMapLineStart != 0
		if e.HasKey {
			shared := d.uvarint()
			if d.err == nil && shared > uint64(len(prev)) {
				d.fail("entry %d: shared prefix %d longer than the key before", i, shared)
			}
			suffix := d.bytes(MaxKeyMapKey)
			if d.err != nil {
				break
			}
			if int(shared)+len(suffix) > MaxKeyMapKey {
				d.fail("entry %d: key longer than %d bytes", i, MaxKeyMapKey)
				break
			}
			e.Key = append(append(make([]byte, 0, int(shared)+len(suffix)), prev[:shared]...), suffix...)
			if prev != nil && bytes.Compare(e.Key, prev) <= 0 {
				d.fail("entry %d: key does not ascend", i)
			}
			prev = e.Key
		}
		pn := d.uvarint()
		if d.err == nil && pn >= uint64(len(packs)) {
			d.fail("entry %d: pack number %d of %d", i, pn, len(packs))
			break
		}
		l := Location{FrameOffset: d.u32(), FrameLength: d.u32(), BlobOffset: d.u32(), BlobLength: d.u32()}
		var id ID
		d.id(&id)
		if d.err != nil {
			break
		}
		e.Pack = packs[pn]
		l.Pack = e.Pack.ID
		if uint64(l.FrameOffset)+uint64(l.FrameLength) > e.Pack.Length || l.FrameLength == 0 || uint64(l.BlobOffset)+uint64(l.BlobLength) > MaxFrameRaw {
			d.fail("entry %d: location outside its pack or frame", i)
		}
		e.Entry = IndexEntry{ID: id, Type: DataBlob, Location: l}
		entries = append(entries, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the entries", len(d.b))
	}
	if d.err != nil {
		return nil, corrupt(name, -1, "key map leaf: %v", d.err)
	}
	return entries, nil
}

// bytes reads a uvarint length (at most limit) and that many bytes.
func (d *decoder) bytes(limit int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("length %d out of range", n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
