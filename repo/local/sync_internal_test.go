package local

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countSyncs replaces the shared directory sync with one that counts the
// syncs of each directory (relative to s's directory) and takes a little
// while, as a real fsync does.
func countSyncs(t *testing.T, s *Store, delay time.Duration) func() map[string]int {
	t.Helper()
	var mu sync.Mutex
	n := map[string]int{}
	old := syncDirFn
	syncDirFn = func(dir string) error {
		rel, _ := filepath.Rel(s.dir, dir)
		mu.Lock()
		n[filepath.ToSlash(rel)]++
		mu.Unlock()
		time.Sleep(delay)
		return old(dir)
	}
	t.Cleanup(func() { syncDirFn = old })
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range n {
			out[k] = v
		}
		return out
	}
}

// TestPutBatchSyncsDirectoryOnce: the k+m shards of a pack stored as one
// batch cost one sync of their directory; stored one Put after another,
// one each.
func TestPutBatchSyncsDirectoryOnce(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "data/ab/warm", []byte("x")); err != nil { // makes the directory
		t.Fatal(err)
	}
	syncs := countSyncs(t, s, 0)
	var names []string
	var data [][]byte
	for i := range 10 {
		names = append(names, fmt.Sprintf("data/ab/ab12.%d", i))
		data = append(data, bytes.Repeat([]byte{byte(i)}, 1000))
	}
	if err := s.PutBatch(ctx, names, data); err != nil {
		t.Fatal(err)
	}
	if got := syncs()["data/ab"]; got != 1 {
		t.Fatalf("a batch of 10 shards synced their directory %d times, want 1", got)
	}
	for i, name := range names {
		if err := s.Put(ctx, name, data[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncs()["data/ab"]; got != 11 {
		t.Fatalf("10 Puts one after another synced the directory %d times in all, want 1+10", got)
	}
}

// TestPutBatchFailureStoresNothing: when one object of a batch cannot be
// written, no object of the batch is stored and no temporary file is left.
func TestPutBatchFailureStoresNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "blocker", []byte("a file where a directory would go")); err != nil {
		t.Fatal(err)
	}
	names := []string{"data/ab/ab12.0", "data/ab/ab12.1", "blocker/x", "data/cd/cd34.0"}
	data := [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3")}
	if err := s.PutBatch(ctx, names, data); err == nil {
		t.Fatal("a batch with an unwritable object succeeded")
	}
	for _, name := range []string{"data/ab/ab12.0", "data/ab/ab12.1", "data/cd/cd34.0"} {
		if _, err := s.Stat(ctx, name); err == nil {
			t.Errorf("%s stored by a failed batch", name)
		}
	}
	err = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), tmpPrefix) {
			t.Errorf("temporary file %s left behind", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharedSyncCoversEveryCaller: of many concurrent callers of
// syncDirShared, each returns only after a sync that started after it was
// called has ended, and they share syncs (fewer syncs than callers).
func TestSharedSyncCoversEveryCaller(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64 // orders calls, sync starts and ends, and returns
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var syncs []span
	old := syncDirFn
	syncDirFn = func(string) error {
		sp := span{start: clock.Add(1)}
		time.Sleep(time.Millisecond)
		sp.end = clock.Add(1)
		mu.Lock()
		syncs = append(syncs, sp)
		mu.Unlock()
		return nil
	}
	t.Cleanup(func() { syncDirFn = old })
	const callers = 60
	calls := make([]span, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			time.Sleep(time.Duration(i%7) * 300 * time.Microsecond)
			calls[i].start = clock.Add(1)
			if err := s.syncDirShared(s.dir); err != nil {
				t.Error(err)
			}
			calls[i].end = clock.Add(1)
		})
	}
	wg.Wait()
	for i, c := range calls {
		covered := false
		for _, sp := range syncs {
			if sp.start > c.start && sp.end < c.end {
				covered = true
			}
		}
		if !covered {
			t.Fatalf("caller %d (%d–%d) returned without a sync that started after its call: %v", i, c.start, c.end, syncs)
		}
	}
	if len(syncs) >= callers {
		t.Fatalf("%d syncs for %d concurrent callers: none shared", len(syncs), callers)
	}
	t.Logf("%d callers, %d syncs", callers, len(syncs))
}
