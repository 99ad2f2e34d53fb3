package index

import (
	"math/rand/v2"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestMergeAndSmallFences: indexes of every size from empty up (each
// with its own fence width) find exactly their blobs, and Merge of them,
// sharing packs and blobs between inputs, finds every blob at a location
// one of the inputs gave and nothing else.
func TestMergeAndSmallFences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parts []*BlobIndex
	locs := map[repo.ID][]repo.IndexEntry{}
	packOf := map[repo.ID]repo.PackInfo{}
	var shared *repo.IndexFile
	for _, n := range []int{0, 1, 2, 7, 8, 9, 100, 5000, 70000} {
		f := randomIndexFile(rng, 2, 20, n)
		if shared != nil && n > 0 {
			// A blob and a pack another input holds too.
			f.Packs = append(f.Packs, shared.Packs[0])
			e := shared.Entries[0]
			e.BlobOffset++ // a second, equally valid location
			f.Entries = append(f.Entries, e)
		}
		if n >= 100 && shared == nil {
			shared = f
		}
		ix := NewBlobIndex()
		ix.Add(f, nil)
		ix.Seal()
		want := map[repo.ID]bool{}
		for _, e := range f.Entries {
			want[e.ID] = true
			locs[e.ID] = append(locs[e.ID], e)
		}
		for _, p := range f.Packs {
			packOf[p.ID] = p
		}
		if ix.Len() != len(want) {
			t.Fatalf("%d blobs: Len %d, want %d", n, ix.Len(), len(want))
		}
		if got, max := len(ix.fence), 1<<16+1; n < 1000 && got >= max {
			t.Errorf("%d blobs: a fence of %d", n, got)
		}
		for _, e := range f.Entries {
			if _, _, ok := ix.Lookup(e.ID); !ok {
				t.Fatalf("%d blobs: %s missing", n, e.ID.Short())
			}
		}
		var absent repo.ID
		absent[0], absent[31] = 0xff, 0x01
		if _, _, ok := ix.Lookup(absent); ok {
			t.Fatalf("%d blobs: an absent blob was found", n)
		}
		parts = append(parts, ix)
	}
	m := Merge(parts...)
	if m.Len() != len(locs) {
		t.Fatalf("merged Len %d, want %d", m.Len(), len(locs))
	}
	for id, valid := range locs {
		e, p, ok := m.Lookup(id)
		if !ok {
			t.Fatalf("merged: %s missing", id.Short())
		}
		found := false
		for _, v := range valid {
			found = found || v == e
		}
		if !found {
			t.Fatalf("merged: %s at %+v, none of %+v", id.Short(), e, valid)
		}
		if p != packOf[e.Pack] {
			t.Fatalf("merged: %s pack %+v, want %+v", id.Short(), p, packOf[e.Pack])
		}
	}
	// The inputs are unchanged and still answer.
	for id := range locs {
		hits := 0
		for _, ix := range parts {
			if _, _, ok := ix.Lookup(id); ok {
				hits++
			}
		}
		if hits == 0 {
			t.Fatalf("after Merge no input finds %s", id.Short())
		}
	}
}
