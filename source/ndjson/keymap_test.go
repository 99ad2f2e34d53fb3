package ndjson_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/ndjson"
)

// keyMapRepo backs up the generator's day-0 export of docs documents into
// a counting store, with a key map of leaves of leaf chunks made by src.
func keyMapRepo(t *testing.T, g *sample.Generator, src engine.KeyMapSource, leaf int) (*repo.Repository, *countingStore, index.SnapshotRef) {
	t.Helper()
	cs := &countingStore{Store: mem.New()}
	r, err := repo.Init(context.Background(), cs, []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r, cs, keyMapBackup(t, r, "km", g, src, leaf)
}

func keyMapBackup(t *testing.T, r *repo.Repository, stream string, g *sample.Generator, src engine.KeyMapSource, leaf int) index.SnapshotRef {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	if err := g.Export(&b, 0); err != nil {
		t.Fatal(err)
	}
	oc := ndjson.NewOrderChecker("_id")
	oc.Write(b.Bytes())
	var notes []string
	pos := g.Position(0)
	id, snap, err := engine.Backup(ctx, r, bytes.NewReader(b.Bytes()), engine.BackupOptions{
		Stream: stream, Format: engine.FormatNDJSON, Time: g.DayTime(0), Position: &pos,
		Describe: func(s *repo.Snapshot) { s.KeyField = "_id"; s.Sorted, _ = oc.Sorted() },
		KeyMap:   src, KeyMapLeaf: leaf,
		Logf: func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) > 0 {
		t.Logf("backup notes: %q", notes)
	}
	return index.SnapshotRef{ID: id, Snapshot: snap}
}

// getAll gets keys from the plan of snap alone and compares them with the
// generator's day 0; it returns the most bytes one get read.
func getAll(t *testing.T, r *repo.Repository, cs *countingStore, g *sample.Generator, snap index.SnapshotRef, keys []string) int64 {
	t.Helper()
	p := &index.Plan{Stream: snap.Stream, Base: snap}
	var worst int64
	for _, k := range keys {
		cs.reset()
		got, err := ndjson.Get(context.Background(), r, p, []byte(k))
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		want, _ := g.Lookup(k, g.DayTime(0))
		if got.Found != (want != nil) || string(got.Doc) != string(want) {
			t.Fatalf("get %s: found %v %.60s, want %.60s", k, got.Found, got.Doc, want)
		}
		worst = max(worst, cs.read.Load())
	}
	return worst
}

func keyMapKeys(docs int) []string {
	keys := []string{"a", "user-", "zzz", sample.Key(uint64(docs) + 5)}
	for i := 0; i < docs; i += docs / 37 {
		keys = append(keys, sample.Key(uint64(i)), sample.Key(uint64(i))+"0")
	}
	return append(keys, sample.Key(0), sample.Key(uint64(docs-1)))
}

// TestKeyMapGet: a get through the key map answers as the generator does
// for present and absent keys, across leaves, and reads far less than a
// get through the index files and blob tree of the same snapshot.
func TestKeyMapGet(t *testing.T) {
	const docs = 6000
	g, err := sample.New(sample.Options{Docs: docs, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r, cs, snap := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 64)
	if snap.KeyMap == nil {
		t.Fatal("a sorted ndjson backup wrote no key map")
	}
	km, err := engine.OpenKeyMap(context.Background(), r, snap.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if km.Leaves() < 3 {
		t.Fatalf("%d leaves: the test wants several", km.Leaves())
	}
	keys := keyMapKeys(docs)
	viaMap := getAll(t, r, cs, g, snap, keys)
	noMap := snap
	s := *snap.Snapshot
	s.KeyMap = nil
	noMap.Snapshot = &s
	viaTree := getAll(t, r, cs, g, noMap, keys)
	t.Logf("worst get: %d bytes through the key map, %d through the tree", viaMap, viaTree)
	if viaMap*2 > viaTree {
		t.Errorf("a get through the key map read %d bytes, through the tree %d: the map should halve it at least", viaMap, viaTree)
	}

	// The locator API: every chunk of the tree, at a location holding it.
	loc, err := km.Locator(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := engine.ReadContent(context.Background(), r, unionLocator{loc, snapIndex(t, r, snap)}, snap.Tree, 0, -1, &out); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	g.Export(&want, 0)
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatal("the export read through the key map's locator differs")
	}
}

// unionLocator finds data blobs in the key map and list blobs in the index.
type unionLocator struct{ a, b engine.BlobLocator }

func (u unionLocator) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	if e, p, ok := u.a.Lookup(id); ok {
		return e, p, ok
	}
	e, p, ok := u.b.Lookup(id)
	if ok && e.Type == repo.DataBlob {
		return e, p, false // data blobs must come from the key map
	}
	return e, p, ok
}

func snapIndex(t *testing.T, r *repo.Repository, snap index.SnapshotRef) *index.BlobIndex {
	t.Helper()
	ix, _, err := index.Load(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// lyingSource records keys one above the true ones: a key map that
// disagrees with the chunks it names.
type lyingSource struct{ engine.KeyMapSource }

func (l lyingSource) Keys() ([]engine.KeyMapKey, bool) {
	keys, ok := l.KeyMapSource.Keys()
	for i := range keys {
		if keys[i].HasKey {
			keys[i].Key = append(bytes.Clone(keys[i].Key), 0)
		}
	}
	return keys, ok
}

// TestKeyMapFallback: a map that is gone (as after a prune that deletes
// its pack), damaged, or wrong about keys never gives a wrong answer: get
// falls back to the blob tree. Check reports the damaged and wrong ones.
func TestKeyMapFallback(t *testing.T) {
	const docs = 3000
	g, err := sample.New(sample.Options{Docs: docs, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := keyMapKeys(docs)

	t.Run("wrong keys", func(t *testing.T) {
		r, cs, snap := keyMapRepo(t, g, lyingSource{ndjson.KeyMapSource("_id")}, 32)
		if snap.KeyMap == nil {
			t.Fatal("no key map")
		}
		getAll(t, r, cs, g, snap, keys)
	})
	t.Run("stale map", func(t *testing.T) {
		// Another snapshot's map, named by a manifest: its totals differ.
		r, cs, snap := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 32)
		g2, _ := sample.New(sample.Options{Docs: docs / 2, Seed: 4})
		other := keyMapBackup(t, r, "other", g2, ndjson.KeyMapSource("_id"), 32)
		s := *snap.Snapshot
		s.KeyMap = other.KeyMap
		id, err := r.SaveSnapshot(ctx, &s)
		if err != nil {
			t.Fatal(err)
		}
		getAll(t, r, cs, g, index.SnapshotRef{ID: id, Snapshot: &s}, keys)
		rep, err := engine.Check(ctx, r, engine.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "key map unusable") {
			t.Errorf("check of a stale key map: %q", rep.Problems)
		}
	})
	for _, tc := range []struct {
		name   string
		damage func(st repo.Store, ref *repo.KeyMapRef)
	}{
		{"pack deleted", func(st repo.Store, ref *repo.KeyMapRef) {
			for i := range ref.K + ref.M {
				st.Delete(ctx, repo.ShardName(ref.Pack, i))
			}
		}},
		{"every shard flipped", func(st repo.Store, ref *repo.KeyMapRef) {
			for i := range ref.K + ref.M {
				b, _ := st.Get(ctx, repo.ShardName(ref.Pack, i))
				for j := 56; j < len(b)-32; j += 97 {
					b[j] ^= 0x40
				}
				st.Put(ctx, repo.ShardName(ref.Pack, i), b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, cs, snap := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 32)
			tc.damage(cs.Store, snap.KeyMap)
			getAll(t, r, cs, g, snap, keys)
			rep, err := engine.Check(ctx, r, engine.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Error("check found no problem with a damaged key map pack")
			}
		})
	}
}

// TestKeyMapCheckAndPrune: check passes a good map and flags a wrong one;
// prune, run until it sweeps, keeps the map's pack, and the pack holds a
// blob of the snapshot's tree, so a prune that knows nothing of key maps
// keeps it as well.
func TestKeyMapCheckAndPrune(t *testing.T) {
	g, err := sample.New(sample.Options{Docs: 3000, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, cs, snap := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 32)
	rep, err := engine.Check(ctx, r, engine.CheckOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check of a good key map: %v %q", err, rep.Problems)
	}
	files, err := r.ListIDs(ctx, repo.IndexPrefix)
	if err != nil {
		t.Fatal(err)
	}
	anchored := false
	for _, id := range files {
		f, err := r.LoadIndex(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range f.Entries {
			anchored = anchored || e.Pack == snap.KeyMap.Pack && e.ID == snap.Tree.Root[0]
		}
	}
	if !anchored {
		t.Fatal("the key map's pack holds no blob of the snapshot's tree")
	}
	now := time.Now()
	for i := range 2 {
		res, err := engine.Prune(ctx, r, engine.PruneOptions{Grace: time.Minute, Now: func() time.Time { return now.Add(time.Duration(i) * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range res.DeletedPacks {
			if id == snap.KeyMap.Pack {
				t.Fatal("prune deleted the key map's pack")
			}
		}
	}
	if _, err := engine.OpenKeyMap(ctx, r, snap.Snapshot); err != nil {
		t.Fatalf("after prune: %v", err)
	}
	cs.reset()
	getAll(t, r, cs, g, snap, keyMapKeys(3000)[:8])

	// Once the snapshot is forgotten, its map goes with its data.
	if err := r.Store().Delete(ctx, repo.SnapshotName(snap.ID)); err != nil {
		t.Fatal(err)
	}
	deleted := false
	for i := 2; i < 4; i++ {
		res, err := engine.Prune(ctx, r, engine.PruneOptions{Grace: time.Minute, Now: func() time.Time { return now.Add(time.Duration(i) * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range res.DeletedPacks {
			deleted = deleted || id == snap.KeyMap.Pack
		}
	}
	if !deleted {
		t.Error("prune kept the key map of a forgotten snapshot")
	}
}

// TestKeyMapWithParent: a backup deduplicated against its parent locates
// the unchanged chunks in the parent's packs; its map answers gets of
// day 2's state and passes check.
func TestKeyMapWithParent(t *testing.T) {
	const docs = 3000
	g, err := sample.New(sample.Options{Docs: docs, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, cs, first := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 32)
	parent, err := engine.Parent(ctx, r, "km")
	if err != nil || parent == nil || parent.ID != first.ID {
		t.Fatalf("parent: %v %v", parent, err)
	}
	var b bytes.Buffer
	if err := g.Export(&b, 2); err != nil {
		t.Fatal(err)
	}
	oc := ndjson.NewOrderChecker("_id")
	oc.Write(b.Bytes())
	pos := g.Position(2)
	id, snap, err := engine.Backup(ctx, r, bytes.NewReader(b.Bytes()), engine.BackupOptions{
		Stream: "km", Format: engine.FormatNDJSON, Time: g.DayTime(2), Position: &pos, Parent: parent,
		Describe: func(s *repo.Snapshot) { s.KeyField = "_id"; s.Sorted, _ = oc.Sorted() },
		KeyMap:   ndjson.KeyMapSource("_id"), KeyMapLeaf: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	if snap.KeyMap == nil || snap.NewBlobs*2 > snap.Blobs {
		t.Fatalf("key map %v; %d new blobs of %d: the parent should dedup most", snap.KeyMap, snap.NewBlobs, snap.Blobs)
	}
	ref := index.SnapshotRef{ID: id, Snapshot: snap}
	p := &index.Plan{Stream: "km", Base: ref}
	for _, k := range keyMapKeys(docs) {
		got, err := ndjson.Get(ctx, r, p, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := g.Lookup(k, g.DayTime(2))
		if got.Found != (want != nil) || string(got.Doc) != string(want) {
			t.Fatalf("get %s at day 2: found %v %.60s, want %.60s", k, got.Found, got.Doc, want)
		}
	}
	cs.reset()
	if _, err := ndjson.Get(ctx, r, p, []byte(sample.Key(docs/2))); err != nil {
		t.Fatal(err)
	}
	if kinds := cs.reset(); kinds["index"] != 0 {
		t.Errorf("a get through the map read index files: %v", kinds)
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %q", err, rep.Problems)
	}
}

// TestKeyMapAfterReencrypt: re-encryption (FORMAT.md §4.1) renames every
// pack a key map locates; the resealed snapshot drops its map, so check
// finds nothing to report and a get answers through the index files.
func TestKeyMapAfterReencrypt(t *testing.T) {
	g, err := sample.New(sample.Options{Docs: 2000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, cs, _ := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 32)
	now := time.Now()
	for i := range 3 {
		if _, err := engine.Reencrypt(ctx, r, engine.ReencryptOptions{Passwords: [][]byte{[]byte("pw")}, Grace: time.Minute,
			Now: func() time.Time { return now.Add(time.Duration(i) * time.Hour) }}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after re-encryption: %v %q", err, rep.Problems)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	snap := cat.Snapshots[0]
	if snap.KeyMap != nil {
		if _, err := engine.OpenKeyMap(ctx, r, snap.Snapshot); err != nil {
			t.Fatalf("a re-encrypted snapshot names a key map that does not open: %v", err)
		}
	}
	getAll(t, r, cs, g, snap, keyMapKeys(2000)[:8])
}
