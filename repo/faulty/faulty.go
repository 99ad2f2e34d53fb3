package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/strata-backup/strata/repo"
)

var (
	_ repo.Store       = (*Store)(nil)
	_ repo.BatchPutter = (*Store)(nil)
)

// ErrInjected is the default injected error, and is wrapped by every error
// this package makes up (cut connections, full disk).
var ErrInjected = errors.New("injected fault")

// methods are the method names rules accept.
var methods = map[string]bool{"Put": true, "Get": true, "GetRange": true, "Stat": true, "List": true, "Delete": true}

type ruleKind int

const (
	failCall ruleKind = iota // fail without calling the inner store
	cutCall                  // call the inner store, then fail
)

type rule struct {
	method string
	kind   ruleKind
	base   int  // the method's call count when the rule was added
	n      int  // first failing call, counted from base
	once   bool // only call n fails, not the later ones
	err    error
}

func (r *rule) matches(method string, call int) bool {
	if r.method != method {
		return false
	}
	k := call - r.base
	if r.once {
		return k == r.n
	}
	return k >= r.n
}

// Store is a repo.Store that injects faults into calls to an inner store.
// It is safe for concurrent use; rules may change while calls run.
type Store struct {
	inner repo.Store

	mu        sync.Mutex
	calls     map[string]int
	rules     []*rule
	diskLimit int64 // bytes Puts may still write; < 0 without FullDisk
	diskUsed  int64
}

// New returns a Store passing every call to inner until rules are added.
func New(inner repo.Store) *Store {
	return &Store{inner: inner, calls: make(map[string]int), diskLimit: -1}
}

func (s *Store) add(method string, n int, kind ruleKind, once bool, err error) {
	if !methods[method] {
		panic(fmt.Sprintf("faulty: unknown Store method %q", method))
	}
	if n < 1 {
		panic(fmt.Sprintf("faulty: call number %d for %s, want 1 or more", n, method))
	}
	if kind == cutCall && method != "Put" && method != "Get" && method != "GetRange" {
		panic(fmt.Sprintf("faulty: cannot cut %s; only Put, Get and GetRange move data", method))
	}
	if err == nil {
		err = ErrInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{method: method, kind: kind, base: s.calls[method], n: n, once: once, err: err})
}

// FailOnce makes call n of method (1 is the next call) fail with err, or
// ErrInjected if err is nil, without reaching the inner store.
func (s *Store) FailOnce(method string, n int, err error) { s.add(method, n, failCall, true, err) }

// FailAfter makes call n of method (1 is the next call) and every later
// call fail with err, or ErrInjected if err is nil, without reaching the
// inner store.
func (s *Store) FailAfter(method string, n int, err error) { s.add(method, n, failCall, false, err) }

// CutOnce cuts the connection of call n of method, which must be "Put",
// "Get" or "GetRange" (package documentation, "Fault").
func (s *Store) CutOnce(method string, n int) { s.add(method, n, cutCall, true, nil) }

// CutAfter cuts the connection of call n of method, which must be "Put",
// "Get" or "GetRange", and of every later call.
func (s *Store) CutAfter(method string, n int) { s.add(method, n, cutCall, false, nil) }

// PutThenFail makes Put call n store its object in the inner store and then
// return an error wrapping ErrInjected, as when the response to a
// successful upload is lost.
func (s *Store) PutThenFail(n int) { s.CutOnce("Put", n) }

// FullDisk makes every Put fail with an error wrapping syscall.ENOSPC once
// the bytes of the Puts that succeed from now on would exceed afterBytes. A
// failing Put stores nothing and uses no space; later smaller Puts may still
// fit. Calling FullDisk again starts a new count.
func (s *Store) FullDisk(afterBytes int64) {
	if afterBytes < 0 {
		panic(fmt.Sprintf("faulty: FullDisk(%d), want 0 or more", afterBytes))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.diskLimit, s.diskUsed = afterBytes, 0
}

// Calls returns how many times method was called since New or Reset,
// failed calls included.
func (s *Store) Calls(method string) int {
	if !methods[method] {
		panic(fmt.Sprintf("faulty: unknown Store method %q", method))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Reset removes every rule and the full disk, and sets the call counts to 0.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	s.rules = nil
	s.diskLimit, s.diskUsed = -1, 0
}

// begin counts a call and returns the first rule it matches, or nil.
func (s *Store) begin(method string) *rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	call := s.calls[method]
	for _, r := range s.rules {
		if r.matches(method, call) {
			return r
		}
	}
	return nil
}

// reserve takes n bytes of the full disk's space, reporting false if they
// do not fit.
func (s *Store) reserve(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.diskLimit < 0 {
		return true
	}
	if n > s.diskLimit-s.diskUsed {
		return false
	}
	s.diskUsed += n
	return true
}

func (s *Store) release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.diskLimit >= 0 {
		s.diskUsed = max(s.diskUsed-n, 0)
	}
}

func fault(method, name string, err error) error {
	return fmt.Errorf("faulty store: %s %s: %w", method, name, err)
}

// Put stores data in the inner store unless a rule or the full disk fails it.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	r := s.begin("Put")
	if r != nil && r.kind == failCall {
		return fault("Put", name, r.err)
	}
	n := int64(len(data))
	if !s.reserve(n) {
		return fault("Put", name, fmt.Errorf("%w: %w", ErrInjected, syscall.ENOSPC))
	}
	if err := s.inner.Put(ctx, name, data); err != nil {
		s.release(n)
		return err
	}
	if r != nil {
		return fault("Put", name, fmt.Errorf("%w: response lost after the object was stored", ErrInjected))
	}
	return nil
}

// PutBatch stores the objects as Puts of each in turn would: every object
// counts as one Put call and meets the rules and the full disk as that Put
// would. The objects before the first one that fails are stored, as one
// batch of the inner store (repo.PutBatch); the failing one is stored too
// when its rule cuts the call (the reply lost), and no later one is. The
// first fault is returned. A batch is thus crash-tested object by object,
// and a local directory under the fault injector still syncs it as one.
func (s *Store) PutBatch(ctx context.Context, names []string, data [][]byte) error {
	if len(names) != len(data) {
		return fault("PutBatch", fmt.Sprint(len(names), " names"), fmt.Errorf("%d names for %d objects", len(names), len(data)))
	}
	upto, reserved := len(names), int64(0)
	var ferr error
	for i, name := range names {
		r := s.begin("Put")
		if r != nil && r.kind == failCall {
			upto, ferr = i, fault("Put", name, r.err)
			break
		}
		n := int64(len(data[i]))
		if !s.reserve(n) {
			upto, ferr = i, fault("Put", name, fmt.Errorf("%w: %w", ErrInjected, syscall.ENOSPC))
			break
		}
		reserved += n
		if r != nil {
			upto, ferr = i+1, fault("Put", name, fmt.Errorf("%w: response lost after the object was stored", ErrInjected))
			break
		}
	}
	if upto > 0 {
		if err := repo.PutBatch(ctx, s.inner, names[:upto], data[:upto]); err != nil {
			s.release(reserved)
			return err
		}
	}
	return ferr
}

// cut is the error of a read whose connection dropped midway.
func cut(method, name string) error {
	return fault(method, name, fmt.Errorf("%w: connection cut: %w", ErrInjected, io.ErrUnexpectedEOF))
}

// Get returns the inner store's object unless a rule fails or cuts the call.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	r := s.begin("Get")
	if r != nil && r.kind == failCall {
		return nil, fault("Get", name, r.err)
	}
	b, err := s.inner.Get(ctx, name)
	if err == nil && r != nil {
		return nil, cut("Get", name)
	}
	return b, err
}

// GetRange returns the inner store's range unless a rule fails or cuts the
// call.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	r := s.begin("GetRange")
	if r != nil && r.kind == failCall {
		return nil, fault("GetRange", name, r.err)
	}
	b, err := s.inner.GetRange(ctx, name, offset, length)
	if err == nil && r != nil {
		return nil, cut("GetRange", name)
	}
	return b, err
}

// Stat returns the inner store's answer unless a rule fails the call.
func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if r := s.begin("Stat"); r != nil {
		return repo.ObjectInfo{}, fault("Stat", name, r.err)
	}
	return s.inner.Stat(ctx, name)
}

// List lists the inner store unless a rule fails the call, in which case fn
// is not called. The error names the prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if r := s.begin("List"); r != nil {
		return fault("List", prefix, r.err)
	}
	return s.inner.List(ctx, prefix, fn)
}

// Delete deletes from the inner store unless a rule fails the call.
func (s *Store) Delete(ctx context.Context, name string) error {
	if r := s.begin("Delete"); r != nil {
		return fault("Delete", name, r.err)
	}
	return s.inner.Delete(ctx, name)
}

// Unwrap returns the store the faults are injected in front of.
func (s *Store) Unwrap() repo.Store { return s.inner }
