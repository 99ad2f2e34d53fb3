package multi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
	"github.com/strata-backup/strata/repo/storetest"
)

func newMulti(t *testing.T, stores ...repo.Store) *Store {
	t.Helper()
	s, err := New(stores, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openLocal(t *testing.T, dir string) *local.Store {
	t.Helper()
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceMem(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		return newMulti(t, mem.New(), mem.New(), mem.New())
	})
}

func TestConformanceMixed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		return newMulti(t, openLocal(t, t.TempDir()), mem.New(), openLocal(t, t.TempDir()))
	})
}

func TestNewRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		stores []repo.Store
		opts   Options
	}{
		"no stores":  {nil, Options{}},
		"one store":  {[]repo.Store{mem.New()}, Options{}},
		"nil store":  {[]repo.Store{mem.New(), nil}, Options{}},
		"few names":  {[]repo.Store{mem.New(), mem.New()}, Options{Names: []string{"a"}}},
		"many names": {[]repo.Store{mem.New(), mem.New()}, Options{Names: []string{"a", "b", "c"}}},
	} {
		if _, err := New(c.stores, c.opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// names lists every object of s under prefix.
func names(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := s.List(t.Context(), prefix, func(oi repo.ObjectInfo) error {
		out = append(out, oi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// indexObject returns a content-addressed name and bytes that pass
// repo.VerifyObject, as a sealed index file would.
func indexObject(seed uint64) (string, []byte) {
	b := randomBytes(seed, 200)
	return repo.IndexPrefix + repo.ID(blake3.Sum256(b)).String(), b
}

func TestPlacement(t *testing.T) {
	ctx := t.Context()
	inner := []*mem.Store{mem.New(), mem.New(), mem.New()}
	s := newMulti(t, inner[0], inner[1], inner[2])
	id, shards, err := shard.Encode(randomBytes(1, 100000), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, obj := range shards {
		if err := s.Put(ctx, repo.ShardName(repo.ID(id), i), obj); err != nil {
			t.Fatal(err)
		}
	}
	ixName, ix := indexObject(2)
	for name, data := range map[string][]byte{ixName: ix, "config": []byte("{}"), "logs/x/y": []byte("z")} {
		if err := s.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	for j, st := range inner {
		var want []string
		for i := range shards {
			if i%3 == j {
				want = append(want, repo.ShardName(repo.ID(id), i))
			}
		}
		if got := names(t, st, repo.DataPrefix); !slices.Equal(got, want) {
			t.Errorf("store %d holds shards %q, want %q", j, got, want)
		}
		if got, want := names(t, st, ""), append([]string{"config"}, slices.Concat(want, []string{ixName, "logs/x/y"})...); !slices.Equal(got, want) {
			t.Errorf("store %d holds %q, want %q", j, got, want)
		}
	}
	for i, obj := range shards {
		got, err := s.Get(ctx, repo.ShardName(repo.ID(id), i))
		if err != nil || !bytes.Equal(got, obj) {
			t.Fatalf("Get shard %d: %d bytes, %v", i, len(got), err)
		}
	}
	if got, want := len(names(t, s, "")), len(shards)+3; got != want {
		t.Fatalf("List through the multi store found %d objects, want %d", got, want)
	}
}

// TestShardMoved checks that a shard found off its home store, as after a
// change of the store list, is still read.
func TestShardMoved(t *testing.T) {
	ctx := t.Context()
	a, b := mem.New(), mem.New()
	s := newMulti(t, a, b)
	id, shards, err := shard.Encode(randomBytes(3, 5000), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	name := repo.ShardName(repo.ID(id), 0) // home: store 0
	if err := b.Put(ctx, name, shards[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, shards[0]) {
		t.Fatalf("Get of a shard on the other store: %d bytes, %v", len(got), err)
	}
	if got, err := s.GetRange(ctx, name, 10, 20); err != nil || !bytes.Equal(got, shards[0][10:30]) {
		t.Fatalf("GetRange of a shard on the other store: %x, %v", got, err)
	}
	if info, err := s.Stat(ctx, name); err != nil || info.Size != int64(len(shards[0])) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if err := s.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Delete left the moved shard: %v", err)
	}
}

func TestListMerge(t *testing.T) {
	ctx := t.Context()
	inner := []*mem.Store{mem.New(), mem.New(), mem.New()}
	s := newMulti(t, inner[0], inner[1], inner[2])
	for j, list := range [][]string{{"a", "c", "e"}, {"b", "c", "f"}, {"a", "d", "f", "g"}} {
		for _, name := range list {
			if err := inner[j].Put(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := names(t, s, ""), []string{"a", "b", "c", "d", "e", "f", "g"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func TestListFailsIfAStoreFails(t *testing.T) {
	down := faulty.New(mem.New())
	s, err := New([]repo.Store{mem.New(), down}, Options{Names: []string{"/a", "s3://b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "index/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	down.FailAfter("List", 1, nil)
	calls := 0
	err = s.List(t.Context(), "", func(repo.ObjectInfo) error { calls++; return nil })
	if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "store 1 (s3://b)") {
		t.Fatalf("List error = %v, want the injected fault naming store 1", err)
	}
	if calls != 0 {
		t.Fatalf("failed List called fn %d times", calls)
	}
}

func TestFailingStore(t *testing.T) {
	ctx := t.Context()
	down := faulty.New(mem.New())
	s, err := New([]repo.Store{mem.New(), down, mem.New()}, Options{Names: []string{"/a", "s3://b", "/c"}})
	if err != nil {
		t.Fatal(err)
	}
	name, data := indexObject(4)
	if err := s.Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	id, shards, err := shard.Encode(randomBytes(5, 3000), 2, 1)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Put", func(t *testing.T) {
		down.Reset()
		down.FailAfter("Put", 1, nil)
		other, otherData := indexObject(6)
		err := s.Put(ctx, other, otherData)
		if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "store 1 (s3://b)") {
			t.Fatalf("Put error = %v, want the injected fault naming store 1", err)
		}
		if strings.Contains(err.Error(), "store 0") || strings.Contains(err.Error(), "store 2") {
			t.Errorf("Put error %q names stores that took the object", err)
		}
		// Shard 1's home is the failing store; shards 0 and 2 do not touch it.
		if err := s.Put(ctx, repo.ShardName(repo.ID(id), 1), shards[1]); !errors.Is(err, faulty.ErrInjected) {
			t.Fatalf("Put of a shard homed on the failing store: %v", err)
		}
		for _, i := range []int{0, 2} {
			if err := s.Put(ctx, repo.ShardName(repo.ID(id), i), shards[i]); err != nil {
				t.Fatalf("Put of shard %d: %v", i, err)
			}
		}
	})

	t.Run("Get", func(t *testing.T) {
		// A store in front that fails every call: reads go to the next one.
		front := faulty.New(mem.New())
		s2 := newMulti(t, front, mem.New())
		if err := s2.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		front.FailAfter("Get", 1, nil)
		front.FailAfter("GetRange", 1, nil)
		front.FailAfter("Stat", 1, nil)
		if got, err := s2.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get with store 0 down: %d bytes, %v", len(got), err)
		}
		if got, err := s2.GetRange(ctx, name, 5, 10); err != nil || !bytes.Equal(got, data[5:15]) {
			t.Fatalf("GetRange with store 0 down: %x, %v", got, err)
		}
		if info, err := s2.Stat(ctx, name); err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Stat with store 0 down: %+v, %v", info, err)
		}
		if got := s2.TamperedObjects(); len(got) != 0 {
			t.Fatalf("TamperedObjects = %q after a store failure, want none", got)
		}
		// An object the other store lacks is not known to be missing.
		_, err := s2.Get(ctx, "index/absent")
		if errors.Is(err, repo.ErrNotFound) || !errors.Is(err, faulty.ErrInjected) {
			t.Fatalf("Get of an object with a store down: %v, want the fault and not 'not found'", err)
		}
		if !strings.Contains(err.Error(), "store 0") || !strings.Contains(err.Error(), "not found on store 1") {
			t.Errorf("error %q does not name both stores", err)
		}
		if _, err := s2.Stat(ctx, "index/absent"); errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat with a store down: %v, want not 'not found'", err)
		}
		if _, err := s2.GetRange(ctx, "index/absent", 0, 1); errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("GetRange with a store down: %v, want not 'not found'", err)
		}
	})

	t.Run("NotFoundEverywhere", func(t *testing.T) {
		_, err := s.Get(ctx, "index/absent")
		if !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Get of a missing object: %v, want not found", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		down.Reset()
		down.FailAfter("Delete", 1, nil)
		err := s.Delete(ctx, name)
		if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "store 1 (s3://b)") {
			t.Fatalf("Delete error = %v, want the injected fault naming store 1", err)
		}
		// The other stores deleted it; the failed one still lists it.
		if got := names(t, s, repo.IndexPrefix); !slices.Contains(got, name) {
			t.Fatalf("List after a partial Delete = %q, want %s still there", got, name)
		}
		down.Reset()
		if err := s.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
	})
}

func TestCorruptReplica(t *testing.T) {
	ctx := t.Context()
	inner := []*mem.Store{mem.New(), mem.New(), mem.New()}
	s := newMulti(t, inner[0], inner[1], inner[2])
	name, data := indexObject(7)
	if err := s.Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	if err := inner[0].Put(ctx, name, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := inner[2].Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get with store 0's copy damaged: %q, %v; want the good copy", got, err)
	}
	if got, want := s.TamperedObjects(), []string{name}; !slices.Equal(got, want) {
		t.Fatalf("TamperedObjects = %q, want %q", got, want)
	}

	rep, err := s.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Stores: []StoreReport{
		{Name: "store 0", Replaced: []string{name}},
		{Name: "store 1"},
		{Name: "store 2", Restored: []string{name}},
	}}
	if fmt.Sprint(rep) != fmt.Sprint(want) || rep.Copied() != 2 {
		t.Fatalf("Resync report = %+v, want %+v", rep, want)
	}
	for j, st := range inner {
		if got, err := st.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("store %d after Resync: %q, %v", j, got, err)
		}
	}
	if rep, err := s.Resync(ctx); err != nil || rep.Copied() != 0 {
		t.Fatalf("second Resync copied %d objects, error %v; want nothing to do", rep.Copied(), err)
	}
}

// TestEveryCopyDamaged checks that with no good copy Get serves a damaged
// one, as a single store would, and Resync leaves it for check.
func TestEveryCopyDamaged(t *testing.T) {
	ctx := t.Context()
	a, b := mem.New(), mem.New()
	s := newMulti(t, a, b)
	name, _ := indexObject(8)
	if err := s.Put(ctx, name, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, name); err != nil || string(got) != "junk" {
		t.Fatalf("Get = %q, %v; want the damaged copy", got, err)
	}
	rep, err := s.Resync(ctx)
	if err != nil || rep.Copied() != 0 || !slices.Equal(rep.Unrecoverable, []string{name}) {
		t.Fatalf("Resync = %+v, %v; want %s unrecoverable and nothing copied", rep, err, name)
	}
	// A damaged shard with a store down is an error, not the damaged copy.
	down := faulty.New(b)
	s2 := newMulti(t, a, down)
	down.FailAfter("Get", 1, nil)
	if _, err := s2.Get(ctx, name); !errors.Is(err, faulty.ErrInjected) || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("Get = %v, want the fault and the damage", err)
	}
}

func TestResyncFailsIfAStoreCannotList(t *testing.T) {
	down := faulty.New(mem.New())
	s := newMulti(t, mem.New(), down)
	name, data := indexObject(9)
	if err := s.Put(t.Context(), name, data); err != nil {
		t.Fatal(err)
	}
	down.FailAfter("List", 1, nil)
	if _, err := s.Resync(t.Context()); !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "store 1") {
		t.Fatalf("Resync error = %v, want the fault naming store 1", err)
	}
}

// lockStore is a mem store with retention, as S3 Object Lock gives.
type lockStore struct {
	*mem.Store
	mu       sync.Mutex
	until    map[string]time.Time
	tampered []string
}

func newLockStore() *lockStore { return &lockStore{Store: mem.New(), until: map[string]time.Time{}} }

func (l *lockStore) RetainUntil(ctx context.Context, name string, until time.Time) error {
	if _, err := l.Stat(ctx, name); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.until[name]) {
		l.until[name] = until
	}
	return nil
}

func (l *lockStore) Delete(ctx context.Context, name string) error {
	l.mu.Lock()
	until := l.until[name]
	l.mu.Unlock()
	if time.Now().Before(until) {
		return fmt.Errorf("lock store: delete %s: %w until %s", name, repo.ErrRetained, until)
	}
	return l.Store.Delete(ctx, name)
}

func (l *lockStore) TamperedObjects() []string { return l.tampered }

func TestRetention(t *testing.T) {
	ctx := t.Context()
	plain, locked := mem.New(), newLockStore()
	s := newMulti(t, plain, locked, mem.New())
	name, data := indexObject(10)
	if err := s.Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if err := s.RetainUntil(ctx, name, until); err != nil {
		t.Fatal(err)
	}
	err := s.Delete(ctx, name)
	if !errors.Is(err, repo.ErrRetained) || !strings.Contains(err.Error(), "store 1") {
		t.Fatalf("Delete of a retained object: %v, want ErrRetained naming store 1", err)
	}
	if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after a refused Delete: %v", err)
	}
	if _, err := plain.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("store without retention kept the object: %v", err)
	}

	// A shard homed on a store without retention: no retaining store holds it.
	id, shards, err := shard.Encode(randomBytes(11, 1000), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	sh := repo.ShardName(repo.ID(id), 0)
	if err := s.Put(ctx, sh, shards[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.RetainUntil(ctx, sh, until); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("RetainUntil of a shard on a store without retention: %v, want not found", err)
	}
	sh1 := repo.ShardName(repo.ID(id), 1) // homed on the locked store
	if err := s.Put(ctx, sh1, shards[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.RetainUntil(ctx, sh1, until); err != nil {
		t.Fatalf("RetainUntil of a shard on the locked store: %v", err)
	}

	none := newMulti(t, mem.New(), mem.New())
	if err := none.Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	if err := none.RetainUntil(ctx, name, until); !errors.Is(err, ErrNoRetainer) {
		t.Fatalf("RetainUntil without retaining stores: %v, want ErrNoRetainer", err)
	}

	locked.tampered = []string{"snapshots/b", "index/a"}
	if got, want := s.TamperedObjects(), []string{"index/a", "snapshots/b"}; !slices.Equal(got, want) {
		t.Fatalf("TamperedObjects = %q, want the inner store's %q", got, want)
	}
}

func TestGetRangeOutside(t *testing.T) {
	s := newMulti(t, mem.New(), mem.New())
	if err := s.Put(t.Context(), "index/x", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetRange(t.Context(), "index/x", 5, 10)
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("GetRange outside the object: %v", err)
	}
}

func TestSurvives(t *testing.T) {
	tests := []struct {
		k, m, n  int
		perStore int
		survives bool
	}{
		{4, 2, 1, 6, false},
		{4, 2, 2, 3, false},
		{4, 2, 3, 2, true},
		{4, 2, 6, 1, true},
		{4, 2, 10, 1, true},
		{4, 4, 2, 4, true},
		{8, 2, 4, 3, false},
		{8, 2, 5, 2, true},
		{10, 4, 3, 5, false},
		{10, 4, 4, 4, true},
		{4, 0, 3, 2, false},
		{4, 0, 10, 1, false},
		{1, 1, 2, 1, true},
		{2, 1, 3, 1, true},
	}
	for _, tt := range tests {
		if got := ShardsPerStore(tt.k, tt.m, tt.n); got != tt.perStore {
			t.Errorf("ShardsPerStore(%d, %d, %d) = %d, want %d", tt.k, tt.m, tt.n, got, tt.perStore)
		}
		if got := Survives(tt.k, tt.m, tt.n); got != tt.survives {
			t.Errorf("Survives(%d, %d, %d) = %v, want %v", tt.k, tt.m, tt.n, got, tt.survives)
		}
		err := CheckPlacement(tt.k, tt.m, tt.n)
		if (err == nil) != tt.survives || (err != nil && !errors.Is(err, ErrUnsafePlacement)) {
			t.Errorf("CheckPlacement(%d, %d, %d) = %v", tt.k, tt.m, tt.n, err)
		}
		if err == nil {
			continue
		}
		// Every fix the message suggests must survive.
		var stores, parity int
		if i := strings.Index(err.Error(), "use at least"); i >= 0 {
			if _, e := fmt.Sscanf(err.Error()[i:], "use at least %d stores", &stores); e != nil {
				t.Fatal(e)
			}
			if !Survives(tt.k, tt.m, stores) || Survives(tt.k, tt.m, stores-1) {
				t.Errorf("%d+%d: suggested %d stores is not the least that survives", tt.k, tt.m, stores)
			}
		}
		if i := strings.Index(err.Error(), " parity shards over"); i >= 0 {
			j := strings.LastIndexByte(err.Error()[:i], ' ')
			if _, e := fmt.Sscan(err.Error()[j+1:i], &parity); e != nil || !Survives(tt.k, parity, tt.n) || Survives(tt.k, parity-1, tt.n) {
				t.Errorf("%d+%d over %d: suggested %d parity is not the least that survives (%v)", tt.k, tt.m, tt.n, parity, e)
			}
		}
	}
	const want = "unsafe shard placement: 4+2 shards over 2 stores: losing one store loses 3 shards of each pack but parity covers 2; use at least 3 stores, or 4 parity shards over 2 stores"
	if got := CheckPlacement(4, 2, 2).Error(); got != want {
		t.Errorf("CheckPlacement(4, 2, 2) = %q, want %q", got, want)
	}
}

// TestResyncGoesOnPastFailedWrites checks that a store refusing writes is
// named in the error while the other stores are still restored.
func TestResyncGoesOnPastFailedWrites(t *testing.T) {
	ctx := t.Context()
	full := faulty.New(mem.New())
	empty := mem.New()
	src := mem.New()
	s := newMulti(t, src, full, empty)
	var want []string
	for i := range 3 {
		name, data := indexObject(uint64(20 + i))
		if err := src.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	full.FullDisk(0)
	rep, err := s.Resync(ctx)
	if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "store 1") {
		t.Fatalf("Resync error = %v, want the full disk of store 1", err)
	}
	if got := rep.Stores[2].Restored; !slices.Equal(got, want) {
		t.Fatalf("Resync restored %q to store 2, want %q", got, want)
	}
	if got := rep.Stores[1].Restored; len(got) != 0 {
		t.Fatalf("Resync reports %q restored to the full store", got)
	}
}
