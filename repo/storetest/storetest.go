package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// Run runs the conformance suite as subtests of t. newStore must return a
// new, empty store for each subtest; it may register cleanups on the t it
// is given.
func Run(t *testing.T, newStore func(t *testing.T) repo.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s repo.Store)
	}{
		{"PutGet", testPutGet},
		{"OverwriteIdentical", testOverwriteIdentical},
		{"Missing", testMissing},
		{"GetRange", testGetRange},
		{"Stat", testStat},
		{"ListPrefix", testListPrefix},
		{"ListStops", testListStops},
		{"ListCallbackUsesStore", testListCallbackUsesStore},
		{"Delete", testDelete},
		{"Ownership", testOwnership},
		{"Concurrent", testConcurrent},
		{"ConcurrentSameName", testConcurrentSameName},
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"CancelledContext", testCancelledContext},
		{"CreateExclusive", testCreateExclusive},
		{"PutBatch", testPutBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s repo.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func mustGet(t *testing.T, s repo.Store, name string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.16x…, want %d bytes %.16x…", name, len(got), got, len(want), want)
	}
}

// listAll returns every ObjectInfo List reports for prefix, in call order.
func listAll(t *testing.T, s repo.Store, prefix string) []repo.ObjectInfo {
	t.Helper()
	var infos []repo.ObjectInfo
	err := s.List(t.Context(), prefix, func(info repo.ObjectInfo) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

func listNames(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var names []string
	for _, info := range listAll(t, s, prefix) {
		names = append(names, info.Name)
	}
	return names
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func testPutGet(t *testing.T, s repo.Store) {
	objects := map[string][]byte{
		"config":         []byte("config bytes"),
		"keys/0123abcd":  []byte("key file"),
		"data/ab/ab12.0": pattern(1, 1000),
		"data/ab/ab12.1": pattern(2, 1000),
	}
	for name, data := range objects {
		put(t, s, name, data)
	}
	for name, data := range objects {
		mustGet(t, s, name, data)
	}
}

func testOverwriteIdentical(t *testing.T, s repo.Store) {
	data := pattern(3, 300)
	put(t, s, "index/aa", data)
	put(t, s, "index/aa", bytes.Clone(data))
	mustGet(t, s, "index/aa", data)
	if got, want := listNames(t, s, ""), []string{"index/aa"}; !slices.Equal(got, want) {
		t.Fatalf("List after overwrite = %q, want %q", got, want)
	}
}

func testMissing(t *testing.T, s repo.Store) {
	ctx := t.Context()
	put(t, s, "dir/x", []byte("x"))
	// "dir" is only a prefix, and "dir/x/y" lies below an object: neither is one.
	for _, name := range []string{"nope", "nope/deeper/x", "dir", "dir/y", "dir/x/y"} {
		if _, err := s.Get(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want one wrapping repo.ErrNotFound", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Stat(%q) error = %v, want one wrapping repo.ErrNotFound", name, err)
		}
		if _, err := s.GetRange(ctx, name, 0, 1); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("GetRange(%q, 0, 1) error = %v, want one wrapping repo.ErrNotFound", name, err)
		}
		if _, err := s.GetRange(ctx, name, 0, 0); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("GetRange(%q, 0, 0) error = %v, want one wrapping repo.ErrNotFound", name, err)
		}
	}
}

func testGetRange(t *testing.T, s repo.Store) {
	const size = 100
	data := pattern(4, size)
	put(t, s, "data/ab/r.0", data)
	good := []struct{ offset, length int64 }{
		{0, size},
		{10, 20},
		{90, 10}, // ends exactly at the end
		{99, 1},
		{0, 0},
		{50, 0},
		{size, 0}, // empty range at the end is still inside
	}
	for _, r := range good {
		got, err := s.GetRange(t.Context(), "data/ab/r.0", r.offset, r.length)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", r.offset, r.length, err)
			continue
		}
		if want := data[r.offset : r.offset+r.length]; !bytes.Equal(got, want) {
			t.Errorf("GetRange(%d, %d) = %x, want %x", r.offset, r.length, got, want)
		}
	}
	outside := []struct{ offset, length int64 }{
		{95, 10}, // crosses the end: a short read must not pass as success
		{size, 1},
		{size + 1, 0},
		{200, 5},
		{1, math.MaxInt64}, // offset+length overflows int64
		{math.MaxInt64, 1},
	}
	for _, r := range outside {
		got, err := s.GetRange(t.Context(), "data/ab/r.0", r.offset, r.length)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("GetRange(%d, %d) = %d bytes, error %v; want an error wrapping io.ErrUnexpectedEOF",
				r.offset, r.length, len(got), err)
		}
	}
	invalid := []struct{ offset, length int64 }{
		{-1, 5},
		{-1, 0},
		{math.MinInt64, 1},
		{0, -1},
	}
	for _, r := range invalid {
		if got, err := s.GetRange(t.Context(), "data/ab/r.0", r.offset, r.length); err == nil {
			t.Errorf("GetRange(%d, %d) = %d bytes, nil error; want an error", r.offset, r.length, len(got))
		}
	}
}

func testStat(t *testing.T, s repo.Store) {
	sizes := map[string]int{"a": 0, "b/c": 1, "b/d": 4096, "e/f/g": 70000}
	for name, n := range sizes {
		put(t, s, name, pattern(5, n))
	}
	for name, n := range sizes {
		info, err := s.Stat(t.Context(), name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", name, err)
		}
		if got, want := info, (repo.ObjectInfo{Name: name, Size: int64(n)}); got != want {
			t.Errorf("Stat(%q) = %+v, want %+v", name, got, want)
		}
	}
}

// listNamesFixture holds names whose byte order differs from a per-directory
// walk in file-name order: '-' < '.' < '/' < '0', so "a/b.x" sorts before
// "a/b/c", and "x.10" before "x.2".
var listNamesFixture = []string{
	"a-", "a.b", "a/b.x", "a/b/c", "a/bc", "a0", "ab", "b",
	"config", "keys/k1",
	"data/a.z", "data/ab/x.1", "data/ab/x.10", "data/ab/x.2", "data/ac/y.0", "data/b/q",
}

func testListPrefix(t *testing.T, s repo.Store) {
	sizes := make(map[string]int64)
	// Store in reverse so no backend passes by remembering insertion order.
	for i, name := range slices.Backward(listNamesFixture) {
		put(t, s, name, pattern(uint64(i), i+1))
		sizes[name] = int64(i + 1)
	}
	want := func(prefix string) []string {
		var names []string
		for _, name := range listNamesFixture {
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
		slices.Sort(names) // Go orders strings bytewise
		return names
	}
	// Spelled out once, so the suite does not rely only on slices.Sort.
	if got, want := want("a"), []string{"a-", "a.b", "a/b.x", "a/b/c", "a/bc", "a0", "ab"}; !slices.Equal(got, want) {
		t.Fatalf("fixture order = %q, want %q", got, want)
	}
	prefixes := []string{
		"", "a", "a/", "a/b", "a/b/", "data/", "data/a", "data/ab/", "data/ab/x.1",
		"config", "keys/k1", "b",
		"zzz", "config/", "data/zz/", "nope/", "../", "/", "data//",
	}
	for _, prefix := range prefixes {
		infos := listAll(t, s, prefix)
		var got []string
		for _, info := range infos {
			got = append(got, info.Name)
			if info.Size != sizes[info.Name] {
				t.Errorf("List(%q) reports %q with size %d, want %d", prefix, info.Name, info.Size, sizes[info.Name])
			}
		}
		if want := want(prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func testListStops(t *testing.T, s repo.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("snapshots/%02d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), "snapshots/", func(repo.ObjectInfo) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List error = %v, want the callback's error", err)
	}
	if calls != 2 {
		t.Fatalf("callback called %d times after returning an error on call 2", calls)
	}
}

// testListCallbackUsesStore checks that List holds nothing that blocks the
// store while fn runs: prune deletes objects as it lists them.
func testListCallbackUsesStore(t *testing.T, s repo.Store) {
	names := []string{"data/aa/1", "data/aa/2", "data/bb/3", "data/cc/4"}
	for _, name := range names {
		put(t, s, name, []byte(name))
	}
	var got []string
	err := s.List(t.Context(), "data/", func(info repo.ObjectInfo) error {
		got = append(got, info.Name)
		if _, err := s.Stat(t.Context(), info.Name); err != nil {
			return err
		}
		return s.Delete(t.Context(), info.Name)
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("List = %q, want %q", got, names)
	}
	if left := listNames(t, s, ""); len(left) != 0 {
		t.Fatalf("objects left after deleting each one while listing: %q", left)
	}
}

func testDelete(t *testing.T, s repo.Store) {
	ctx := t.Context()
	put(t, s, "index/aa", []byte("one"))
	put(t, s, "index/bb", []byte("two"))
	if err := s.Delete(ctx, "index/aa"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "index/aa"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Get after Delete: error = %v, want one wrapping repo.ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "index/aa"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat after Delete: error = %v, want one wrapping repo.ErrNotFound", err)
	}
	if got, want := listNames(t, s, ""), []string{"index/bb"}; !slices.Equal(got, want) {
		t.Fatalf("List after Delete = %q, want %q", got, want)
	}
	for _, name := range []string{"index/aa", "index/never", "nope/deeper/x"} {
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("Delete(%q) of a missing object: %v, want nil", name, err)
		}
	}
	mustGet(t, s, "index/bb", []byte("two"))
}

func testOwnership(t *testing.T, s repo.Store) {
	ctx := t.Context()
	data := []byte("original bytes")
	put(t, s, "snapshots/a", data)
	data[0] = 'X' // Put must not have kept the caller's slice
	mustGet(t, s, "snapshots/a", []byte("original bytes"))

	got, err := s.Get(ctx, "snapshots/a")
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'Y'
	mustGet(t, s, "snapshots/a", []byte("original bytes"))
	// Putting a mutated Get result back is how callers rewrite objects.
	put(t, s, "snapshots/a", got)
	mustGet(t, s, "snapshots/a", []byte("Yriginal bytes"))

	r, err := s.GetRange(ctx, "snapshots/a", 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	r[0] = 'Z'
	mustGet(t, s, "snapshots/a", []byte("Yriginal bytes"))
}

func testConcurrent(t *testing.T, s repo.Store) {
	const workers, perWorker = 8, 40
	ctx := t.Context()
	name := func(w, i int) string { return fmt.Sprintf("data/%02x/%d.%d", (w*perWorker+i)%16, w, i) }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := name(w, i)
				data := pattern(uint64(w*perWorker+i), 64+i)
				if err := s.Put(ctx, n, data); err != nil {
					t.Errorf("Put(%q): %v", n, err)
					return
				}
				got, err := s.Get(ctx, n)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get(%q) right after Put: %d bytes, error %v", n, len(got), err)
					return
				}
				// Read what another worker may be writing: absent or whole.
				other := (w + 1) % workers
				if got, err := s.Get(ctx, name(other, i)); err == nil {
					if want := pattern(uint64(other*perWorker+i), 64+i); !bytes.Equal(got, want) {
						t.Errorf("Get(%q) during writes returned %d bytes, not the object", name(other, i), len(got))
					}
				} else if !errors.Is(err, repo.ErrNotFound) {
					t.Errorf("Get(%q) during writes: %v", name(other, i), err)
				}
				if err := s.List(ctx, "data/", func(repo.ObjectInfo) error { return nil }); err != nil {
					t.Errorf("List during writes: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got, want := len(listNames(t, s, "data/")), workers*perWorker; got != want {
		t.Fatalf("List after concurrent Puts found %d objects, want %d", got, want)
	}
}

// testConcurrentSameName models retried or duplicated uploads of one
// content-addressed object.
func testConcurrentSameName(t *testing.T, s repo.Store) {
	data := pattern(6, 100000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.Put(t.Context(), "data/ab/same.0", data); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	mustGet(t, s, "data/ab/same.0", data)
	if got, want := listNames(t, s, ""), []string{"data/ab/same.0"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func testEmpty(t *testing.T, s repo.Store) {
	put(t, s, "empty", nil)
	put(t, s, "empty2", []byte{})
	for _, name := range []string{"empty", "empty2"} {
		mustGet(t, s, name, nil)
		info, err := s.Stat(t.Context(), name)
		if err != nil || info.Size != 0 {
			t.Fatalf("Stat(%q) = %+v, %v; want size 0", name, info, err)
		}
		if got, err := s.GetRange(t.Context(), name, 0, 0); err != nil || len(got) != 0 {
			t.Fatalf("GetRange(%q, 0, 0) = %d bytes, %v", name, len(got), err)
		}
	}
	if got, want := listAll(t, s, "empty"), []repo.ObjectInfo{{Name: "empty"}, {Name: "empty2"}}; !slices.Equal(got, want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
}

func testLarge(t *testing.T, s repo.Store) {
	const size = 5 << 20
	data := pattern(7, size)
	put(t, s, "data/ff/large.0", data)
	mustGet(t, s, "data/ff/large.0", data)
	for _, r := range []struct{ offset, length int64 }{{size / 2, 1 << 20}, {size - 4096, 4096}} {
		got, err := s.GetRange(t.Context(), "data/ff/large.0", r.offset, r.length)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r.offset, r.length, err)
		}
		if !bytes.Equal(got, data[r.offset:r.offset+r.length]) {
			t.Fatalf("GetRange(%d, %d) returned different bytes", r.offset, r.length)
		}
	}
	if info, err := s.Stat(t.Context(), "data/ff/large.0"); err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
}

// testCancelledContext allows a store to ignore a done context, but not to
// panic or to leave a partial object behind.
func testCancelledContext(t *testing.T, s repo.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	data := pattern(8, 1<<20)
	err := s.Put(ctx, "data/cc/cancelled.0", data)
	_, _ = s.Get(ctx, "data/cc/cancelled.0")
	_, _ = s.GetRange(ctx, "data/cc/cancelled.0", 0, 1)
	_, _ = s.Stat(ctx, "data/cc/cancelled.0")
	_ = s.List(ctx, "", func(repo.ObjectInfo) error { return nil })
	if err == nil {
		mustGet(t, s, "data/cc/cancelled.0", data)
		return
	}
	got, gerr := s.Get(t.Context(), "data/cc/cancelled.0")
	if gerr == nil && !bytes.Equal(got, data) {
		t.Fatalf("Put with a cancelled context failed (%v) but left %d bytes, not the whole object", err, len(got))
	}
	if gerr != nil && !errors.Is(gerr, repo.ErrNotFound) {
		t.Fatalf("Get after failed Put: %v", gerr)
	}
}

// testCreateExclusive checks repo.Creator where the store has one (found
// through decorators): a free name is created, a taken one refused with
// ErrObjectExists and left as it was, and of concurrent creates of one
// name exactly one wins, its bytes the stored ones.
func testCreateExclusive(t *testing.T, s repo.Store) {
	c, ok := repo.StoreAs[repo.Creator](s)
	if !ok {
		t.Skip("the store has no repo.Creator")
	}
	ctx := t.Context()
	name := "leases/conf/@00000000000000000001"
	if err := c.Create(ctx, name, []byte("first")); err != nil {
		t.Fatalf("Create of a free name: %v", err)
	}
	if err := c.Create(ctx, name, []byte("second")); !errors.Is(err, repo.ErrObjectExists) {
		t.Fatalf("Create of a taken name: %v, want ErrObjectExists", err)
	}
	mustGet(t, s, name, []byte("first"))
	// CreateObject counts a replay of identical bytes as done.
	if err := repo.CreateObject(ctx, s, name, []byte("first")); err != nil {
		t.Fatalf("CreateObject replaying identical bytes: %v", err)
	}
	if err := repo.CreateObject(ctx, s, name, []byte("other")); !errors.Is(err, repo.ErrObjectExists) {
		t.Fatalf("CreateObject with other bytes: %v, want ErrObjectExists", err)
	}

	const n = 8
	race := "leases/conf/@00000000000000000002"
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.Create(ctx, race, []byte(fmt.Sprintf("contender %d", i))) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("contenders %d and %d both created %s", winner, i, race)
		case err == nil:
			winner = i
		case !errors.Is(err, repo.ErrObjectExists):
			t.Fatalf("contender %d: %v, want nil or ErrObjectExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no contender created %s", race)
	}
	mustGet(t, s, race, []byte(fmt.Sprintf("contender %d", winner)))
	if got := listNames(t, s, "leases/conf/"); len(got) != 2 {
		t.Fatalf("listed %v after the creates, want the two objects and no temporary files", got)
	}
}

// testPutBatch: a batch (a pack's shards, objects in new and existing
// directories, one replacing an object) is stored whole, listed without
// temporary files, and not retained; a batch whose names and objects do
// not pair up is refused. Stores without repo.BatchPutter go through
// repo.PutBatch's one Put each.
func testPutBatch(t *testing.T, s repo.Store) {
	ctx := t.Context()
	put(t, s, "index/cc", []byte("old"))
	names := []string{"data/ab/ab01.0", "data/ab/ab01.1", "data/ab/ab01.2", "data/cd/cd02.0", "index/cc"}
	data := make([][]byte, len(names))
	for i := range data {
		data[i] = pattern(uint64(i+1), 1000*i+1)
	}
	if err := repo.PutBatch(ctx, s, names, data); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	want := make([][]byte, len(data))
	for i, d := range data {
		want[i] = bytes.Clone(d)
		clear(d) // the store must not have kept the caller's slices
	}
	for i, name := range names {
		mustGet(t, s, name, want[i])
	}
	if got, exp := listNames(t, s, ""), []string{"data/ab/ab01.0", "data/ab/ab01.1", "data/ab/ab01.2", "data/cd/cd02.0", "index/cc"}; !slices.Equal(got, exp) {
		t.Fatalf("List after PutBatch: %q, want %q", got, exp)
	}
	if err := repo.PutBatch(ctx, s, names[:2], data[:1]); err == nil {
		t.Fatal("PutBatch of 2 names and 1 object succeeded")
	}
}
