package faulty_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/storetest"
)

func TestStoreWithoutRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store { return faulty.New(mem.New()) })
}

// TestStoreWithDistantRules checks that rules wait for their call number.
func TestStoreWithDistantRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		s := faulty.New(mem.New())
		for _, m := range []string{"Put", "Get", "GetRange", "Stat", "List", "Delete"} {
			s.FailAfter(m, 1<<30, nil)
		}
		s.CutOnce("Get", 1<<30)
		s.FullDisk(1 << 40)
		return s
	})
}

func put(t *testing.T, s repo.Store, name, data string) {
	t.Helper()
	if err := s.Put(t.Context(), name, []byte(data)); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func wantNotFound(t *testing.T, s repo.Store, name string) {
	t.Helper()
	if _, err := s.Get(t.Context(), name); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Get(%q) error = %v, want not found", name, err)
	}
}

// TestFailOnceEachMethod fails the first call of each method and checks
// that it did not reach the inner store.
func TestFailOnceEachMethod(t *testing.T) {
	calls := []struct {
		method string
		call   func(t *testing.T, s repo.Store) error
		check  func(t *testing.T, inner *mem.Store)
	}{
		{"Put", func(t *testing.T, s repo.Store) error { return s.Put(t.Context(), "new", []byte("n")) },
			func(t *testing.T, inner *mem.Store) { wantNotFound(t, inner, "new") }},
		{"Get", func(t *testing.T, s repo.Store) error { _, err := s.Get(t.Context(), "old"); return err }, nil},
		{"GetRange", func(t *testing.T, s repo.Store) error { _, err := s.GetRange(t.Context(), "old", 0, 1); return err }, nil},
		{"Stat", func(t *testing.T, s repo.Store) error { _, err := s.Stat(t.Context(), "old"); return err }, nil},
		{"List", func(t *testing.T, s repo.Store) error {
			listed := 0
			err := s.List(t.Context(), "old", func(repo.ObjectInfo) error {
				listed++
				return nil
			})
			if err != nil && listed != 0 {
				t.Errorf("failed List called fn %d times", listed)
			}
			return err
		}, nil},
		{"Delete", func(t *testing.T, s repo.Store) error { return s.Delete(t.Context(), "old") },
			func(t *testing.T, inner *mem.Store) {
				if _, err := inner.Get(t.Context(), "old"); err != nil {
					t.Fatalf("failed Delete removed the object: %v", err)
				}
			}},
	}
	for _, c := range calls {
		t.Run(c.method, func(t *testing.T) {
			inner := mem.New()
			put(t, inner, "old", "old")
			s := faulty.New(inner)
			s.FailOnce(c.method, 1, nil)
			err := c.call(t, s)
			if !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("error = %v, want one wrapping faulty.ErrInjected", err)
			}
			if prefix := "faulty store: " + c.method + " "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if c.check != nil {
				c.check(t, inner)
			}
			if err := c.call(t, s); err != nil {
				t.Fatalf("second call: %v, want success", err)
			}
			if got := s.Calls(c.method); got != 2 {
				t.Fatalf("Calls(%q) = %d, want 2", c.method, got)
			}
		})
	}
}

func TestFailAfter(t *testing.T) {
	s := faulty.New(mem.New())
	put(t, s, "setup/1", "x")
	put(t, s, "setup/2", "x")
	errBroken := errors.New("backend broken")
	s.FailAfter("Put", 2, errBroken) // counts from here: the setup Puts do not count
	put(t, s, "a", "a")
	for _, name := range []string{"b", "c", "d"} {
		err := s.Put(t.Context(), name, []byte(name))
		if !errors.Is(err, errBroken) {
			t.Fatalf("Put(%q) error = %v, want one wrapping the rule's error", name, err)
		}
		if got, want := err.Error(), "faulty store: Put "+name+": backend broken"; got != want {
			t.Fatalf("error = %q, want %q", got, want)
		}
		wantNotFound(t, s, name)
	}
	if _, err := s.Get(t.Context(), "a"); err != nil {
		t.Fatalf("Get is not under the Put rule: %v", err)
	}
	if got, want := s.Calls("Put"), 6; got != want {
		t.Fatalf("Calls(Put) = %d, want %d", got, want)
	}
	s.Reset()
	if got := s.Calls("Put"); got != 0 {
		t.Fatalf("Calls(Put) after Reset = %d, want 0", got)
	}
	put(t, s, "e", "e")
}

func TestFailOnceLater(t *testing.T) {
	s := faulty.New(mem.New())
	put(t, s, "a", "a")
	s.FailOnce("Get", 2, nil)
	for i, want := range []bool{true, false, true, true} {
		_, err := s.Get(t.Context(), "a")
		if ok := err == nil; ok != want {
			t.Fatalf("Get %d: error %v, want success %v", i+1, err, want)
		}
	}
}

func TestFullDisk(t *testing.T) {
	inner := mem.New()
	s := faulty.New(inner)
	put(t, s, "before", strings.Repeat("x", 1000)) // not counted: written before FullDisk
	s.FullDisk(100)
	put(t, s, "a", strings.Repeat("a", 60))
	put(t, s, "b", strings.Repeat("b", 40)) // exactly full
	put(t, s, "empty", "")
	err := s.Put(t.Context(), "c", []byte("c"))
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("Put beyond the disk: error = %v, want one wrapping syscall.ENOSPC and faulty.ErrInjected", err)
	}
	if !strings.HasPrefix(err.Error(), "faulty store: Put c: ") {
		t.Errorf("error %q lacks the store's prefix", err)
	}
	wantNotFound(t, inner, "c")

	// A Put the inner store refuses gives its space back.
	s.FullDisk(100)
	if err := s.Put(t.Context(), "", make([]byte, 60)); err == nil {
		t.Fatal("inner store accepted an empty name")
	}
	put(t, s, "d", strings.Repeat("d", 100))

	s.Reset()
	put(t, s, "big", strings.Repeat("x", 10000))
}

func TestPutThenFail(t *testing.T) {
	inner := mem.New()
	s := faulty.New(inner)
	s.PutThenFail(2)
	put(t, s, "a", "a")
	err := s.Put(t.Context(), "b", []byte("bytes"))
	if !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("Put error = %v, want one wrapping faulty.ErrInjected", err)
	}
	got, err := inner.Get(t.Context(), "b")
	if err != nil || !bytes.Equal(got, []byte("bytes")) {
		t.Fatalf("object of the cut Put: %q, %v; want it stored", got, err)
	}
	put(t, s, "c", "c")
}

func TestCutReads(t *testing.T) {
	s := faulty.New(mem.New())
	put(t, s, "a", "abcdef")
	s.CutOnce("Get", 1)
	s.CutAfter("GetRange", 2)
	if _, err := s.Get(t.Context(), "a"); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("cut Get: error = %v, want one wrapping io.ErrUnexpectedEOF and faulty.ErrInjected", err)
	}
	if got, err := s.Get(t.Context(), "a"); err != nil || string(got) != "abcdef" {
		t.Fatalf("Get after the cut one: %q, %v", got, err)
	}
	if got, err := s.GetRange(t.Context(), "a", 1, 2); err != nil || string(got) != "bc" {
		t.Fatalf("GetRange before the cut: %q, %v", got, err)
	}
	for range 3 {
		if _, err := s.GetRange(t.Context(), "a", 1, 2); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut GetRange: error = %v, want one wrapping io.ErrUnexpectedEOF", err)
		}
	}
	// A missing object fails before any data would flow.
	if _, err := s.GetRange(t.Context(), "missing", 0, 1); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("cut GetRange of a missing object: error = %v, want not found", err)
	}
}

func TestConcurrentCounting(t *testing.T) {
	const workers, perWorker, okPuts = 8, 25, 50
	inner := mem.New()
	s := faulty.New(inner)
	s.FailAfter("Put", okPuts+1, nil)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				err := s.Put(t.Context(), fmt.Sprintf("data/%d.%d", w, i), []byte{byte(i)})
				if err != nil && !errors.Is(err, faulty.ErrInjected) {
					t.Errorf("Put: %v", err)
				}
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
				_, _ = s.Stat(t.Context(), "data/0.0")
			}
		})
	}
	wg.Wait()
	if got, want := failed, workers*perWorker-okPuts; got != want {
		t.Fatalf("%d Puts failed, want %d", got, want)
	}
	if got, want := inner.Len(), okPuts; got != want {
		t.Fatalf("inner store holds %d objects, want %d", got, want)
	}
	if got, want := s.Calls("Put"), workers*perWorker; got != want {
		t.Fatalf("Calls(Put) = %d, want %d", got, want)
	}
}

func TestBadRulesPanic(t *testing.T) {
	s := faulty.New(mem.New())
	for name, f := range map[string]func(){
		"unknown method":  func() { s.FailOnce("Gett", 1, nil) },
		"call number 0":   func() { s.FailAfter("Put", 0, nil) },
		"cut Stat":        func() { s.CutOnce("Stat", 1) },
		"negative disk":   func() { s.FullDisk(-1) },
		"Calls of a typo": func() { s.Calls("put") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// TestPutBatchObjectByObject: a batch meets the rules as a Put of each of
// its objects in turn would: the objects before the failing one are
// stored, the failing one too when its call is cut, no later one, and
// each object counts as one Put call.
func TestPutBatchObjectByObject(t *testing.T) {
	names := []string{"data/ab/x.0", "data/ab/x.1", "data/ab/x.2", "data/ab/x.3"}
	data := [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3")}
	for _, tc := range []struct {
		name   string
		rule   func(s *faulty.Store)
		stored int
		fails  bool
	}{
		{"none", func(*faulty.Store) {}, 4, false},
		{"fail third", func(s *faulty.Store) { s.FailAfter("Put", 3, nil) }, 2, true},
		{"fail first", func(s *faulty.Store) { s.FailOnce("Put", 1, nil) }, 0, true},
		{"cut second", func(s *faulty.Store) { s.CutOnce("Put", 2) }, 2, true},
		{"full disk", func(s *faulty.Store) { s.FullDisk(3) }, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := mem.New()
			s := faulty.New(inner)
			tc.rule(s)
			err := s.PutBatch(t.Context(), names, data)
			if (err != nil) != tc.fails || (err != nil && !errors.Is(err, faulty.ErrInjected)) {
				t.Fatalf("PutBatch: %v, want failure %v wrapping ErrInjected", err, tc.fails)
			}
			for i, name := range names {
				_, gerr := inner.Get(t.Context(), name)
				if stored := gerr == nil; stored != (i < tc.stored) {
					t.Errorf("%s stored %v, want %v", name, stored, i < tc.stored)
				}
			}
			want := tc.stored
			if tc.fails && tc.name != "cut second" {
				want++ // the failing call counts
			}
			if got := s.Calls("Put"); got != want {
				t.Errorf("%d Put calls counted, want %d", got, want)
			}
		})
	}
}
