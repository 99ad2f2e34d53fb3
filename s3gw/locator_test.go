package s3gw

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// TestLocatorLayers: the locations a gateway learns while it runs are
// found exactly as stored, by lookups running beside the adds, whether
// they wait in the map or were sealed and merged into layers; the layers
// stay few; and what the base index holds is found too.
func TestLocatorLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	randomID := func() (id repo.ID) {
		for i := range id {
			id[i] = byte(rng.IntN(256))
		}
		return id
	}
	baseFile := &repo.IndexFile{Packs: []repo.PackInfo{{ID: randomID(), Length: 1 << 20, K: 2, M: 1}}}
	for range 1000 {
		baseFile.Entries = append(baseFile.Entries, repo.IndexEntry{ID: randomID(), Location: repo.Location{Pack: baseFile.Packs[0].ID, FrameLength: 100, BlobLength: 10}})
	}
	base := index.NewBlobIndex()
	base.Add(baseFile, nil)
	base.Seal()
	l := newLocator(base)

	var files []*repo.IndexFile
	want := map[repo.ID]located{}
	for i := range 200 {
		p := repo.PackInfo{ID: randomID(), Length: uint64(1<<20 + i), K: 4, M: 2}
		f := &repo.IndexFile{Packs: []repo.PackInfo{p}}
		for j := range 1 + rng.IntN(200) {
			e := repo.IndexEntry{ID: randomID(), Type: repo.BlobType(j % 2),
				Location: repo.Location{Pack: p.ID, FrameOffset: uint32(j * 1000), FrameLength: 999, BlobOffset: uint32(j), BlobLength: uint32(1 + j)}}
			f.Entries = append(f.Entries, e)
			want[e.ID] = located{e, p}
		}
		files = append(files, f)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Every location of the base is found throughout.
				e := baseFile.Entries[rand.IntN(len(baseFile.Entries))]
				if got, _, ok := l.Lookup(e.ID); !ok || got != e {
					t.Errorf("base blob %s: %+v %v", e.ID.Short(), got, ok)
					return
				}
			}
		}()
	}
	for i, f := range files {
		l.add(f)
		// What was added is found at once.
		for _, e := range f.Entries {
			if got, p, ok := l.Lookup(e.ID); !ok || got != e || p != want[e.ID].p {
				t.Fatalf("file %d: blob %s: %+v %+v %v", i, e.ID.Short(), got, p, ok)
			}
		}
	}
	close(stop)
	readers.Wait()
	for id, w := range want {
		if got, p, ok := l.Lookup(id); !ok || got != w.e || p != w.p {
			t.Fatalf("blob %s: %+v %+v %v, want %+v", id.Short(), got, p, ok, w)
		}
	}
	if _, _, ok := l.Lookup(randomID()); ok {
		t.Fatal("an unknown blob was found")
	}
	l.mu.RLock()
	layers, pending := len(l.layers), len(l.pending)
	l.mu.RUnlock()
	if layers == 0 || layers > 6 || pending >= locatorPending {
		t.Errorf("%d layers and %d pending for %d locations", layers, pending, len(want))
	}
}
