package multi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
)

var fastKDF = repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// dirs is a multi store over local directories that a test can wipe.
type dirs struct {
	paths []string
}

func newDirs(t *testing.T, n int) *dirs {
	d := &dirs{}
	for i := range n {
		d.paths = append(d.paths, filepath.Join(t.TempDir(), "store", string(rune('a'+i))))
	}
	return d
}

// open returns a fresh multi store over the directories, as a new process would.
func (d *dirs) open(t *testing.T) *Store {
	t.Helper()
	stores := make([]repo.Store, len(d.paths))
	for i, p := range d.paths {
		stores[i] = openLocal(t, p)
	}
	s, err := New(stores, Options{Names: d.paths})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wipe loses store i: its directory comes back empty.
func (d *dirs) wipe(t *testing.T, i int) {
	t.Helper()
	if err := os.RemoveAll(d.paths[i]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.paths[i], 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestStoreLoss runs a 4+2 repository over three directories, loses one
// whole store, reads everything, restores the store with Resync and
// RepairPack, then loses another.
// shardsOn lists the shards of pi that store i of n holds (shard j lives
// on store j mod n).
func shardsOn(pi repo.PackInfo, i, n int) []int {
	var out []int
	for j := i; j < pi.K+pi.M; j += n {
		out = append(out, j)
	}
	return out
}

func TestStoreLoss(t *testing.T) {
	ctx := t.Context()
	password := []byte("correct horse")
	d := newDirs(t, 3)
	if err := CheckPlacement(4, 2, len(d.paths)); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, d.open(t), password, repo.InitOptions{DataShards: 4, ParityShards: 2, KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	packs := map[repo.ID][]byte{}
	var infos []repo.PackInfo
	for i, size := range []int{1, 1000, 4096, 100003, 300000} {
		pack := randomBytes(uint64(100+i), size)
		pi, err := r.WritePack(ctx, pack)
		if err != nil {
			t.Fatal(err)
		}
		packs[pi.ID] = pack
		infos = append(infos, pi)
	}
	ixID, err := r.SaveIndex(ctx, &repo.IndexFile{Packs: infos})
	if err != nil {
		t.Fatal(err)
	}
	snapID, err := r.SaveSnapshot(ctx, &repo.Snapshot{Stream: "db/main", Time: time.Now(), Format: "raw", Indexes: []repo.ID{ixID}})
	if err != nil {
		t.Fatal(err)
	}

	// readAll opens the repository anew and checks every object, returning
	// the shards ReadPack found missing, by pack.
	readAll := func(t *testing.T, s repo.Store) (*repo.Repository, map[repo.ID][]int) {
		t.Helper()
		r, err := repo.Open(ctx, s, password)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		ix, err := r.LoadIndex(ctx, ixID)
		if err != nil {
			t.Fatalf("LoadIndex: %v", err)
		}
		if !slices.Equal(ix.Packs, infos) {
			t.Fatalf("index lists %v, want %v", ix.Packs, infos)
		}
		if snap, err := r.LoadSnapshot(ctx, snapID); err != nil || snap.Stream != "db/main" {
			t.Fatalf("LoadSnapshot: %+v, %v", snap, err)
		}
		missing := map[repo.ID][]int{}
		for _, pi := range infos {
			got, rep, err := r.ReadPack(ctx, pi)
			if err != nil {
				t.Fatalf("ReadPack %s: %v", pi.ID.Short(), err)
			}
			if !bytes.Equal(got, packs[pi.ID]) {
				t.Fatalf("ReadPack %s returned different bytes", pi.ID.Short())
			}
			if len(rep.Bad) > 0 {
				t.Fatalf("ReadPack %s: bad shards %v", pi.ID.Short(), rep.Bad)
			}
			if len(rep.Missing) > 0 {
				missing[pi.ID] = rep.Missing
			}
		}
		return r, missing
	}
	if _, missing := readAll(t, d.open(t)); len(missing) > 0 {
		t.Fatalf("shards missing before any loss: %v", missing)
	}

	// Lose store 1: shards 1 and 4 of every pack (1 alone of the packs
	// too small for four data shards) and its metadata copies.
	d.wipe(t, 1)
	s := d.open(t)
	r, missing := readAll(t, s)
	for _, pi := range infos {
		if got, want := missing[pi.ID], shardsOn(pi, 1, 3); !slices.Equal(got, want) {
			t.Fatalf("pack %s: missing shards %v after losing store 1, want %v", pi.ID.Short(), got, want)
		}
	}
	rep, err := s.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := names(t, s.stores[0], "")
	wantMeta = slices.DeleteFunc(wantMeta, func(n string) bool { _, ok := repo.ShardIndex(n); return ok })
	if got := rep.Stores[1].Restored; !slices.Equal(got, wantMeta) {
		t.Fatalf("Resync restored %q to store 1, want %q", got, wantMeta)
	}
	if rep.Copied() != len(wantMeta) {
		t.Fatalf("Resync copied %d objects, want %d: %+v", rep.Copied(), len(wantMeta), rep)
	}
	for _, pi := range infos {
		done, err := r.RepairPack(ctx, pi)
		if err != nil {
			t.Fatal(err)
		}
		if want := shardsOn(pi, 1, 3); !slices.Equal(done, want) {
			t.Fatalf("RepairPack %s rebuilt %v, want %v", pi.ID.Short(), done, want)
		}
	}
	// Store 1 holds its share again.
	store1 := openLocal(t, d.paths[1])
	share := 0
	for _, pi := range infos {
		for _, i := range shardsOn(pi, 1, 3) {
			if _, err := store1.Stat(ctx, repo.ShardName(pi.ID, i)); err != nil {
				t.Fatalf("store 1 after repair: %v", err)
			}
			share++
		}
	}
	if got := names(t, store1, ""); len(got) != len(wantMeta)+share {
		t.Fatalf("store 1 holds %d objects after repair, want %d", len(got), len(wantMeta)+share)
	}
	if _, missing := readAll(t, d.open(t)); len(missing) > 0 {
		t.Fatalf("shards missing after repair: %v", missing)
	}

	// Lose store 2 as well, now that store 1 is whole again.
	d.wipe(t, 2)
	_, missing = readAll(t, d.open(t))
	for _, pi := range infos {
		if got, want := missing[pi.ID], shardsOn(pi, 2, 3); !slices.Equal(got, want) {
			t.Fatalf("pack %s: missing shards %v after losing store 2, want %v", pi.ID.Short(), got, want)
		}
	}

	// The metadata is on every store: the repository opens through one alone.
	alone, err := repo.Open(ctx, openLocal(t, d.paths[0]), password)
	if err != nil {
		t.Fatalf("Open through store 0 alone: %v", err)
	}
	if _, err := alone.LoadIndex(ctx, ixID); err != nil {
		t.Fatal(err)
	}
	if _, err := alone.LoadSnapshot(ctx, snapID); err != nil {
		t.Fatal(err)
	}
}

// TestDegraded reads a repository while one store fails every call: a
// strict Store cannot even open it, a degraded one restores everything
// from the other stores and parity, and refuses to write.
func TestDegraded(t *testing.T) {
	ctx := t.Context()
	password := []byte("pw")
	inner := []*mem.Store{mem.New(), mem.New(), mem.New()}
	stores := []repo.Store{inner[0], inner[1], inner[2]}
	s, err := New(stores, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, s, password, repo.InitOptions{DataShards: 4, ParityShards: 2, KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	pack := randomBytes(30, 50000)
	pi, err := r.WritePack(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}
	ixID, err := r.SaveIndex(ctx, &repo.IndexFile{Packs: []repo.PackInfo{pi}})
	if err != nil {
		t.Fatal(err)
	}

	down := faulty.New(inner[1])
	for _, m := range []string{"Put", "Get", "GetRange", "Stat", "List", "Delete"} {
		down.FailAfter(m, 1, nil)
	}
	stores[1] = down
	strict, err := New(stores, Options{Names: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, strict, password); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("Open with a store down: %v, want the store's failure", err)
	}

	d, err := New(stores, Options{Names: []string{"a", "b", "c"}, Degraded: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err = repo.Open(ctx, d, password)
	if err != nil {
		t.Fatalf("degraded Open: %v", err)
	}
	if _, err := r.LoadIndex(ctx, ixID); err != nil {
		t.Fatalf("degraded LoadIndex: %v", err)
	}
	got, rep, err := r.ReadPack(ctx, pi)
	if err != nil || !bytes.Equal(got, pack) {
		t.Fatalf("degraded ReadPack: %d bytes, %v", len(got), err)
	}
	if want := shardsOn(pi, 1, 3); !slices.Equal(rep.Missing, want) {
		t.Fatalf("degraded ReadPack found shards %v missing, want %v", rep.Missing, want)
	}
	if got, want := d.Unavailable(), []string{"store 1 (b)"}; !slices.Equal(got, want) {
		t.Fatalf("Unavailable = %q, want %q", got, want)
	}
	_, err = d.Get(ctx, repo.ShardName(pi.ID, 1))
	if !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "store 1 (b) passed over") {
		t.Fatalf("degraded Get of a shard on the down store: %v", err)
	}
	if _, err := r.WritePack(ctx, pack); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("degraded WritePack: %v, want ErrReadOnly", err)
	}
	if err := d.Delete(ctx, repo.IndexPrefix+ixID.String()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("degraded Delete: %v, want ErrReadOnly", err)
	}
	if _, err := d.Resync(ctx); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("degraded Resync: %v, want ErrReadOnly", err)
	}
	if err := d.RetainUntil(ctx, "config", time.Now()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("degraded RetainUntil: %v, want ErrReadOnly", err)
	}

	// Degraded still needs one store to answer a listing.
	all := []repo.Store{faulty.New(mem.New()), faulty.New(mem.New())}
	for _, st := range all {
		st.(*faulty.Store).FailAfter("List", 1, nil)
	}
	none, err := New(all, Options{Degraded: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := none.List(ctx, "", func(repo.ObjectInfo) error { return nil }); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("degraded List with every store down: %v", err)
	}
}
