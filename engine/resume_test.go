package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// putCounter counts the bytes and objects stored through it, and when the
// last one was stored.
type putCounter struct {
	repo.Store
	bytes, puts atomic.Int64
	last        atomic.Int64 // unix nanoseconds
}

func (c *putCounter) Put(ctx context.Context, name string, data []byte) error {
	err := c.Store.Put(ctx, name, data)
	if err == nil {
		c.bytes.Add(int64(len(data)))
		c.puts.Add(1)
		c.last.Store(time.Now().UnixNano())
	}
	return err
}

func (c *putCounter) Unwrap() repo.Store { return c.Store }

// stallingReader returns the first n bytes of data, then blocks until
// released, then returns an error.
type stallingReader struct {
	data    []byte
	n       int
	stalled chan struct{}
	once    sync.Once
	release chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.n > 0 {
		k := copy(p, s.data[:s.n])
		s.data, s.n = s.data[k:], s.n-k
		return k, nil
	}
	s.once.Do(func() { close(s.stalled) })
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// interruptedBackup runs a backup of data that stops reading after frac of
// it, waits until the store has been quiet for a while (the checkpoint of
// what was read is written), and then cancels it: what a kill leaves.
func interruptedBackup(t *testing.T, r *repo.Repository, pc *putCounter, data []byte, frac float64, o BackupOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	src := &stallingReader{data: data, n: int(float64(len(data)) * frac), stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, _, err := Backup(ctx, r, src, o)
		done <- err
	}()
	<-src.stalled
	quiet := 6 * o.CheckpointEvery
	deadline := time.Now().Add(30 * time.Second)
	for time.Since(time.Unix(0, pc.last.Load())) < quiet && time.Now().Before(deadline) {
		time.Sleep(o.CheckpointEvery)
	}
	cancel()
	close(src.release)
	if err := <-done; err == nil {
		t.Fatal("the interrupted backup wrote a snapshot")
	}
}

func TestResumeInterruptedBackup(t *testing.T) {
	data := ndjson(80000, 5, nil) // about 24 MB: a stalled reader holds up to 1 MiB unread by the pipeline
	o := BackupOptions{Stream: "db/users", Format: FormatNDJSON, PackSize: 256 << 10, CheckpointEvery: 50 * time.Millisecond}

	// The whole backup into an empty repository: the reference figure.
	full := &putCounter{Store: mem.New()}
	rf := newRepo(t, full, repo.InitOptions{DataShards: 4, ParityShards: 2})
	base := full.bytes.Load()
	backup(t, rf, data, o)
	fullBytes := full.bytes.Load() - base

	pc := &putCounter{Store: mem.New()}
	r := newRepo(t, pc, repo.InitOptions{DataShards: 4, ParityShards: 2})
	interruptedBackup(t, r, pc, data, 0.8, o)
	if latest(t, r, o.Stream) != nil {
		t.Fatal("a snapshot after the interrupted backup")
	}
	checkClean(t, r, true)
	var cps []string
	pc.List(t.Context(), repo.CheckpointsPrefix, func(oi repo.ObjectInfo) error { cps = append(cps, oi.Name); return nil })
	if len(cps) != 1 || !strings.HasPrefix(cps[0], repo.StreamCheckpointPrefix(o.Stream)) {
		t.Fatalf("checkpoints after the interruption: %q, want one of %s", cps, o.Stream)
	}

	before := pc.bytes.Load()
	var notes []string
	o2 := o
	o2.Logf = func(f string, a ...any) { notes = append(notes, f) }
	snap := backup(t, r, data, o2)
	rerun := pc.bytes.Load() - before
	ratio := float64(rerun) / float64(fullBytes)
	t.Logf("full backup uploads %d bytes; the rerun after an interruption at 80%% uploads %d (%.1f%%)", fullBytes, rerun, 100*ratio)
	if ratio > 0.30 {
		t.Errorf("the rerun uploaded %.1f%% of a full backup's bytes, want ≤ 30%%", 100*ratio)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "resuming") {
		t.Errorf("no note about resuming: %q", notes)
	}
	if got := restore(t, r, snap); !bytes.Equal(got, data) {
		t.Fatal("restore after the resumed backup differs")
	}
	cps = nil
	pc.List(t.Context(), repo.CheckpointsPrefix, func(oi repo.ObjectInfo) error { cps = append(cps, oi.Name); return nil })
	if len(cps) != 0 {
		t.Fatalf("checkpoints left after a finished backup: %q", cps)
	}
	checkClean(t, r, true)

	// The next backup has the new snapshot as its parent: nothing to resume.
	o3 := o2
	o3.Parent, notes = &snap, nil
	backup(t, r, data, o3)
	if strings.Contains(strings.Join(notes, "\n"), "resuming") {
		t.Errorf("a backup after a finished one resumed: %q", notes)
	}
}

// TestPruneKeepsCheckpointedPacks: a young checkpoint keeps its packs
// from prune; once it expires they are marked and, after the grace
// period, deleted, and the repository stays clean throughout.
func TestPruneKeepsCheckpointedPacks(t *testing.T) {
	data := ndjson(8000, 6, nil)
	o := BackupOptions{Stream: "s", Format: FormatNDJSON, PackSize: 128 << 10, CheckpointEvery: 50 * time.Millisecond}
	pc := &putCounter{Store: mem.New()}
	r := newRepo(t, pc, repo.InitOptions{DataShards: 2, ParityShards: 1})
	interruptedBackup(t, r, pc, data, 0.8, o)

	now := time.Now()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(d) } }
	res, err := Prune(t.Context(), r, PruneOptions{Now: at(0), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marked != 0 || res.ExpiredCheckpoints != 0 {
		t.Fatalf("prune beside a young checkpoint: %+v", res)
	}
	res, err = Prune(t.Context(), r, PruneOptions{Now: at(80 * time.Hour), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marked == 0 || res.ExpiredCheckpoints != 1 || res.Deleted != 0 {
		t.Fatalf("prune after the checkpoint expired: %+v", res)
	}
	res, err = Prune(t.Context(), r, PruneOptions{Now: at(82 * time.Hour), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted == 0 {
		t.Fatalf("prune after the grace period: %+v", res)
	}
	checkClean(t, r, true)
	// With the packs gone the next backup starts afresh and succeeds.
	s := backup(t, r, data, o)
	if !bytes.Equal(restore(t, r, s), data) {
		t.Fatal("restore differs")
	}
}

// TestResumeSkipsMissingPacks: a checkpoint whose packs were removed is
// not trusted: the next backup stores the blobs again and restores exact.
func TestResumeSkipsMissingPacks(t *testing.T) {
	data := ndjson(8000, 7, nil)
	o := BackupOptions{Stream: "s", Format: FormatNDJSON, PackSize: 128 << 10, CheckpointEvery: 50 * time.Millisecond}
	pc := &putCounter{Store: mem.New()}
	r := newRepo(t, pc, repo.InitOptions{DataShards: 2, ParityShards: 1})
	interruptedBackup(t, r, pc, data, 0.8, o)
	var shards []string
	pc.List(t.Context(), repo.DataPrefix, func(oi repo.ObjectInfo) error { shards = append(shards, oi.Name); return nil })
	if len(shards) == 0 {
		t.Fatal("the interrupted backup stored no pack")
	}
	for _, name := range shards[:len(shards)/2+1] {
		if err := pc.Delete(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	var notes []string
	o.Logf = func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }
	s := backup(t, r, data, o)
	if !strings.Contains(strings.Join(notes, "\n"), "skipped") {
		t.Errorf("no note about skipped index files: %q", notes)
	}
	if !bytes.Equal(restore(t, r, s), data) {
		t.Fatal("restore differs")
	}
}
