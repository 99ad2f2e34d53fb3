package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
)

var logEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// appendLogEvents appends puts at positions from..to, one a minute after
// logEpoch, sealing a segment after every perSegment positions.
func appendLogEvents(t *testing.T, r *repo.Repository, stream string, from, to uint64, perSegment int) {
	t.Helper()
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	for seq := from; seq <= to; seq++ {
		e := &repo.Event{Seq: seq, Time: logEpoch.Add(time.Duration(seq) * time.Minute).UnixNano(), Op: repo.OpPut,
			Key: fmt.Appendf(nil, "k%04d", seq%50), Value: fmt.Appendf(nil, `{"_id":"k%04d","seq":%d}`, seq%50, seq)}
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
		if (seq-from+1)%uint64(perSegment) == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// logSegments lists a stream's segments and loads their manifests.
func logSegments(t *testing.T, r *repo.Repository, stream string) ([]repo.SegmentKey, []*repo.Segment) {
	t.Helper()
	logs, err := index.ListLogs(t.Context(), r.Store(), stream)
	if err != nil {
		t.Fatal(err)
	}
	keys := logs[stream].Segments
	segs := make([]*repo.Segment, len(keys))
	for i, k := range keys {
		if segs[i], err = r.LoadSegment(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	return keys, segs
}

// logFixture is a repository with one snapshot and a log of 4 segments
// after it, on 2+1 shards.
func logFixture(t *testing.T) (*mem.Store, *repo.Repository, []repo.SegmentKey, []*repo.Segment) {
	t.Helper()
	s := mem.New()
	r := newRepo(t, s, repo.InitOptions{DataShards: 2, ParityShards: 1})
	pos := uint64(0)
	backup(t, r, ndjson(200, 1, nil), BackupOptions{Stream: "db", Format: FormatNDJSON, Time: logEpoch, Position: &pos})
	appendLogEvents(t, r, "db", 1, 40, 10)
	keys, segs := logSegments(t, r, "db")
	if len(keys) != 4 {
		t.Fatalf("fixture has %d segments, want 4", len(keys))
	}
	return s, r, keys, segs
}

func mustCheck(t *testing.T, r *repo.Repository, o CheckOptions) *CheckReport {
	t.Helper()
	rep, err := Check(t.Context(), r, o)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

func hasLine(lines []string, parts ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	})
}

func TestCheckLogClean(t *testing.T) {
	_, r, _, _ := logFixture(t)
	rep := checkClean(t, r, true)
	if rep.Segments != 4 {
		t.Fatalf("%d segments checked, want 4", rep.Segments)
	}
	clean := checkClean(t, r, false)
	if len(clean.Notes) > 0 {
		t.Fatalf("segment packs reported: %q", clean.Notes)
	}
	// 4 segment packs besides the snapshot's.
	ix, _, err := index.Load(t.Context(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Packs, len(ix.Packs())+4; got != want {
		t.Fatalf("%d packs checked, want %d", got, want)
	}
	// --repair does not index segment packs.
	rep = mustCheck(t, r, CheckOptions{Repair: true})
	if len(rep.Repaired) > 0 || len(rep.Problems) > 0 {
		t.Fatalf("repair on a clean repository: repaired %q, problems %q", rep.Repaired, rep.Problems)
	}
	if rep.Indexes != clean.Indexes {
		t.Fatalf("index files %d after repair, %d before", rep.Indexes, clean.Indexes)
	}
}

func TestCheckDamagedSegmentManifest(t *testing.T) {
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped", flipAt(func(n int) int { return n / 2 })},
		{"truncated", func(b []byte) []byte { return b[:len(b)-5] }},
		{"tag flipped", flipAt(func(n int) int { return n - 1 })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r, keys, _ := logFixture(t)
			mutateBoth(t, s, keys[2].Name(), tc.damage)
			for _, o := range []CheckOptions{{}, {ReadData: true, Repair: true}} {
				rep := mustCheck(t, r, o)
				if !hasLine(rep.Problems, "log db segment 21-30", keys[2].ID.Short()) {
					t.Fatalf("%+v: damaged manifest not reported: %q", o, rep.Problems)
				}
				// Its pack is no longer named by a manifest: an unindexed pack,
				// which --repair does not index.
				if len(rep.Repaired) > 0 {
					t.Fatalf("%+v: repaired %q", o, rep.Repaired)
				}
			}
		})
	}
}

func TestCheckSegmentPackShards(t *testing.T) {
	cases := []struct {
		name      string
		structure bool // found without reading data
		damage    func(t *testing.T, s *mem.Store, seg *repo.Segment)
	}{
		{"lost data shard", true, func(t *testing.T, s *mem.Store, seg *repo.Segment) {
			s.Delete(t.Context(), repo.ShardName(seg.Pack.ID, 0))
		}},
		{"lost parity shard", true, func(t *testing.T, s *mem.Store, seg *repo.Segment) {
			s.Delete(t.Context(), repo.ShardName(seg.Pack.ID, seg.Pack.K)) // the first parity shard
		}},
		{"flipped payload", false, func(t *testing.T, s *mem.Store, seg *repo.Segment) {
			mutate(t, s, repo.ShardName(seg.Pack.ID, 1), flipAt(func(int) int { return shard.HeaderSize + 3 }))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r, keys, segs := logFixture(t)
			tc.damage(t, s, segs[1])
			pack := "pack " + segs[1].Pack.ID.Short()
			if tc.structure {
				rep := mustCheck(t, r, CheckOptions{})
				if !hasLine(rep.Problems, pack, "repairable", "log db segment 11-20") {
					t.Fatalf("structure check: %q", rep.Problems)
				}
			}
			rep := mustCheck(t, r, CheckOptions{ReadData: true})
			if !hasLine(rep.Problems, pack) {
				t.Fatalf("read-data check: %q", rep.Problems)
			}
			rep = mustCheck(t, r, CheckOptions{ReadData: true, Repair: true})
			if !hasLine(rep.Repaired, pack, "rebuilt") || len(rep.Problems) > 0 {
				t.Fatalf("repair: repaired %q, problems %q", rep.Repaired, rep.Problems)
			}
			checkClean(t, r, true)
			n := 0
			if err := ReadSegment(t.Context(), r, keys[1], segs[1], func(*repo.Event) error { n++; return nil }); err != nil || n != 10 {
				t.Fatalf("read repaired segment: %d events, %v", n, err)
			}
		})
	}
}

func TestCheckSegmentBeyondRepair(t *testing.T) {
	s, r, _, segs := logFixture(t)
	for i := range 2 { // m = 1
		s.Delete(t.Context(), repo.ShardName(segs[3].Pack.ID, i))
	}
	rep := mustCheck(t, r, CheckOptions{ReadData: true, Repair: true})
	if !hasLine(rep.Problems, "NOT recoverable") || !hasLine(rep.Problems, "log db segment 31-40", "cannot be read") {
		t.Fatalf("problems %q", rep.Problems)
	}
}

func TestCheckBrokenChain(t *testing.T) {
	s, r, keys, segs := logFixture(t)
	// Replace segment 21-30 by a manifest for the same pack that chains to
	// nothing: both it and the segment after it are out of the chain.
	forged := *segs[2]
	forged.Prev = nil
	forged.Created = forged.Created.Add(time.Second)
	if _, err := r.SaveSegment(t.Context(), &forged); err != nil {
		t.Fatal(err)
	}
	deleteBoth(t, s, keys[2].Name())
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if !hasLine(rep.Problems, "log db segment 21-30", "does not chain to", "segment 11-20", "its prev is none") {
		t.Fatalf("forged segment not reported: %q", rep.Problems)
	}
	if !hasLine(rep.Problems, "log db segment 31-40", "does not chain to", "segment 21-30", "its prev is "+keys[2].ID.Short()) {
		t.Fatalf("segment after the forged one not reported: %q", rep.Problems)
	}
	// The first segment's prev may name a segment forget removed; but
	// forget removes none that a kept snapshot needs, and the snapshot at
	// position 0 needs 1-10.
	deleteBoth(t, s, keys[0].Name())
	rep = mustCheck(t, r, CheckOptions{})
	if !hasLine(rep.Problems, "log db segment 11-20", "the segment manifest before it is missing", "needs positions 1-10") {
		t.Fatalf("the lost first segment was not reported: %q", rep.Problems)
	}
}

func TestCheckLogGapAndOverlap(t *testing.T) {
	_, r, keys, segs := logFixture(t)
	// A gap: the capture resumes at 51.
	appendLogEvents(t, r, "db", 51, 60, 10)
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if len(rep.Problems) > 0 {
		t.Fatalf("a gap is not damage: %q", rep.Problems)
	}
	if !hasLine(rep.Notes, "log db: positions 41-50 missing", "the capture recorded") {
		t.Fatalf("gap not noted: %q", rep.Notes)
	}
	// An overlap: a second writer's segment over 11-20.
	other := *segs[1]
	other.Created = other.Created.Add(time.Minute)
	if _, err := r.SaveSegment(t.Context(), &other); err != nil {
		t.Fatal(err)
	}
	rep = mustCheck(t, r, CheckOptions{})
	if !hasLine(rep.Problems, "log db: overlapping segments", keys[1].Name()) {
		t.Fatalf("overlap not reported: %q", rep.Problems)
	}
}

func TestCheckOrphanLogPackNotIndexed(t *testing.T) {
	s, r, keys, _ := logFixture(t)
	// An interrupted capture: the pack is stored, the manifest is not.
	deleteBoth(t, s, keys[3].Name())
	rep := mustCheck(t, r, CheckOptions{})
	if len(rep.Problems) > 0 || !hasLine(rep.Notes, "1 packs are in no index file") {
		t.Fatalf("problems %q, notes %q", rep.Problems, rep.Notes)
	}
	before := rep.Indexes
	rep = mustCheck(t, r, CheckOptions{Repair: true})
	if len(rep.Repaired) > 0 || rep.Indexes != before || !hasLine(rep.Notes, "holds log events", "not re-indexed") {
		t.Fatalf("repair: repaired %q, notes %q, %d index files (was %d)", rep.Repaired, rep.Notes, rep.Indexes, before)
	}
}
