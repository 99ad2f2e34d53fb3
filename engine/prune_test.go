package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/mem"
)

var pruneEpoch = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// pruneFixture is a repository holding snapshot a of stream db, snapshot b
// of db deduplicated against it (the second half of its records changed),
// snapshot c of another stream, and a short log of db; a is forgotten.
type pruneFixture struct {
	s                   repo.Store
	r                   *repo.Repository
	a, b, c             index.SnapshotRef
	dataA, dataB, dataC []byte
	exclusive, kept     map[repo.ID]bool // packs only a references; packs b, c or the log reference
	shards              map[repo.ID]int  // every pack's shard count before any prune (k+m of its own)
	clock               time.Time
}

func newPruneFixture(t *testing.T, s repo.Store) *pruneFixture {
	t.Helper()
	f := &pruneFixture{s: s, r: newRepo(t, s, repo.InitOptions{DataShards: 2, ParityShards: 1}), clock: pruneEpoch}
	changed := map[int]int{}
	for i := 600; i < 1200; i++ {
		changed[i] = 1
	}
	f.dataA, f.dataB, f.dataC = ndjson(1200, 3, nil), ndjson(1200, 3, changed), ndjson(300, 4, nil)
	pos := uint64(0)
	o := BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 4 << 10, FrameSize: 8 << 10, Workers: 1, Uploads: 1, Time: pruneEpoch.Add(-3 * time.Hour), Position: &pos}
	f.a = backup(t, f.r, f.dataA, o)
	o.Parent, o.Time = &f.a, pruneEpoch.Add(-2*time.Hour)
	f.b = backup(t, f.r, f.dataB, o)
	f.c = backup(t, f.r, f.dataC, BackupOptions{Stream: "other", Format: FormatNDJSON, PackSize: 4 << 10, FrameSize: 8 << 10, Workers: 1, Uploads: 1, Time: pruneEpoch.Add(-time.Hour)})
	appendLogEvents(t, f.r, "db", 1, 30, 10)

	// The packs each snapshot needs, computed before anything is removed.
	refA, refKept := snapshotPacks(t, f.r, f.a), snapshotPacks(t, f.r, f.b)
	for id := range snapshotPacks(t, f.r, f.c) {
		refKept[id] = true
	}
	keys, segs := logSegments(t, f.r, "db")
	for i := range keys {
		refKept[segs[i].Pack.ID] = true
	}
	f.exclusive, f.kept = map[repo.ID]bool{}, refKept
	for id := range refA {
		if !refKept[id] {
			f.exclusive[id] = true
		}
	}
	if len(f.exclusive) < 3 || len(refA) == len(f.exclusive) {
		t.Fatalf("fixture: a has %d packs, %d of them its own; the test needs shared and exclusive packs", len(refA), len(f.exclusive))
	}

	cat, err := index.LoadCatalog(t.Context(), f.r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Forget(t.Context(), f.r.Store(), cat, ForgetOptions{Stream: "db", Policy: ForgetPolicy{KeepLast: 1}, Now: pruneEpoch, DryRun: false})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Remove) != 1 || res.Remove[0].ID != f.a.ID {
		t.Fatalf("forget removed %d snapshots", len(res.Remove))
	}
	f.shards = packsInStore(t, f.s)
	return f
}

// snapshotPacks returns the packs holding a snapshot's data and list blobs.
func snapshotPacks(t *testing.T, r *repo.Repository, s index.SnapshotRef) map[repo.ID]bool {
	t.Helper()
	ix, _, err := index.Load(t.Context(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	packs := map[repo.ID]bool{}
	add := func(id repo.ID) error {
		_, pi, ok := ix.Lookup(id)
		if !ok {
			return fmt.Errorf("blob %s not indexed", id.Short())
		}
		packs[pi.ID] = true
		return nil
	}
	if err := walkTree(t.Context(), newBlobReader(r, ix, 8), s.Tree, add, add); err != nil {
		t.Fatal(err)
	}
	return packs
}

func (f *pruneFixture) prune(t *testing.T, after time.Duration) *PruneResult {
	t.Helper()
	res, err := Prune(t.Context(), f.r, PruneOptions{Now: func() time.Time { return f.clock.Add(after) }})
	if err != nil {
		t.Fatalf("prune at +%v: %v", after, err)
	}
	return res
}

// packsInStore returns the packs with at least one shard in the store.
func packsInStore(t *testing.T, s repo.Store) map[repo.ID]int {
	t.Helper()
	out := map[repo.ID]int{}
	err := s.List(t.Context(), repo.DataPrefix, func(oi repo.ObjectInfo) error {
		id, _, err := repo.ParseShardName(oi.Name)
		if err != nil {
			return err
		}
		out[id]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func objectNames(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := s.List(t.Context(), prefix, func(oi repo.ObjectInfo) error { out = append(out, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// intact checks that every remaining snapshot and segment restores.
func (f *pruneFixture) intact(t *testing.T) {
	t.Helper()
	if !bytes.Equal(restore(t, f.r, f.b), f.dataB) || !bytes.Equal(restore(t, f.r, f.c), f.dataC) {
		t.Fatal("a remaining snapshot does not restore byte-exact")
	}
	keys, segs := logSegments(t, f.r, "db")
	for i, k := range keys {
		if err := ReadSegment(t.Context(), f.r, k, segs[i], func(*repo.Event) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// swept checks that a's own packs are gone and every other one is whole.
func (f *pruneFixture) swept(t *testing.T) {
	t.Helper()
	have := packsInStore(t, f.s)
	for id := range f.exclusive {
		if have[id] > 0 {
			t.Fatalf("pack %s of the forgotten snapshot still has %d shards", id.Short(), have[id])
		}
	}
	for id := range f.kept {
		if have[id] != f.shards[id] {
			t.Fatalf("pack %s that a remaining snapshot or segment needs has %d shards", id.Short(), have[id])
		}
	}
}

func TestPruneAfterForget(t *testing.T) {
	t.Run("mem", func(t *testing.T) { testPruneAfterForget(t, mem.New()) })
	t.Run("local", func(t *testing.T) {
		s, err := local.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		testPruneAfterForget(t, s)
	})
}

func testPruneAfterForget(t *testing.T, s repo.Store) {
	f := newPruneFixture(t, s)
	before := packsInStore(t, f.s)

	mark := f.prune(t, 0)
	if mark.Marked != len(f.exclusive) || mark.Deleted != 0 || len(mark.DeletedPacks) != 0 {
		t.Fatalf("mark run: %+v, want %d marked and nothing deleted", mark, len(f.exclusive))
	}
	if got := len(objectNames(t, f.s, repo.PruneMarksPrefix)); got != 1 {
		t.Fatalf("%d marks objects", got)
	}
	if early := f.prune(t, 59*time.Minute); early.Deleted != 0 || early.Pending != len(f.exclusive) || early.Marked != 0 {
		t.Fatalf("run within the grace period: %+v", early)
	}
	if got := len(packsInStore(t, f.s)); got != len(before) {
		t.Fatalf("%d packs before the sweep, %d at the start", got, len(before))
	}
	checkClean(t, f.r, true)

	sweep := f.prune(t, 61*time.Minute)
	if sweep.Deleted != len(f.exclusive) || sweep.Unmarked != 0 || sweep.Pending != 0 || sweep.RewrittenIndexes == 0 || sweep.FreedBytes <= 0 {
		t.Fatalf("sweep: %+v", sweep)
	}
	for _, id := range sweep.DeletedPacks {
		if !f.exclusive[id] {
			t.Fatalf("deleted pack %s that is not the forgotten snapshot's own", id.Short())
		}
	}
	f.swept(t)
	f.intact(t)
	if rep := checkClean(t, f.r, true); len(rep.Notes) > 0 {
		t.Fatalf("check notes after prune: %q", rep.Notes)
	}

	// The next run drops the marks of the deleted packs, and the one after
	// has nothing to do and leaves no marks object.
	idle := f.prune(t, 3*time.Hour)
	if idle.Deleted != 0 || idle.Marked != 0 || idle.Pending != 0 {
		t.Fatalf("idle run: %+v", idle)
	}
	if names := objectNames(t, f.s, repo.PruneMarksPrefix); len(names) != 0 {
		t.Fatalf("marks objects left: %q", names)
	}
}

func TestPruneDryRun(t *testing.T) {
	f := newPruneFixture(t, mem.New())
	f.prune(t, 0)
	all := objectNames(t, f.s, "")
	dry, err := Prune(t.Context(), f.r, PruneOptions{DryRun: true, Now: func() time.Time { return f.clock.Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if after := objectNames(t, f.s, ""); !slices.Equal(all, after) {
		t.Fatal("a dry run changed the store")
	}
	real := f.prune(t, 2*time.Hour)
	if dry.Deleted != real.Deleted || dry.FreedBytes != real.FreedBytes || dry.RewrittenIndexes != real.RewrittenIndexes ||
		dry.DeletedIndexes != real.DeletedIndexes || !slices.Equal(dry.DeletedPacks, real.DeletedPacks) {
		t.Fatalf("dry run %+v, real run %+v", dry, real)
	}
}

// TestPruneReferencedAgain: a backup that started before a was forgotten
// deduplicates against it, and finishes between mark and sweep: a's packs
// are referenced again and must survive.
func TestPruneReferencedAgain(t *testing.T) {
	f := newPruneFixture(t, mem.New())
	f.prune(t, 0)
	d := backup(t, f.r, f.dataA, BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 4 << 10, FrameSize: 8 << 10, Workers: 1, Uploads: 1, Parent: &f.a})
	if d.NewBlobs != 0 {
		t.Fatalf("the late backup stored %d blobs; it should deduplicate against a", d.NewBlobs)
	}
	sweep := f.prune(t, 2*time.Hour)
	if sweep.Unmarked != len(f.exclusive) || sweep.Deleted != 0 {
		t.Fatalf("sweep: %+v, want all %d marks dropped and nothing deleted", sweep, len(f.exclusive))
	}
	if !bytes.Equal(restore(t, f.r, d), f.dataA) {
		t.Fatal("the late snapshot does not restore")
	}
	f.intact(t)
	checkClean(t, f.r, true)
}

// TestPruneInterruptedWrites: packs of a backup that crashed, whole or with
// only some of their shards, are deleted once their grace has passed.
func TestPruneInterruptedWrites(t *testing.T) {
	fs := faulty.New(mem.New())
	f := newPruneFixture(t, fs)
	f.prune(t, 0)
	f.prune(t, 2*time.Hour)
	f.clock = f.clock.Add(3 * time.Hour)
	known := packsInStore(t, fs)

	// Shards are written in parallel: failing the 8th Put leaves some packs
	// whole and some partial, and no index file or snapshot.
	fs.FailAfter("Put", 8, nil)
	if _, _, err := Backup(t.Context(), f.r, bytes.NewReader(ndjson(1200, 9, nil)), BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 4 << 10, FrameSize: 8 << 10, Workers: 1, Uploads: 1}); err == nil {
		t.Fatal("backup succeeded")
	}
	fs.Reset()
	left := 0
	for id := range packsInStore(t, fs) {
		if _, ok := known[id]; !ok {
			left++
		}
	}
	if left == 0 {
		t.Fatal("the crashed backup left no packs")
	}
	if mark := f.prune(t, 0); mark.Marked != left {
		t.Fatalf("marked %d, want the %d packs the crash left", mark.Marked, left)
	}
	if sweep := f.prune(t, time.Hour); sweep.Deleted != left || sweep.RewrittenIndexes+sweep.DeletedIndexes != 0 {
		t.Fatalf("sweep: %+v", sweep)
	}
	if got := len(packsInStore(t, fs)); got != len(known) {
		t.Fatalf("%d packs after the sweep, %d before the crash", got, len(known))
	}
	f.intact(t)
	if rep := checkClean(t, f.r, true); len(rep.Notes) > 0 {
		t.Fatalf("notes: %q", rep.Notes)
	}
}

// TestPruneCrashAtEveryStep fails every write or delete of a prune run in
// turn, with all calls after it, as a crash would. Whichever it is, the
// remaining snapshots and segments restore and a rerun finishes the sweep.
func TestPruneCrashAtEveryStep(t *testing.T) {
	for _, phase := range []struct {
		name string
		at   time.Duration
	}{{"mark", 0}, {"sweep", 2 * time.Hour}} {
		for _, method := range []string{"Put", "Delete"} {
			// Fail call n for n = 1, 2, … until a run makes fewer than n
			// such calls. Each run has its own fixture: chunk boundaries,
			// and so the packs, depend on the repository's secret seed.
			done := false
			n := 1
			for ; !done && n < 500; n++ {
				t.Run(fmt.Sprintf("%s/%s %d", phase.name, method, n), func(t *testing.T) {
					fs := faulty.New(mem.New())
					f := newPruneFixture(t, fs)
					if phase.name == "sweep" {
						f.prune(t, 0)
					}
					fs.FailAfter(method, n, faulty.ErrInjected)
					_, err := Prune(t.Context(), f.r, PruneOptions{Now: func() time.Time { return f.clock.Add(phase.at) }})
					fs.Reset()
					if err == nil {
						done = true // the run made fewer than n calls
						return
					}
					if !errors.Is(err, faulty.ErrInjected) {
						t.Fatalf("prune with call %d of %s failing: got %v", n, method, err)
					}
					f.intact(t)
					if rep := checkClean(t, f.r, false); len(rep.Problems) > 0 {
						t.Fatal(rep.Problems)
					}
					// Rerun: the mark phase (again, if it was the one that
					// failed), then the sweep.
					if phase.name == "mark" {
						f.prune(t, 0)
					}
					f.prune(t, 2*time.Hour)
					f.swept(t)
					f.intact(t)
					if rep := checkClean(t, f.r, true); len(rep.Notes) > 0 {
						t.Fatalf("notes after the rerun: %q", rep.Notes)
					}
				})
			}
			if !done {
				t.Fatalf("%s: %s never completed", phase.name, method)
			}
			if phase.name == "sweep" && method == "Delete" && n < 10 {
				t.Fatalf("the sweep made only %d deletes", n-2)
			}
		}
	}
}

// retainingStore refuses to delete the names retained accepts, as S3 Object
// Lock does while a retention period runs.
type retainingStore struct {
	repo.Store
	retained func(name string) bool
}

func (s *retainingStore) Delete(ctx context.Context, name string) error {
	if s.retained(name) {
		return fmt.Errorf("retaining store: delete %s: %w", name, repo.ErrRetained)
	}
	return s.Store.Delete(ctx, name)
}

func TestPruneRetained(t *testing.T) {
	var lockedPack repo.ID
	var lockedIndex string
	cases := []struct {
		name     string
		pick     func(t *testing.T, f *pruneFixture) // chooses what is locked, after the mark run
		retained func(name string) bool              // locked names
		check    func(t *testing.T, f *pruneFixture, res *PruneResult)
	}{
		{
			name: "a shard",
			pick: func(t *testing.T, f *pruneFixture) {
				for id := range f.exclusive {
					lockedPack = id
					break
				}
			},
			retained: func(n string) bool { return n == repo.ShardName(lockedPack, 1) },
			check: func(t *testing.T, f *pruneFixture, res *PruneResult) {
				if !slices.Equal(res.Deferred, []string{repo.ShardName(lockedPack, 1)}) || res.Deleted != len(f.exclusive)-1 {
					t.Fatalf("deferred %q, deleted %d", res.Deferred, res.Deleted)
				}
				if slices.Contains(res.DeletedPacks, lockedPack) {
					t.Fatal("the locked pack is reported deleted")
				}
			},
		},
		{
			name: "an index file",
			pick: func(t *testing.T, f *pruneFixture) {
				for _, id := range f.a.Indexes {
					lockedIndex = repo.IndexPrefix + id.String()
				}
			},
			retained: func(n string) bool { return n == lockedIndex },
			check: func(t *testing.T, f *pruneFixture, res *PruneResult) {
				if !slices.Equal(res.Deferred, []string{lockedIndex}) {
					t.Fatalf("deferred %q", res.Deferred)
				}
				// Its packs stay, or it would list missing packs.
				have := packsInStore(t, f.s)
				for id := range f.exclusive {
					if have[id] != f.shards[id] {
						t.Fatalf("pack %s of the locked index file was deleted", id.Short())
					}
				}
			},
		},
		{
			name:     "marks objects",
			pick:     func(*testing.T, *pruneFixture) {},
			retained: func(n string) bool { return strings.HasPrefix(n, repo.PruneMarksPrefix) },
			check: func(t *testing.T, f *pruneFixture, res *PruneResult) {
				if len(res.Deferred) != 1 || res.Deleted != len(f.exclusive) {
					t.Fatalf("deferred %q, deleted %d", res.Deferred, res.Deleted)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			locking := false
			rs := &retainingStore{Store: mem.New(), retained: func(n string) bool { return locking && tc.retained(n) }}
			f := newPruneFixture(t, rs)
			f.prune(t, 0)
			tc.pick(t, f)
			locking = true
			res := f.prune(t, 2*time.Hour)
			tc.check(t, f, res)
			f.intact(t)
			checkClean(t, f.r, true)

			// Still locked: the next run defers the same and adds nothing.
			indexes := len(objectNames(t, rs, repo.IndexPrefix))
			again := f.prune(t, 3*time.Hour)
			if len(again.Deferred) == 0 || len(objectNames(t, rs, repo.IndexPrefix)) != indexes {
				t.Fatalf("rerun: deferred %q, %d index files (was %d)", again.Deferred, len(objectNames(t, rs, repo.IndexPrefix)), indexes)
			}
			// The lock expires: the next run finishes.
			locking = false
			f.prune(t, 4*time.Hour)
			f.swept(t)
			f.intact(t)
			if rep := checkClean(t, f.r, true); len(rep.Notes) > 0 {
				t.Fatalf("notes: %q", rep.Notes)
			}
		})
	}
}

func TestPruneRefusesPartialView(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, f *pruneFixture)
	}{
		{"snapshot manifest damaged", func(t *testing.T, f *pruneFixture) {
			mutateBoth(t, f.s, repo.SnapshotsPrefix+f.b.ID.String(), flipAt(func(n int) int { return n / 2 }))
		}},
		{"index file damaged", func(t *testing.T, f *pruneFixture) {
			mutateBoth(t, f.s, repo.IndexPrefix+f.b.Indexes[len(f.b.Indexes)-1].String(), flipAt(func(n int) int { return n - 1 }))
		}},
		{"index file missing", func(t *testing.T, f *pruneFixture) {
			deleteBoth(t, f.s, repo.IndexPrefix+f.b.Indexes[len(f.b.Indexes)-1].String())
		}},
		{"segment manifest damaged", func(t *testing.T, f *pruneFixture) {
			keys, _ := logSegments(t, f.r, "db")
			mutateBoth(t, f.s, keys[1].Name(), flipAt(func(n int) int { return n / 3 }))
		}},
		{"list blob lost", func(t *testing.T, f *pruneFixture) {
			// Every shard of the pack holding b's first list blob.
			ix, _, _ := index.Load(t.Context(), f.r, nil)
			_, pi, ok := ix.Lookup(f.b.Tree.Root[0])
			if !ok || f.b.Tree.Height == 0 {
				t.Fatal("fixture: b has no list blobs")
			}
			for i := range pi.K + pi.M {
				f.s.Delete(t.Context(), repo.ShardName(pi.ID, i))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPruneFixture(t, mem.New())
			f.prune(t, 0)
			tc.damage(t, f)
			all := objectNames(t, f.s, "")
			if _, err := Prune(t.Context(), f.r, PruneOptions{Now: func() time.Time { return f.clock.Add(2 * time.Hour) }}); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("prune on a partial view: %v", err)
			}
			if after := objectNames(t, f.s, ""); !slices.Equal(all, after) {
				t.Fatal("prune changed the store")
			}
		})
	}
}

func TestPruneOptions(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	if _, err := Prune(t.Context(), r, PruneOptions{Grace: -time.Second}); err == nil {
		t.Fatal("negative grace accepted")
	}
	res, err := Prune(t.Context(), r, PruneOptions{})
	if err != nil || res.Marked+res.Deleted != 0 {
		t.Fatalf("prune of an empty repository: %+v, %v", res, err)
	}
	// A marks object of a later version is not interpreted.
	if err := r.Store().Put(t.Context(), repo.PruneMarksName(1), []byte(`{"version":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(t.Context(), r, PruneOptions{}); !errors.Is(err, repo.ErrUnsupportedVersion) {
		t.Fatalf("future marks: %v", err)
	}
	// An unreadable one only delays deletion, and is replaced.
	if err := r.Store().Put(t.Context(), repo.PruneMarksName(2), []byte(`{not json`)); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(t.Context(), r, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if names := objectNames(t, r.Store(), repo.PruneMarksPrefix); len(names) != 0 {
		t.Fatalf("marks left: %q", names)
	}
}
