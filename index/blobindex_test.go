package index

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/strata-backup/strata/repo"
)

func randomIndexFile(rng *rand.Rand, packs, frames, blobs int) *repo.IndexFile {
	f := &repo.IndexFile{}
	for range packs {
		var p repo.PackInfo
		for i := range p.ID {
			p.ID[i] = byte(rng.IntN(256))
		}
		p.Length, p.K, p.M = 4<<20, 8, 2
		f.Packs = append(f.Packs, p)
	}
	for range blobs {
		var e repo.IndexEntry
		for i := range e.ID {
			e.ID[i] = byte(rng.IntN(256))
		}
		e.Type = repo.BlobType(rng.IntN(2))
		e.Pack = f.Packs[rng.IntN(packs)].ID
		fr := uint32(rng.IntN(frames))
		e.FrameOffset, e.FrameLength = fr*100_000, 90_000+fr
		e.BlobOffset, e.BlobLength = uint32(rng.IntN(repo.MaxFrameRaw/2)), uint32(rng.IntN(repo.MaxFrameRaw/2))
		f.Entries = append(f.Entries, e)
	}
	return f
}

// TestBlobIndexCompact: the compact, off-heap index answers every lookup as
// the index files say, across blocks, files, types and duplicates, and
// finds nothing it was not given.
func TestBlobIndexCompact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	want := map[repo.ID]repo.IndexEntry{}
	packOf := map[repo.ID]repo.PackInfo{}
	ix := NewBlobIndex()
	var files []*repo.IndexFile
	for range 4 {
		f := randomIndexFile(rng, 3, 50, 3*blockEntries/2)
		files = append(files, f)
	}
	// A blob stored twice, by two writers: either location is valid.
	files[1].Entries = append(files[1].Entries, files[0].Entries[:100]...)
	for _, p := range files[0].Packs {
		files[1].Packs = append(files[1].Packs, p)
	}
	// Kept out by the filter.
	dropped := files[3].Entries[0]
	for _, f := range files {
		ix.Add(f, func(e repo.IndexEntry) bool { return e.ID != dropped.ID })
		for _, e := range f.Entries {
			if _, ok := want[e.ID]; !ok && e.ID != dropped.ID {
				want[e.ID] = e
			}
		}
		for _, p := range f.Packs {
			packOf[p.ID] = p
		}
	}
	ix.Seal()
	if got := ix.Len(); got != len(want) {
		t.Fatalf("Len %d, want %d", got, len(want))
	}
	for id, w := range want {
		e, p, ok := ix.Lookup(id)
		if !ok {
			t.Fatalf("blob %s missing", id.Short())
		}
		if e != w {
			t.Fatalf("blob %s: got %+v, want %+v", id.Short(), e, w)
		}
		if p != packOf[e.Pack] {
			t.Fatalf("blob %s: pack %+v, want %+v", id.Short(), p, packOf[e.Pack])
		}
	}
	if _, _, ok := ix.Lookup(dropped.ID); ok {
		t.Fatal("a blob keep refused was found")
	}
	var absent repo.ID
	absent[0] = 0xff
	if _, _, ok := ix.Lookup(absent); ok {
		t.Fatal("an absent blob was found")
	}
	var prev repo.ID
	n := 0
	ix.Each(func(e repo.IndexEntry, p repo.PackInfo) {
		if n > 0 && prev.Compare(e.ID) >= 0 {
			t.Fatalf("Each out of order at %d", n)
		}
		if want[e.ID] != e || p != packOf[e.Pack] {
			t.Fatalf("Each: %+v differs", e)
		}
		prev = e.ID
		n++
	})
	if n != len(want) {
		t.Fatalf("Each visited %d, want %d", n, len(want))
	}
	if got := len(ix.arena.blocks); got != 1 {
		t.Errorf("%d blocks after Seal, want 1 (the building blocks freed)", got)
	}
}

// TestBlobIndexDuplicatesShed: an index mostly of duplicates keeps one
// entry a blob and sheds the rest of its block.
func TestBlobIndexDuplicatesShed(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := randomIndexFile(rng, 2, 10, 1000)
	ix := NewBlobIndex()
	for range 5 {
		ix.Add(f, nil)
	}
	ix.Seal()
	if got := ix.Len(); got != 1000 {
		t.Fatalf("Len %d, want 1000", got)
	}
	if got := cap(ix.entries); got != 1000 {
		t.Errorf("cap %d after Seal, want 1000", got)
	}
	for _, e := range f.Entries {
		if got, _, ok := ix.Lookup(e.ID); !ok || got != e {
			t.Fatalf("blob %s: %+v %v", e.ID.Short(), got, ok)
		}
	}
}

// TestBlobIndexRefusesWhatItCannotHold: entries no valid index file has are
// left out (reported missing), never stored truncated.
func TestBlobIndexRefusesWhatItCannotHold(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	f := randomIndexFile(rng, 1, 1, 3)
	f.Entries[0].BlobLength = 1 << 31
	f.Entries[1].Type = 7
	ix := NewBlobIndex()
	ix.Add(f, nil)
	ix.Seal()
	for i, e := range f.Entries {
		_, _, ok := ix.Lookup(e.ID)
		if ok != (i == 2) {
			t.Errorf("entry %d found: %v", i, ok)
		}
	}
}

// TestBlobIndexEmpty: an empty index seals and finds nothing.
func TestBlobIndexEmpty(t *testing.T) {
	ix := NewBlobIndex()
	ix.Seal()
	ix.Seal() // idempotent
	if _, _, ok := ix.Lookup(repo.ID{1}); ok || ix.Len() != 0 {
		t.Fatal("empty index found a blob")
	}
}

// TestBlobIndexReleased: the arena of an index nobody holds is released.
func TestBlobIndexReleased(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	ix := NewBlobIndex()
	ix.Add(randomIndexFile(rng, 1, 4, 2*blockEntries), nil)
	ix.Seal()
	a := ix.arena
	ix = nil
	for range 20 {
		runtime.GC()
		runtime.Gosched()
		if a.released.Load() {
			return
		}
	}
	t.Fatal("the arena of an unreachable index was not released")
}
