package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
)

// readCounter counts the whole-shard reads of shard 0 of each pack: one per
// ReadPack, which is how a check or scrub reads a pack.
type readCounter struct {
	repo.Store
	mu    sync.Mutex
	reads map[repo.ID]int
}

func (c *readCounter) Get(ctx context.Context, name string) ([]byte, error) {
	if id, i, err := repo.ParseShardName(name); err == nil && i == 0 {
		c.mu.Lock()
		c.reads[id]++
		c.mu.Unlock()
	}
	return c.Store.Get(ctx, name)
}

func (c *readCounter) take() map[repo.ID]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = map[repo.ID]int{}
	return r
}

// scrubFixture is a repository of many small packs, read through a counter.
func scrubFixture(t *testing.T) (*mem.Store, *readCounter, *repo.Repository, []repo.ID) {
	t.Helper()
	s := mem.New()
	c := &readCounter{Store: s, reads: map[repo.ID]int{}}
	r := newRepo(t, c, repo.InitOptions{DataShards: 2, ParityShards: 1})
	for i := range 12 {
		backup(t, r, ndjson(1000, uint64(i), nil), BackupOptions{Stream: "s", Format: FormatNDJSON, PackSize: 8 << 10})
	}
	seen := map[repo.ID]bool{}
	var ids []repo.ID
	s.List(t.Context(), repo.DataPrefix, func(oi repo.ObjectInfo) error {
		id, _, err := repo.ParseShardName(oi.Name)
		if err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return nil
	})
	if len(ids) < 10 {
		t.Fatalf("fixture has only %d packs", len(ids))
	}
	c.take()
	return s, c, r, ids
}

func TestParseSubset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Subset
	}{{"1/2", Subset{N: 1, M: 2}}, {"7/7", Subset{N: 7, M: 7}}, {"10%", Subset{Percent: 10}}, {"2.5%", Subset{Percent: 2.5}}, {"100%", Subset{Percent: 100}}} {
		got, err := ParseSubset(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSubset(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
	for _, in := range []string{"", "0/2", "3/2", "1/0", "-1/2", "1/", "/2", "x", "0%", "101%", "-5%", "NaN%", "1/2/3", "1/2000000"} {
		if _, err := ParseSubset(in); !errors.Is(err, ErrBadSubset) {
			t.Errorf("ParseSubset(%q): got %v, want ErrBadSubset", in, err)
		}
	}
}

func FuzzParseSubset(f *testing.F) {
	for _, s := range []string{"1/2", "3/10", "5%", "0.1%", "1/1048576"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := ParseSubset(s)
		if err != nil {
			return
		}
		again, err := ParseSubset(sub.String())
		if err != nil || again != sub {
			t.Fatalf("%q → %v → %q → %v, %v", s, sub, sub.String(), again, err)
		}
	})
}

// Slices 1/M … M/M of a check read every pack exactly once between them.
func TestReadDataSubsetsCoverEveryPackOnce(t *testing.T) {
	_, c, r, ids := scrubFixture(t)
	for _, m := range []int{1, 2, 3} {
		total := map[repo.ID]int{}
		read := 0
		for n := 1; n <= m; n++ {
			rep, err := Check(t.Context(), r, CheckOptions{ReadData: true, Select: Subset{N: n, M: m}.Select})
			if err != nil || len(rep.Problems) > 0 {
				t.Fatalf("check %d/%d: %v %q", n, m, err, rep.Problems)
			}
			got := c.take()
			if len(got) != rep.PacksRead {
				t.Fatalf("check %d/%d reported %d packs read, read %d", n, m, rep.PacksRead, len(got))
			}
			for id, k := range got {
				if SliceOf(id, m) != n {
					t.Fatalf("check %d/%d read pack %s of slice %d", n, m, id.Short(), SliceOf(id, m))
				}
				total[id] += k
			}
			read += rep.PacksRead
		}
		for _, id := range ids {
			if total[id] != 1 {
				t.Fatalf("slices of %d read pack %s %d times, want once", m, id.Short(), total[id])
			}
		}
		if read != len(ids) {
			t.Fatalf("slices of %d read %d packs, the repository has %d", m, read, len(ids))
		}
	}
	// A percentage reads that share, rounded up.
	rep, err := Check(t.Context(), r, CheckOptions{ReadData: true, Select: Subset{Percent: 25}.Select})
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(ids) + 3) / 4; rep.PacksRead != want || len(c.take()) != want {
		t.Fatalf("25%%: read %d packs, want %d of %d", rep.PacksRead, want, len(ids))
	}
}

// Scrub passes a week apart over a 30-day cycle read every pack exactly
// once, keep their position in scrub records, and then start a new cycle.
func TestScrubCycleReadsEveryPackOnce(t *testing.T) {
	s, c, r, ids := scrubFixture(t)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	o := ScrubOptions{Cycle: 30 * 24 * time.Hour, FirstElapsed: 7 * 24 * time.Hour, Now: func() time.Time { return now }}
	total := map[repo.ID]int{}
	var cycleStart time.Time
	passes := 0
	for {
		res, err := Scrub(t.Context(), r, o)
		if err != nil {
			t.Fatal(err)
		}
		passes++
		rec := res.Record
		if rec.Error != "" || rec.BadShards != 0 || !rec.Keyed {
			t.Fatalf("pass %d: %+v", passes, rec)
		}
		if passes == 1 {
			cycleStart = rec.CycleStart
		} else if !rec.CycleStart.Equal(cycleStart) {
			t.Fatalf("pass %d started a new cycle at %v", passes, rec.CycleStart)
		}
		got := c.take()
		if len(got) != rec.PacksRead {
			t.Fatalf("pass %d recorded %d packs, read %d", passes, rec.PacksRead, len(got))
		}
		// A pass reads its share: a week of 30 days, rounded up.
		if want := (len(ids)*7 + 29) / 30; rec.Next != "" && rec.PacksRead != want {
			t.Fatalf("pass %d read %d packs, want %d", passes, rec.PacksRead, want)
		}
		for id, k := range got {
			total[id] += k
		}
		stored, err := ops.LatestScrub(t.Context(), s, true)
		if err != nil || stored == nil || stored.Next != rec.Next || stored.PacksRead != rec.PacksRead {
			t.Fatalf("newest record %+v, %v; want %+v", stored, err, rec)
		}
		now = now.Add(7 * 24 * time.Hour)
		if rec.Next == "" {
			break
		}
		if passes > 10 {
			t.Fatal("the cycle never ended")
		}
	}
	for _, id := range ids {
		if total[id] != 1 {
			t.Fatalf("the cycle read pack %s %d times, want once", id.Short(), total[id])
		}
	}
	// Each pass reads ⌈7N/30⌉ packs (the rounding up ends the cycle early
	// rather than late).
	share := (len(ids)*7 + 29) / 30
	if want := (len(ids) + share - 1) / share; passes != want {
		t.Fatalf("the cycle took %d passes, want %d", passes, want)
	}
	// The next pass starts a new cycle from the first pack.
	res, err := Scrub(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Record.CycleStart.After(cycleStart) || c.take()[ids[0]] != 1 {
		t.Fatalf("after the cycle: %+v", res.Record)
	}
}

// A scrub rebuilds a damaged shard in its slice from parity and records it;
// damage beyond parity stays, in the record and the report.
func TestScrubRepairs(t *testing.T) {
	s, c, r, ids := scrubFixture(t)
	name := repo.ShardName(ids[0], 1)
	good, _ := s.Get(t.Context(), name)
	mutate(t, s, name, flipAt(func(n int) int { return shard.HeaderSize + 3 }))
	// A whole cycle's time has passed: the pass reads every pack.
	o := ScrubOptions{Cycle: time.Hour, FirstElapsed: time.Hour}
	res, err := Scrub(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	if rec := res.Record; rec.PacksRead != len(ids) || rec.BadShards != 1 || rec.Repaired != 1 || rec.Unrepaired != 0 || rec.Error != "" || len(res.Report.Problems) > 0 {
		t.Fatalf("record %+v, problems %q", rec, res.Report.Problems)
	}
	if now, _ := s.Get(t.Context(), name); !bytes.Equal(now, good) {
		t.Fatal("the damaged shard was not rebuilt as it was")
	}
	c.take()

	// Two shards of a pack with one parity shard lost: nothing can rebuild it.
	s.Delete(t.Context(), repo.ShardName(ids[1], 0))
	s.Delete(t.Context(), repo.ShardName(ids[1], 1))
	res, err = Scrub(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Record
	if rec.BadShards != 2 || rec.Unrepaired != 2 || rec.Repaired != 0 || !strings.Contains(rec.Error, "problems remain") {
		t.Fatalf("record %+v", rec)
	}
	if !strings.Contains(strings.Join(res.Report.Problems, "\n"), "NOT recoverable") {
		t.Fatalf("problems %q", res.Report.Problems)
	}
}
