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

type entry struct {
	id                                   repo.ID
	pack                                 uint32 // into BlobIndex.packs
	frameOff, frameLen, blobOff, blobLen uint32
	typ                                  repo.BlobType
}

// BlobIndex maps blob IDs to locations. Build it with Add, then call Seal
// once; after Seal it is read-only and safe for concurrent lookups.
type BlobIndex struct {
	mu      sync.Mutex
	packs   []repo.PackInfo
	packNo  map[repo.ID]uint32
	entries []entry
	// fence[p] is the first entry whose ID starts with the 16-bit prefix p
	// or a greater one: IDs are uniform, so a lookup searches ~n/65536 entries.
	fence  []uint32
	sealed bool
}

// NewBlobIndex returns an empty index.
func NewBlobIndex() *BlobIndex { return &BlobIndex{packNo: map[repo.ID]uint32{}} }

// Add merges an index file, keeping only the entries keep accepts (nil keeps all).
func (ix *BlobIndex) Add(f *repo.IndexFile, keep func(repo.IndexEntry) bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, e := range f.Entries {
		if keep != nil && !keep(e) {
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
		ix.entries = append(ix.entries, entry{id: e.ID, pack: n, frameOff: e.FrameOffset, frameLen: e.FrameLength, blobOff: e.BlobOffset, blobLen: e.BlobLength, typ: e.Type})
	}
}

// Seal sorts the entries and builds the lookup fences. When a blob has
// several locations one is kept; every listed location is valid.
func (ix *BlobIndex) Seal() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	slices.SortFunc(ix.entries, func(a, b entry) int { return a.id.Compare(b.id) })
	ix.entries = slices.CompactFunc(ix.entries, func(a, b entry) bool { return a.id == b.id })
	ix.entries = slices.Clip(ix.entries)
	ix.fence = make([]uint32, 1<<16+1)
	i := 0
	for p := range 1 << 16 {
		for i < len(ix.entries) && prefix16(ix.entries[i].id) < p {
			i++
		}
		ix.fence[p] = uint32(i)
	}
	ix.fence[1<<16] = uint32(len(ix.entries))
	ix.sealed = true
}

func prefix16(id repo.ID) int { return int(id[0])<<8 | int(id[1]) }

// Len returns the number of distinct blobs (after Seal).
func (ix *BlobIndex) Len() int { return len(ix.entries) }

// Lookup returns a blob's entry and its pack.
func (ix *BlobIndex) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	if !ix.sealed {
		return repo.IndexEntry{}, repo.PackInfo{}, false
	}
	pre := prefix16(id)
	run := ix.entries[ix.fence[pre]:ix.fence[pre+1]]
	i, ok := slices.BinarySearchFunc(run, id, func(e entry, id repo.ID) int { return e.id.Compare(id) })
	if !ok {
		return repo.IndexEntry{}, repo.PackInfo{}, false
	}
	e := run[i]
	p := ix.packs[e.pack]
	return repo.IndexEntry{ID: e.id, Type: e.typ, Location: repo.Location{Pack: p.ID, FrameOffset: e.frameOff, FrameLength: e.frameLen, BlobOffset: e.blobOff, BlobLength: e.blobLen}}, p, true
}

// Packs returns every pack the index knows.
func (ix *BlobIndex) Packs() []repo.PackInfo { return ix.packs }

// Each calls fn for every entry in ID order.
func (ix *BlobIndex) Each(fn func(repo.IndexEntry, repo.PackInfo)) {
	for _, e := range ix.entries {
		p := ix.packs[e.pack]
		fn(repo.IndexEntry{ID: e.id, Type: e.typ, Location: repo.Location{Pack: p.ID, FrameOffset: e.frameOff, FrameLength: e.frameLen, BlobOffset: e.blobOff, BlobLength: e.blobLen}}, p)
	}
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
