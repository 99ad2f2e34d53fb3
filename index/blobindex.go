package index

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"

	"github.com/strata-backup/strata/repo"
	"golang.org/x/sync/errgroup"
)

// entry is one blob of a BlobIndex: 44 bytes, pointer-free, so a restore of
// a million blobs holds ~44 MB of index that the garbage collector never
// scans. The frame (pack, offset, sealed length) is shared by the ~100
// blobs of a frame, so it lives once in BlobIndex.frames.
type entry struct {
	id    repo.ID
	frame uint32 // into BlobIndex.frames
	off   uint32 // blob offset in the frame's plaintext
	// lenType is the blob's length with its type in the top bit: a blob
	// is at most repo.MaxFrameRaw (32 MiB) long, so the bit is free.
	lenType uint32
}

const typeBit = 1 << 31

// frameLoc is one frame of a BlobIndex.
type frameLoc struct {
	pack        uint32 // into BlobIndex.packs
	off, length uint32
}

// BlobIndex maps blob IDs to locations. Build it with Add, then call Seal
// once; after Seal it is read-only and safe for concurrent lookups. Its
// entries live outside the Go heap where the platform allows (arena.go) and
// are released when the index is collected.
type BlobIndex struct {
	mu      sync.Mutex
	packs   []repo.PackInfo
	packNo  map[repo.ID]uint32 // while building; nil after Seal
	frames  []frameLoc
	frameNo map[frameLoc]uint32 // while building; nil after Seal
	arena   *arena
	// building holds the entries Add appended, in blocks of blockEntries;
	// Seal moves them into one sorted block and frees these.
	building []*block
	entries  []entry // after Seal
	// fence[p] is the first entry whose ID starts with the fenceBits-bit
	// prefix p or a greater one: IDs are uniform, so a lookup searches
	// ~n/2^fenceBits entries. Small indexes take fewer bits (fenceBitsFor),
	// so that many of them (the S3 gateway's layers) do not each carry a
	// 256 KiB fence.
	fence     []uint32
	fenceBits uint
	sealed    bool
}

// NewBlobIndex returns an empty index.
func NewBlobIndex() *BlobIndex {
	ix := &BlobIndex{packNo: map[repo.ID]uint32{}, frameNo: map[frameLoc]uint32{}}
	attachArena(ix)
	return ix
}

// Add merges an index file, keeping only the entries keep accepts (nil keeps
// all). It MUST NOT be called after Seal. An entry the compact form cannot
// hold (a blob over 2 GiB or of an unknown type, which no valid index file
// has: DecodeIndexFile refuses both) is left out, so a lookup of it reports
// the blob missing rather than a wrong location.
func (ix *BlobIndex) Add(f *repo.IndexFile, keep func(repo.IndexEntry) bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, e := range f.Entries {
		if keep != nil && !keep(e) {
			continue
		}
		if e.BlobLength >= typeBit || e.Type > repo.ListBlob {
			continue
		}
		n, ok := ix.packNo[e.Pack]
		if !ok {
			for _, p := range f.Packs {
				if p.ID == e.Pack {
					n = uint32(len(ix.packs))
					ix.packs = append(ix.packs, p)
					ix.packNo[p.ID] = n
				}
			}
		}
		fl := frameLoc{pack: n, off: e.FrameOffset, length: e.FrameLength}
		fn, ok := ix.frameNo[fl]
		if !ok {
			fn = uint32(len(ix.frames))
			ix.frames = append(ix.frames, fl)
			ix.frameNo[fl] = fn
		}
		lt := e.BlobLength
		if e.Type == repo.ListBlob {
			lt |= typeBit
		}
		ix.add(entry{id: e.ID, frame: fn, off: e.BlobOffset, lenType: lt})
	}
}

// add appends one entry to the building blocks; ix.mu is held.
func (ix *BlobIndex) add(e entry) {
	n := len(ix.building)
	if n == 0 || len(ix.building[n-1].entries) == cap(ix.building[n-1].entries) {
		b := newBlock(blockEntries)
		ix.arena.blocks = append(ix.arena.blocks, b)
		ix.building = append(ix.building, b)
		n++
	}
	b := ix.building[n-1]
	b.entries = append(b.entries, e) // within capacity: never reallocates
}

// take moves the entries into one block of n, freeing the blocks they came
// from as it goes, so the peak is the index plus one block; ix.mu is held.
func (ix *BlobIndex) take(from []*block, n int) []entry {
	all := newBlock(n)
	for _, b := range from {
		all.entries = append(all.entries, b.entries...)
		b.free()
	}
	ix.arena.blocks = append(slices.DeleteFunc(ix.arena.blocks, func(b *block) bool { return slices.Contains(from, b) }), all)
	return all.entries
}

// Seal sorts the entries and builds the lookup fences. When a blob has
// several locations one is kept; every listed location is valid.
func (ix *BlobIndex) Seal() { ix.seal(false) }

// seal is Seal; sorted says the entries were added in ID order already
// (Merge), so they need no sort.
func (ix *BlobIndex) seal(sorted bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.sealed {
		return
	}
	n := 0
	for _, b := range ix.building {
		n += len(b.entries)
	}
	ix.entries = ix.take(ix.building, n)
	ix.building = nil
	if !sorted {
		slices.SortFunc(ix.entries, func(a, b entry) int { return a.id.Compare(b.id) })
	}
	ix.entries = slices.CompactFunc(ix.entries, func(a, b entry) bool { return a.id == b.id })
	if len(ix.entries) < n-n/8 {
		// Many duplicates (blobs stored by concurrent writers): shed the slack.
		sorted := ix.arena.blocks[len(ix.arena.blocks)-1] // take put it last
		sorted.entries = ix.entries
		ix.entries = ix.take([]*block{sorted}, len(ix.entries))
	}
	ix.frames = slices.Clip(ix.frames)
	ix.packNo, ix.frameNo = nil, nil
	ix.fenceBits = fenceBitsFor(len(ix.entries))
	buckets := 1 << ix.fenceBits
	ix.fence = make([]uint32, buckets+1)
	i := 0
	for p := range buckets {
		for i < len(ix.entries) && prefixOf(ix.entries[i].id, ix.fenceBits) < p {
			i++
		}
		ix.fence[p] = uint32(i)
	}
	ix.fence[buckets] = uint32(len(ix.entries))
	ix.sealed = true
}

// fenceBitsFor is the fence width for n entries: about eight entries a
// fence bucket, at most 16 bits (a 256 KiB fence, ~15 entries a bucket at
// a million blobs).
func fenceBitsFor(n int) uint {
	bits := uint(0)
	for bits < 16 && n>>(bits+3) > 0 {
		bits++
	}
	return bits
}

// prefixOf is the first bits bits of id (bits ≤ 16).
func prefixOf(id repo.ID, bits uint) int { return (int(id[0])<<8 | int(id[1])) >> (16 - bits) }

// Len returns the number of distinct blobs (after Seal).
func (ix *BlobIndex) Len() int { return len(ix.entries) }

// Lookup returns a blob's entry and its pack.
func (ix *BlobIndex) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	if !ix.sealed {
		return repo.IndexEntry{}, repo.PackInfo{}, false
	}
	pre := prefixOf(id, ix.fenceBits)
	run := ix.entries[ix.fence[pre]:ix.fence[pre+1]]
	i, ok := slices.BinarySearchFunc(run, id, func(e entry, id repo.ID) int { return e.id.Compare(id) })
	if !ok {
		return repo.IndexEntry{}, repo.PackInfo{}, false
	}
	e, p := ix.expand(&run[i])
	runtime.KeepAlive(ix) // run points into ix's arena
	return e, p, true
}

// expand turns a compact entry back into the repository's form.
func (ix *BlobIndex) expand(e *entry) (repo.IndexEntry, repo.PackInfo) {
	f := ix.frames[e.frame]
	p := ix.packs[f.pack]
	typ := repo.DataBlob
	if e.lenType&typeBit != 0 {
		typ = repo.ListBlob
	}
	return repo.IndexEntry{ID: e.id, Type: typ, Location: repo.Location{Pack: p.ID, FrameOffset: f.off, FrameLength: f.length, BlobOffset: e.off, BlobLength: e.lenType &^ typeBit}}, p
}

// Packs returns every pack the index knows.
func (ix *BlobIndex) Packs() []repo.PackInfo { return ix.packs }

// Each calls fn for every entry in ID order.
func (ix *BlobIndex) Each(fn func(repo.IndexEntry, repo.PackInfo)) {
	for i := range ix.entries {
		fn(ix.expand(&ix.entries[i]))
	}
	runtime.KeepAlive(ix)
}

// LoadError lists the index files Load could not read, by ID.
type LoadError struct {
	Failed map[repo.ID]error
}

func (e *LoadError) Error() string {
	errs := make([]error, 0, len(e.Failed))
	for _, id := range e.IDs() {
		errs = append(errs, e.Failed[id])
	}
	return errors.Join(errs...).Error()
}

// Unwrap lets errors.Is and errors.As see every failure.
func (e *LoadError) Unwrap() []error { return slices.Collect(maps.Values(e.Failed)) }

// IDs returns the failed index files in ID order.
func (e *LoadError) IDs() []repo.ID {
	return slices.SortedFunc(maps.Keys(e.Failed), repo.ID.Compare)
}

// Load reads every index file in parallel into a sealed BlobIndex, keeping
// only the entries keep accepts (nil keeps all). Memory is bounded by what is
// kept plus one index file per reader. It also returns how many files it
// read. Files that fail are returned as a *LoadError together with the index
// of everything else, so check can report and replace them and restore can
// still proceed when the missing entries are not needed.
func Load(ctx context.Context, r *repo.Repository, keep func(repo.IndexEntry) bool) (*BlobIndex, int, error) {
	ids, err := r.ListIDs(ctx, repo.IndexPrefix)
	if err != nil {
		return nil, 0, fmt.Errorf("list index files: %w", err)
	}
	ix := NewBlobIndex()
	var mu sync.Mutex
	failed := map[repo.ID]error{}
	// Decoding is CPU work and each reader holds one file: two readers a
	// core, and no more than the store serves at once.
	var g errgroup.Group
	g.SetLimit(min(runtime.GOMAXPROCS(0)*2, repo.Concurrency(r.Store())))
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			f, err := r.LoadIndex(ctx, id)
			if err != nil {
				mu.Lock()
				failed[id] = err
				mu.Unlock()
				return nil
			}
			ix.Add(f, keep)
			return nil
		})
	}
	_ = g.Wait() // every failure is in failed
	ix.Seal()
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if len(failed) > 0 {
		return ix, len(ids) - len(failed), &LoadError{Failed: failed}
	}
	return ix, len(ids), nil
}
