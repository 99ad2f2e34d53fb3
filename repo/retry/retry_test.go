package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/repo/storetest"
)

// fast retries quickly, so tests of many attempts take milliseconds.
var fast = retry.Policy{Attempts: 4, Base: time.Microsecond, Max: 50 * time.Microsecond}

// busy is a transient error as a backend would mark it.
type busy struct{}

func (busy) Error() string   { return "fake server: slow down" }
func (busy) Transient() bool { return true }

// refusedRange is a permanent error that nonetheless wraps
// io.ErrUnexpectedEOF, as repo/s3 marks a range outside the object.
type refusedRange struct{}

func (refusedRange) Error() string   { return "range outside the object" }
func (refusedRange) Transient() bool { return false }
func (refusedRange) Unwrap() error   { return io.ErrUnexpectedEOF }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store { return retry.New(mem.New(), fast) })
}

// TestConformanceWithFaults runs the suite with the first call of every
// method failing transiently, which the decorator must hide.
func TestConformanceWithFaults(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store {
		f := faulty.New(mem.New())
		for _, m := range []string{"Put", "Get", "GetRange", "Stat", "List", "Delete"} {
			f.FailOnce(m, 1, busy{})
		}
		f.CutOnce("Get", 2)
		return retry.New(f, fast)
	})
}

func TestRetries(t *testing.T) {
	corrupt := &repo.CorruptError{Object: "data/ab/x.0", Offset: -1, Reason: "checksum mismatch"}
	notFound := fmt.Errorf("backend: %w", repo.ErrNotFound)
	retained := fmt.Errorf("backend: %w", repo.ErrRetained)
	calls := map[string]func(ctx context.Context, s repo.Store) error{
		"Put": func(ctx context.Context, s repo.Store) error { return s.Put(ctx, "obj", []byte("new")) },
		"Get": func(ctx context.Context, s repo.Store) error {
			b, err := s.Get(ctx, "obj")
			if err == nil && string(b) != "old" {
				return fmt.Errorf("Get = %q, want %q", b, "old")
			}
			return err
		},
		"GetRange": func(ctx context.Context, s repo.Store) error {
			b, err := s.GetRange(ctx, "obj", 1, 2)
			if err == nil && string(b) != "ld" {
				return fmt.Errorf("GetRange = %q, want %q", b, "ld")
			}
			return err
		},
		"Stat": func(ctx context.Context, s repo.Store) error { _, err := s.Stat(ctx, "obj"); return err },
		"List": func(ctx context.Context, s repo.Store) error {
			return s.List(ctx, "", func(repo.ObjectInfo) error { return nil })
		},
		"Delete": func(ctx context.Context, s repo.Store) error { return s.Delete(ctx, "obj") },
	}
	tests := []struct {
		name      string
		method    string
		setup     func(f *faulty.Store)
		wantErr   error // nil: the call must succeed
		wantCalls int   // calls that reached the faulty store
	}{
		{"put busy once", "Put", func(f *faulty.Store) { f.FailOnce("Put", 1, busy{}) }, nil, 2},
		{"put busy thrice", "Put", func(f *faulty.Store) {
			for n := range 3 {
				f.FailOnce("Put", n+1, busy{})
			}
		}, nil, 4},
		{"put busy always", "Put", func(f *faulty.Store) { f.FailAfter("Put", 1, busy{}) }, busy{}, 4},
		{"put response lost", "Put", func(f *faulty.Store) { f.FailOnce("Put", 1, syscall.ECONNRESET) }, nil, 2},
		{"put unknown error", "Put", func(f *faulty.Store) { f.FailOnce("Put", 1, nil) }, faulty.ErrInjected, 1},
		{"put full disk", "Put", func(f *faulty.Store) { f.FullDisk(0) }, syscall.ENOSPC, 1},
		{"get cut", "Get", func(f *faulty.Store) { f.CutOnce("Get", 1) }, nil, 2},
		{"get cut twice", "Get", func(f *faulty.Store) { f.CutOnce("Get", 1); f.CutOnce("Get", 2) }, nil, 3},
		{"get cut always", "Get", func(f *faulty.Store) { f.CutAfter("Get", 1) }, io.ErrUnexpectedEOF, 4},
		{"get timeout", "Get", func(f *faulty.Store) { f.FailOnce("Get", 1, timeoutErr{}) }, nil, 2},
		{"get refused", "Get", func(f *faulty.Store) { f.FailOnce("Get", 1, syscall.ECONNREFUSED) }, nil, 2},
		{"get not found", "Get", func(f *faulty.Store) { f.FailOnce("Get", 1, notFound) }, repo.ErrNotFound, 1},
		{"get corrupt", "Get", func(f *faulty.Store) { f.FailOnce("Get", 1, corrupt) }, repo.ErrCorrupt, 1},
		{"get cancelled", "Get", func(f *faulty.Store) { f.FailOnce("Get", 1, context.Canceled) }, context.Canceled, 1},
		{"getrange cut", "GetRange", func(f *faulty.Store) { f.CutOnce("GetRange", 1) }, nil, 2},
		{"getrange outside", "GetRange", func(f *faulty.Store) { f.FailOnce("GetRange", 1, refusedRange{}) }, io.ErrUnexpectedEOF, 1},
		{"stat busy", "Stat", func(f *faulty.Store) { f.FailOnce("Stat", 1, busy{}) }, nil, 2},
		{"stat permission", "Stat", func(f *faulty.Store) { f.FailOnce("Stat", 1, os.ErrPermission) }, os.ErrPermission, 1},
		{"list busy", "List", func(f *faulty.Store) { f.FailOnce("List", 1, busy{}) }, nil, 2},
		{"delete busy", "Delete", func(f *faulty.Store) { f.FailOnce("Delete", 1, busy{}) }, nil, 2},
		{"delete retained", "Delete", func(f *faulty.Store) { f.FailOnce("Delete", 1, retained) }, repo.ErrRetained, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := mem.New()
			if err := inner.Put(t.Context(), "obj", []byte("old")); err != nil {
				t.Fatal(err)
			}
			f := faulty.New(inner)
			tt.setup(f)
			err := calls[tt.method](t.Context(), retry.New(f, fast))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("%s: %v, want success after retries", tt.method, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("%s error = %v, want one wrapping %v", tt.method, err, tt.wantErr)
			}
			if got, want := f.Calls(tt.method), tt.wantCalls; got != want {
				t.Fatalf("%s reached the inner store %d times, want %d", tt.method, got, want)
			}
		})
	}
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("something"), false},
		{busy{}, true},
		{fmt.Errorf("s3: %w", busy{}), true},
		{refusedRange{}, false},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{timeoutErr{}, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{fmt.Errorf("%w: %w", repo.ErrNotFound, busy{}), false},
		{fmt.Errorf("%w", repo.ErrRetained), false},
		{&repo.CorruptError{Object: "x", Err: io.ErrUnexpectedEOF}, false},
		{syscall.ENOSPC, false},
	}
	for _, tt := range tests {
		if got := retry.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// flakyList fails its first List after reporting cut names.
type flakyList struct {
	repo.Store
	mu    sync.Mutex
	cut   int
	calls int
}

func (s *flakyList) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	s.mu.Lock()
	s.calls++
	first := s.calls == 1
	s.mu.Unlock()
	n := 0
	return s.Store.List(ctx, prefix, func(info repo.ObjectInfo) error {
		if first && n == s.cut {
			return fmt.Errorf("listing page 2: %w", syscall.ECONNRESET)
		}
		n++
		return fn(info)
	})
}

func TestListResumesWithoutRepeats(t *testing.T) {
	inner := mem.New()
	names := []string{"a", "b", "c", "d", "e"}
	for _, n := range names {
		if err := inner.Put(t.Context(), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	flaky := &flakyList{Store: inner, cut: 2}
	var got []string
	err := retry.New(flaky, fast).List(t.Context(), "", func(info repo.ObjectInfo) error {
		got = append(got, info.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("List reported %q, want %q (each once)", got, names)
	}
	if flaky.calls != 2 {
		t.Fatalf("inner List called %d times, want 2", flaky.calls)
	}
}

func TestListCallbackErrorNotRetried(t *testing.T) {
	f := faulty.New(mem.New())
	if err := f.Put(t.Context(), "a", nil); err != nil {
		t.Fatal(err)
	}
	// Even an error that looks transient is the caller's, not the store's.
	err := retry.New(f, fast).List(t.Context(), "", func(repo.ObjectInfo) error { return busy{} })
	if !errors.Is(err, busy{}) {
		t.Fatalf("List error = %v, want the callback's", err)
	}
	if got := f.Calls("List"); got != 1 {
		t.Fatalf("List called %d times after the callback failed, want 1", got)
	}
}

func TestContextEndsBackoff(t *testing.T) {
	f := faulty.New(mem.New())
	f.FailAfter("Get", 1, busy{})
	s := retry.New(f, retry.Policy{Attempts: 10, Base: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.Get(ctx, "x")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, busy{}) {
		t.Fatalf("Get error = %v, want one wrapping the last failure and context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get took %v after its context was cancelled", d)
	}
	if got := f.Calls("Get"); got != 1 {
		t.Fatalf("Get called %d times, want 1", got)
	}
}

func TestDoneContextNotRetried(t *testing.T) {
	f := faulty.New(mem.New())
	f.FailAfter("Put", 1, busy{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := retry.New(f, fast).Put(ctx, "x", nil); err == nil {
		t.Fatal("Put succeeded")
	}
	if got := f.Calls("Put"); got != 1 {
		t.Fatalf("Put with a done context called %d times, want 1", got)
	}
}

// optional is a store with the optional interfaces, whose RetainUntil
// fails transiently a set number of times.
type optional struct {
	repo.Store
	mu       sync.Mutex
	failures int
	calls    int
	until    map[string]time.Time
}

func (s *optional) RetainUntil(_ context.Context, name string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failures {
		return busy{}
	}
	if s.until == nil {
		s.until = make(map[string]time.Time)
	}
	if until.After(s.until[name]) {
		s.until[name] = until
	}
	return nil
}

func (s *optional) TamperedObjects() []string { return []string{"index/aa"} }

type retainerOnly struct{ *optional }

func (s retainerOnly) TamperedObjects() {} // hides the method: not a repo.Tampered

type tamperedOnly struct {
	repo.Store
	o *optional
}

func (s tamperedOnly) TamperedObjects() []string { return s.o.TamperedObjects() }

func TestForwardsOptionalInterfaces(t *testing.T) {
	o := &optional{Store: mem.New(), failures: 2}
	tests := []struct {
		name                   string
		inner                  repo.Store
		isRetainer, isTampered bool
	}{
		{"plain", mem.New(), false, false},
		{"both", o, true, true},
		{"retainer", retainerOnly{o}, true, false},
		{"tampered", tamperedOnly{Store: mem.New(), o: o}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := retry.New(tt.inner, fast)
			r, isRetainer := s.(repo.Retainer)
			tp, isTampered := s.(repo.Tampered)
			if isRetainer != tt.isRetainer || isTampered != tt.isTampered {
				t.Fatalf("Retainer %v, Tampered %v; want %v, %v", isRetainer, isTampered, tt.isRetainer, tt.isTampered)
			}
			if isTampered {
				if got := tp.TamperedObjects(); !slices.Equal(got, []string{"index/aa"}) {
					t.Fatalf("TamperedObjects = %q", got)
				}
			}
			if isRetainer {
				until := time.Now().Add(time.Hour)
				if err := r.RetainUntil(t.Context(), "x", until); err != nil {
					t.Fatalf("RetainUntil: %v", err)
				}
				o.mu.Lock()
				defer o.mu.Unlock()
				if !o.until["x"].Equal(until) {
					t.Fatalf("RetainUntil did not reach the inner store after its transient failures")
				}
				o.calls = 0
			}
		})
	}
}
