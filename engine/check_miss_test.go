package engine

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// checkFixture: two snapshots of a stream with positions, and a log of
// several chained segments after them.
func checkFixture(t *testing.T) (*mem.Store, *repo.Repository, []index.SnapshotRef, []repo.SegmentKey) {
	t.Helper()
	s := mem.New()
	r := newRepo(t, s, repo.InitOptions{DataShards: 2, ParityShards: 1})
	p0 := uint64(0)
	before := time.Unix(0, int64(1767225600e9)-1e9) // before testEvents
	a := backup(t, r, ndjson(200, 1, nil), BackupOptions{Stream: "s", Format: FormatNDJSON, Position: &p0, Time: before})
	p1 := uint64(0)
	b := backup(t, r, ndjson(200, 2, nil), BackupOptions{Stream: "other", Format: FormatNDJSON, Position: &p1, Time: before})
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s", SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range testEvents(200) {
		if err := w.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	logs, err := index.ListLogs(t.Context(), s, "s")
	if err != nil || len(logs["s"].Segments) < 4 {
		t.Fatalf("fixture: %v segments, %v", logs["s"], err)
	}
	rep, err := Check(t.Context(), r, CheckOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("fixture check: %v %v", rep.Problems, err)
	}
	return s, r, []index.SnapshotRef{a, b}, logs["s"].Segments
}

// TestCheckMissesNothing: each of these faults is a problem (exit 3 on
// the command line), named, and with no hint to run a repair that cannot
// rebuild the object.
func TestCheckMissesNothing(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, s *mem.Store, snaps []index.SnapshotRef, segs []repo.SegmentKey)
		want   string
	}{
		{"snapshot manifest deleted, label remains", func(t *testing.T, s *mem.Store, snaps []index.SnapshotRef, _ []repo.SegmentKey) {
			deleteBoth(t, s, repo.SnapshotsPrefix+snaps[1].ID.String())
		}, "its manifest is missing and only its label remains"},
		{"snapshot manifest truncated", func(t *testing.T, s *mem.Store, snaps []index.SnapshotRef, _ []repo.SegmentKey) {
			mutateBoth(t, s, repo.SnapshotsPrefix+snaps[1].ID.String(), func(b []byte) []byte { return b[:len(b)/2] })
		}, "does not match its name"},
		{"snapshot manifest flipped", func(t *testing.T, s *mem.Store, snaps []index.SnapshotRef, _ []repo.SegmentKey) {
			mutateBoth(t, s, repo.SnapshotsPrefix+snaps[1].ID.String(), flipAt(func(n int) int { return n / 3 }))
		}, "does not match its name"},
		{"segment manifest missing inside the chain", func(t *testing.T, s *mem.Store, _ []index.SnapshotRef, segs []repo.SegmentKey) {
			deleteBoth(t, s, segs[2].Name())
		}, "the segment manifest before it is missing"},
		{"first segment manifest missing, a snapshot needs it", func(t *testing.T, s *mem.Store, _ []index.SnapshotRef, segs []repo.SegmentKey) {
			deleteBoth(t, s, segs[0].Name())
		}, "needs positions 1-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r, snaps, segs := checkFixture(t)
			tc.damage(t, s, snaps, segs)
			for _, repair := range []bool{false, true} {
				rep, err := Check(t.Context(), r, CheckOptions{Repair: repair})
				if err != nil {
					t.Fatal(err)
				}
				all := strings.Join(rep.Problems, "\n")
				if !strings.Contains(all, tc.want) {
					t.Fatalf("repair %v: problems %q, want %q (notes %q)", repair, rep.Problems, tc.want, rep.Notes)
				}
				if repair && strings.Contains(all, "--repair") || strings.Contains(all, "from parity") {
					t.Fatalf("a hint sends to a repair that cannot rebuild the object: %s", all)
				}
			}
		})
	}
}

// TestCheckNotesForgottenLogPacks: the packs of segments forget removed are
// not called leftovers of an interrupted backup.
func TestCheckNotesForgottenLogPacks(t *testing.T) {
	_, r, _, segs := checkFixture(t)
	p := segs[1].Last
	backup(t, r, ndjson(200, 3, nil), BackupOptions{Stream: "s", Format: FormatNDJSON, Position: &p, Time: time.Unix(0, segs[1].LastTime)})
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Forget(t.Context(), r.Store(), cat, ForgetOptions{Stream: "s", Policy: ForgetPolicy{KeepLast: 1}, Now: time.Now()})
	if err != nil || len(res.RemoveSegments) != 2 {
		t.Fatalf("forget: %v, %d segments removed", err, len(res.RemoveSegments))
	}
	for _, repair := range []bool{false, true} {
		rep, err := Check(t.Context(), r, CheckOptions{Repair: repair})
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("check: %v %q", err, rep.Problems)
		}
		notes := strings.Join(rep.Notes, "\n")
		if !strings.Contains(notes, "forget") {
			t.Fatalf("repair %v: notes %q do not name forget", repair, rep.Notes)
		}
	}
}

// TestMissingBlobNamesDamagedIndex: a restore that cannot locate a blob
// because an index file is damaged names that file.
func TestMissingBlobNamesDamagedIndex(t *testing.T) {
	s, r, snap, _, _ := damageFixture(t)
	if len(snap.Indexes) == 0 {
		t.Fatal("snapshot names no index file")
	}
	name := repo.IndexPrefix + snap.Indexes[0].String()
	mutateBoth(t, s, name, flipAt(func(n int) int { return n / 2 }))
	_, err := Restore(t.Context(), r, snap, io.Discard, RestoreOptions{})
	if !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("restore with a damaged index file: %v", err)
	}
}
