package repo

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Index file layout (FORMAT.md, "Index files"), the plaintext before sealing:
//
//	u8 version (1)
//	uvarint n packs;   per pack:  32-byte pack ID | uvarint pack length | u8 k | u8 m
//	uvarint n entries; per entry, strictly ascending by blob ID:
//	    32-byte blob ID | u8 type | uvarint pack number | uvarint frame offset |
//	    uvarint frame length | uvarint blob offset in frame | uvarint blob length
const indexVersion = 1

// PackInfo describes a stored pack: enough to locate its shards and ranges.
type PackInfo struct {
	ID     ID
	Length uint64 // bytes of the sealed pack before erasure coding
	K, M   int
}

// Location says where a blob's bytes are: in which frame of which pack.
type Location struct {
	Pack        ID
	FrameOffset uint32 // from the start of the pack
	FrameLength uint32 // sealed length
	BlobOffset  uint32 // in the frame's plaintext
	BlobLength  uint32
}

// IndexEntry maps one blob to its location.
type IndexEntry struct {
	ID   ID
	Type BlobType
	Location
}

// IndexFile lists the blobs of some packs. A pack appears in exactly one index
// file in a consistent repository; a blob may appear in several (a
// concurrent writer stored it too), and readers accept any of its locations.
type IndexFile struct {
	Packs   []PackInfo
	Entries []IndexEntry // sorted by ID
}

// EntriesFor turns the frames of a pack into index entries.
func EntriesFor(pack ID, frames []PackFrame) []IndexEntry {
	var out []IndexEntry
	for _, f := range frames {
		var off uint32
		for _, b := range f.Blobs {
			out = append(out, IndexEntry{ID: b.ID, Type: b.Type, Location: Location{Pack: pack, FrameOffset: f.Offset, FrameLength: f.Length, BlobOffset: off, BlobLength: b.Len}})
			off += b.Len
		}
	}
	return out
}

// Encode returns the index file plaintext (FORMAT.md, section 10), sorting
// and deduplicating Entries by ID first.
func (f *IndexFile) Encode() ([]byte, error) {
	packNo := make(map[ID]int, len(f.Packs))
	for i, p := range f.Packs {
		packNo[p.ID] = i
	}
	slices.SortFunc(f.Entries, func(a, b IndexEntry) int { return a.ID.Compare(b.ID) })
	f.Entries = slices.CompactFunc(f.Entries, func(a, b IndexEntry) bool { return a.ID == b.ID })
	b := make([]byte, 0, 16+len(f.Packs)*48+len(f.Entries)*52)
	b = append(b, indexVersion)
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = binary.AppendUvarint(b, p.Length)
		b = append(b, byte(p.K), byte(p.M))
	}
	b = binary.AppendUvarint(b, uint64(len(f.Entries)))
	for _, e := range f.Entries {
		n, ok := packNo[e.Pack]
		if !ok {
			return nil, fmt.Errorf("index entry %s names pack %s that the index file does not list", e.ID.Short(), e.Pack.Short())
		}
		b = append(b, e.ID[:]...)
		b = append(b, byte(e.Type))
		for _, v := range []uint64{uint64(n), uint64(e.FrameOffset), uint64(e.FrameLength), uint64(e.BlobOffset), uint64(e.BlobLength)} {
			b = binary.AppendUvarint(b, v)
		}
	}
	return b, nil
}

// DecodeIndexFile parses index plaintext, checking every bound.
func DecodeIndexFile(name string, p []byte) (*IndexFile, error) {
	d := decoder{b: p}
	if v := d.byte(); d.err == nil && v != indexVersion {
		return nil, fmt.Errorf("%s: %w: index version %d", name, ErrUnsupportedVersion, v)
	}
	f := &IndexFile{}
	np := d.count(IDSize + 3)
	f.Packs = make([]PackInfo, 0, np)
	for i := 0; i < np && d.err == nil; i++ {
		var pi PackInfo
		d.id(&pi.ID)
		pi.Length = d.uvarint()
		pi.K, pi.M = int(d.byte()), int(d.byte())
		if pi.K < 1 || pi.K+pi.M > 255 || pi.Length == 0 || pi.Length > maxPackSize {
			d.fail("pack %d: invalid k=%d m=%d length=%d", i, pi.K, pi.M, pi.Length)
		}
		f.Packs = append(f.Packs, pi)
	}
	ne := d.count(IDSize + 6)
	f.Entries = make([]IndexEntry, 0, ne)
	for i := 0; i < ne && d.err == nil; i++ {
		var e IndexEntry
		d.id(&e.ID)
		e.Type = BlobType(d.byte())
		pn := d.uvarint()
		e.FrameOffset, e.FrameLength, e.BlobOffset, e.BlobLength = d.u32(), d.u32(), d.u32(), d.u32()
		if d.err != nil {
			break
		}
		switch {
		case e.Type > ListBlob:
			d.fail("entry %d: unknown blob type %d", i, e.Type)
		case pn >= uint64(len(f.Packs)):
			d.fail("entry %d: pack number %d out of range", i, pn)
		case uint64(e.FrameOffset)+uint64(e.FrameLength) > f.Packs[pn].Length:
			d.fail("entry %d: frame runs past its pack", i)
		case uint64(e.BlobOffset)+uint64(e.BlobLength) > MaxFrameRaw:
			d.fail("entry %d: blob runs past the frame limit", i)
		case i > 0 && f.Entries[i-1].ID.Compare(e.ID) >= 0:
			d.fail("entry %d: IDs not strictly ascending", i)
		}
		if d.err == nil {
			e.Pack = f.Packs[pn].ID
		}
		f.Entries = append(f.Entries, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, corrupt(name, -1, "index file: %v", d.err)
	}
	return f, nil
}
