package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// TestTwoWritersSameNameRefused: two manifests whose names agree but for
// the ID, neither replacing the other, are two writers' segments: a
// restore across them is refused as an overlap (never one picked), check
// reports it, and check --repair resolves it like any overlap.
func TestTwoWritersSameNameRefused(t *testing.T) {
	f := newReencryptFixture(t, mem.New())
	r := openWith(t, f.fs, testPassword)
	logs, err := index.ListLogs(t.Context(), f.fs, reLog)
	if err != nil {
		t.Fatal(err)
	}
	k := logs[reLog].Segments[1]
	s, err := r.LoadSegment(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	other := *s
	other.Created = other.Created.Add(time.Second) // another writer's manifest of the same events
	ok, err := r.SaveSegment(t.Context(), &other)
	if err != nil {
		t.Fatal(err)
	}
	if !index.SameName(ok, k) || ok.ID == k.ID {
		t.Fatalf("%s is not a twin of %s", ok.Name(), k.Name())
	}
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan(reLog, index.Target{Position: k.Last, ByPos: true})
	if err != nil {
		// A plan with no base: make one at position 0, as logIntact does.
		zero := uint64(0)
		cat.Snapshots = append(cat.Snapshots, index.SnapshotRef{ID: repo.ID{1}, Snapshot: &repo.Snapshot{Stream: reLog, Time: time.Unix(0, f.events[0].Time-1), Position: &zero}})
		if p, err = cat.Plan(reLog, index.Target{Position: k.Last, ByPos: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadPlanSegments(t.Context(), r, p); !errors.Is(err, index.ErrNotRestorable) || !strings.Contains(err.Error(), "overlapping") {
		t.Fatalf("a plan across two writers' same-name segments: %v", err)
	}
	if d, err := DecideTwins(t.Context(), r, cat.Logs[reLog]); err != nil || len(d.Conflicts) != 1 || len(d.Twins) != 0 {
		t.Fatalf("coverage's view of two writers' same-name segments: conflicts %v (%v)", d.Conflicts, err)
	}
	rep, err := Check(t.Context(), r, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Problems, func(p string) bool { return strings.Contains(p, "overlapping") }) {
		t.Fatalf("check does not report the overlap: %q", rep.Problems)
	}
	if _, err := Check(t.Context(), r, CheckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	logs, err = index.ListLogs(t.Context(), f.fs, reLog)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs[reLog].Twins) != 0 {
		t.Fatalf("repair left twins %v", logs[reLog].Twins)
	}
	f.logIntact(t, "repaired", r, logs[reLog])
	checkClean(t, r, false)
}

// TestReencryptTwinsWithoutJournal: a kill that left a segment manifest
// beside its replacement, then the journal lost: the rerun sees that the
// replacement replaces it (its replaces field) and deletes it, rather
// than rewriting it into a second, unrelated-looking replacement.
func TestReencryptTwinsWithoutJournal(t *testing.T) {
	t0 := time.Now()
	for n := 1; ; n++ {
		if n > 200 {
			t.Fatal("no failed delete left twins")
		}
		f := newReencryptFixture(t, mem.New())
		f.fs.Reset()
		f.fs.FailOnce("Delete", n, nil)
		_, err := f.reencrypt(t, t0)
		f.fs.Reset()
		if err == nil || twinsLeft(t, f.fs) == 0 {
			continue
		}
		for _, name := range objectNames(t, f.fs, repo.RekeyPrefix) {
			if err := f.fs.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
		}
		f.intact(t, "journal lost")
		f.rerunUntilDone(t, "after the journal was lost", t0, 4)
		if tw := twinsLeft(t, f.fs); tw != 0 {
			t.Fatalf("%d twins left after the re-encryption", tw)
		}
		f.intact(t, "done")
		checkClean(t, openWith(t, f.fs, testPassword), true)
		return
	}
}
