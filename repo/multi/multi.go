package multi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/repo"
)

var (
	_ repo.Store    = (*Store)(nil)
	_ repo.Retainer = (*Store)(nil)
	_ repo.Tampered = (*Store)(nil)
	_ repo.Creator  = (*Store)(nil)
)

// ErrNoRetainer is wrapped by RetainUntil's error when none of the stores
// can hold objects immutable (none implements repo.Retainer).
var ErrNoRetainer = errors.New("none of the stores supports retention")

// ErrReadOnly is wrapped by the error of every write (Put, Delete,
// RetainUntil, Resync) to a Store opened with Options.Degraded.
var ErrReadOnly = errors.New("multi store is read-only: opened degraded")

// Options configure a Store. The zero value is valid.
type Options struct {
	// Names label the stores in errors and reports, in the order of the
	// stores given to New (URLs or paths, say). Empty means the labels are
	// only "store 0", "store 1", …; otherwise there must be one per store.
	Names []string
	// Verify checks a copy read by Get; a copy that fails is passed over
	// for another store's. Nil means repo.VerifyObject.
	Verify repo.Verifier
	// Degraded makes the Store read-only and lets reads pass over a store
	// that fails to answer as if it were empty, so that a repository opens
	// and restores while a store is unreachable: ReadPack rebuilds the
	// shards it holds from parity. Without it, one unreachable store fails
	// List, so repo.Open fails. Writes fail with ErrReadOnly, so nothing
	// is written or deleted on a partial view; Unavailable names the stores
	// passed over. For restores, never for backup, prune or repair.
	Degraded bool
}

func (o Options) validate(n int) error {
	if len(o.Names) != 0 && len(o.Names) != n {
		return fmt.Errorf("multi store: %d names for %d stores", len(o.Names), n)
	}
	return nil
}

// Store is one repository spread over several stores (package
// documentation). It is safe for concurrent use if the inner stores are.
type Store struct {
	stores   []repo.Store
	labels   []string
	verify   repo.Verifier
	degraded bool

	mu          sync.Mutex
	tampered    map[string]struct{} // names whose damaged copy a read passed over
	unavailable map[int]bool        // stores a degraded read passed over
}

// New returns a Store over stores, in this order; shard i of a pack goes to
// stores[i % len(stores)], so the order MUST stay the same for the life of a
// repository. It needs at least 2 stores, none nil. New does not check that
// the placement survives the loss of a store: call CheckPlacement with the
// repository's erasure coding.
func New(stores []repo.Store, opts Options) (*Store, error) {
	if len(stores) < 2 {
		return nil, fmt.Errorf("multi store: %d stores given, need at least 2", len(stores))
	}
	if err := opts.validate(len(stores)); err != nil {
		return nil, err
	}
	s := &Store{
		stores:      slices.Clone(stores),
		labels:      make([]string, len(stores)),
		verify:      opts.Verify,
		degraded:    opts.Degraded,
		tampered:    make(map[string]struct{}),
		unavailable: make(map[int]bool),
	}
	if s.verify == nil {
		s.verify = repo.VerifyObject
	}
	for i, st := range stores {
		if st == nil {
			return nil, fmt.Errorf("multi store: store %d is nil", i)
		}
		s.labels[i] = fmt.Sprintf("store %d", i)
		if len(opts.Names) > 0 {
			s.labels[i] = fmt.Sprintf("store %d (%s)", i, opts.Names[i])
		}
	}
	return s, nil
}

// Len returns the number of stores.
func (s *Store) Len() int { return len(s.stores) }

// home returns the home store of a shard, and false for a replicated object.
func (s *Store) home(name string) (int, bool) {
	i, ok := repo.ShardIndex(name)
	if !ok {
		return 0, false
	}
	return i % len(s.stores), true
}

// try calls fn on one store after another, a shard's home store first and
// otherwise store 0 first, until fn succeeds, and returns the attempts that
// failed before. ok is false if every store failed or ctx ended.
func (s *Store) try(ctx context.Context, name string, fn func(i int) error) (tries []attempt, ok bool) {
	start, _ := s.home(name)
	n := len(s.stores)
	for j := range n {
		i := (start + j) % n
		if j > 0 && ctx.Err() != nil {
			// Stop, but not as "not found": a store not asked may hold it.
			return append(tries, attempt{i, ctx.Err()}), false
		}
		err := fn(i)
		if err == nil {
			return tries, true
		}
		tries = append(tries, attempt{i, err})
	}
	return tries, false
}

// Put stores a shard on its home store only, and any other object on every
// store, in parallel. It returns nil only if every store it wrote to took
// the object; the error names each store that failed. After a failed Put of
// a replicated object some stores may hold it (whole), as after a retried
// Put; Resync completes it.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if s.degraded {
		return fmt.Errorf("multi store: put %s: %w", name, ErrReadOnly)
	}
	if i, ok := s.home(name); ok {
		if err := s.stores[i].Put(ctx, name, data); err != nil {
			return fmt.Errorf("multi store: put %s: %s: %w", name, s.labels[i], err)
		}
		return nil
	}
	errs := s.each(func(i int, st repo.Store) error { return st.Put(ctx, name, data) })
	return s.failed("put", name, errs)
}

// Create creates a replicated object on every store, one after another in
// store order, each through its own repo.Creator (repo.CreateObject). The
// first store decides: ErrObjectExists there is ErrObjectExists, so of concurrent
// Creates exactly one wins there and goes on to the rest, where a copy
// with other bytes (a contender that found the first store empty: it was
// lost and not yet repaired) is ErrObjectExists too. Any store failing otherwise
// fails the Create, as writes are refused while a store is unavailable;
// a store that could not be written may be left without the object,
// which Resync copies. Shards are not created exclusively.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if s.degraded {
		return fmt.Errorf("multi store: create %s: %w", name, ErrReadOnly)
	}
	if _, ok := s.home(name); ok {
		return fmt.Errorf("multi store: create %s: shards are never created exclusively", name)
	}
	for i, st := range s.stores {
		if err := repo.CreateObject(ctx, st, name, data); err != nil {
			return fmt.Errorf("multi store: create %s: %s: %w", name, s.labels[i], err)
		}
	}
	return nil
}

// Get returns the first copy that passes Verify, trying a shard's home store
// first and then the others (a shard may have been moved), and a replicated
// object's stores in order. A copy that fails Verify is passed over, and the
// name is reported by TamperedObjects when another store had a good copy.
// When no copy passes and the stores that have none said "not found", Get
// returns the first damaged copy, as a single store would, for the caller's
// own checks to reject (ReadPack then rebuilds the shard from parity).
// The error wraps repo.ErrNotFound only if every store said "not found";
// otherwise it joins the stores' errors, each naming its store.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	var good, damaged []byte
	tries, ok := s.try(ctx, name, func(i int) error {
		b, err := s.stores[i].Get(ctx, name)
		if err != nil {
			return err
		}
		if err := s.verify(name, b); err != nil {
			if damaged == nil {
				damaged = b
			}
			return &damagedError{err}
		}
		good = b
		return nil
	})
	if ok {
		if damaged != nil {
			s.markTampered(name)
		}
		return good, nil
	}
	if damaged != nil && s.onlyMissingOrDamaged(tries) {
		return damaged, nil
	}
	return nil, s.combine("get", name, tries)
}

// GetRange returns length bytes at offset from the first store that can
// serve them, a shard's home store first. Ranges cannot be verified, so a
// damaged copy that still spans the range is served; ReadFrame's callers
// fall back to Get through ReadPack when the frame fails authentication.
// A range outside the object is an error wrapping io.ErrUnexpectedEOF, and
// a missing object wraps repo.ErrNotFound only if every store said so.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("multi store: get %s: invalid range offset %d length %d", name, offset, length)
	}
	var out []byte
	tries, ok := s.try(ctx, name, func(i int) error {
		b, err := s.stores[i].GetRange(ctx, name, offset, length)
		out = b
		return err
	})
	if ok {
		return out, nil
	}
	return nil, s.combine("get", name, tries)
}

// Stat returns the size of the copy on the first store that has the object,
// a shard's home store first. It reads no data, so unlike Get it does not
// pass over a damaged copy. Errors are as for Get.
func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	var info repo.ObjectInfo
	tries, ok := s.try(ctx, name, func(i int) error {
		var err error
		info, err = s.stores[i].Stat(ctx, name)
		return err
	})
	if ok {
		return info, nil
	}
	return repo.ObjectInfo{}, s.combine("stat", name, tries)
}

// List calls fn once for every name under prefix that any store holds, in
// ascending byte order. The size reported is a shard's home store's, or the
// first store's that has the object. If any store fails to list, List
// returns an error naming it before calling fn at all: a partial listing
// could make cleanup delete objects still referenced from what it missed.
// Only a Store opened with Options.Degraded (read-only) lists without the
// stores that fail, as long as one store answers.
//
// List collects every store's listing before calling fn, in parallel, so it
// holds about 100 bytes per listed name and store in memory (a million
// shards: about 100 MB), and fn runs without any store call in progress.
func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	lists := make([][]repo.ObjectInfo, len(s.stores))
	errs := s.each(func(i int, st repo.Store) error {
		return st.List(ctx, prefix, func(oi repo.ObjectInfo) error {
			lists[i] = append(lists[i], oi)
			return nil
		})
	})
	// Degraded, a store that failed counts as empty, but one must answer.
	strict, listed := false, 0
	for i, err := range errs {
		switch {
		case err == nil:
			listed++
		case !s.passOver(attempt{i, err}):
			strict = true
		default:
			lists[i] = nil // what it listed before failing
		}
	}
	if strict || listed == 0 {
		return s.failed("list", prefix, errs)
	}
	byName := func(a, b repo.ObjectInfo) int { return strings.Compare(a.Name, b.Name) }
	for _, l := range lists {
		if !slices.IsSortedFunc(l, byName) {
			slices.SortFunc(l, byName) // the contract says sorted; merging needs it
		}
	}
	// A k-way merge by scanning the heads: n is a handful of stores.
	heads := make([]int, len(lists))
	for {
		first := -1 // the store whose next name is the smallest
		for i, l := range lists {
			if heads[i] < len(l) && (first < 0 || l[heads[i]].Name < lists[first][heads[first]].Name) {
				first = i
			}
		}
		if first < 0 {
			return nil
		}
		info := lists[first][heads[first]]
		if h, ok := s.home(info.Name); ok && heads[h] < len(lists[h]) && lists[h][heads[h]].Name == info.Name {
			info = lists[h][heads[h]]
		}
		for i, l := range lists {
			for heads[i] < len(l) && l[heads[i]].Name == info.Name {
				heads[i]++
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("multi store: list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
}

// Delete removes the object from every store, in parallel, shards included
// (one may have been moved). Deleting a missing object is not an error. The
// error names each store that failed; it wraps repo.ErrRetained if some
// store holds the object under retention, and then also any other store's
// failure. A failed Delete may leave the object on some stores, where List
// still finds it and Resync would copy it back: repeat the Delete.
func (s *Store) Delete(ctx context.Context, name string) error {
	if s.degraded {
		return fmt.Errorf("multi store: delete %s: %w", name, ErrReadOnly)
	}
	errs := s.each(func(i int, st repo.Store) error { return st.Delete(ctx, name) })
	return s.failed("delete", name, errs)
}

// RetainUntil extends the retention of the object on every store that
// holds it and implements repo.Retainer, in parallel; stores without
// retention are skipped, and copies on them stay deletable. It returns an
// error wrapping ErrNoRetainer if no store implements repo.Retainer, one
// wrapping repo.ErrNotFound if none of those that do holds the object, and
// otherwise the failures of the stores that hold it, each named.
func (s *Store) RetainUntil(ctx context.Context, name string, until time.Time) error {
	if s.degraded {
		return fmt.Errorf("multi store: retain %s: %w", name, ErrReadOnly)
	}
	var retainers []int
	for i, st := range s.stores {
		if _, ok := st.(repo.Retainer); ok {
			retainers = append(retainers, i)
		}
	}
	if len(retainers) == 0 {
		return fmt.Errorf("multi store: retain %s: %w", name, ErrNoRetainer)
	}
	errs := s.each(func(i int, st repo.Store) error {
		if r, ok := st.(repo.Retainer); ok {
			return r.RetainUntil(ctx, name, until)
		}
		return nil
	})
	var tries []attempt
	held := false
	for _, i := range retainers {
		switch {
		case errs[i] == nil:
			held = true
		case errors.Is(errs[i], repo.ErrNotFound):
			// This store does not hold it: a shard lives on one store only.
		default:
			tries = append(tries, attempt{i, errs[i]})
		}
	}
	if len(tries) > 0 || held {
		return s.failedAttempts("retain", name, tries)
	}
	for _, i := range retainers {
		tries = append(tries, attempt{i, errs[i]})
	}
	return s.combine("retain", name, tries)
}

// TamperedObjects returns, sorted and each once, the names the inner stores
// report through repo.Tampered and those whose copy on some store failed
// Verify while another store had a good one (Get, Resync).
func (s *Store) TamperedObjects() []string {
	s.mu.Lock()
	names := make([]string, 0, len(s.tampered))
	for name := range s.tampered {
		names = append(names, name)
	}
	s.mu.Unlock()
	for _, st := range s.stores {
		if t, ok := st.(repo.Tampered); ok {
			names = append(names, t.TamperedObjects()...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func (s *Store) markTampered(name string) {
	s.mu.Lock()
	s.tampered[name] = struct{}{}
	s.mu.Unlock()
}

// each calls fn for every store in parallel and returns the errors by store.
func (s *Store) each(fn func(i int, st repo.Store) error) []error {
	errs := make([]error, len(s.stores))
	var wg sync.WaitGroup
	for i, st := range s.stores {
		wg.Go(func() { errs[i] = fn(i, st) })
	}
	wg.Wait()
	return errs
}

// attempt is one store's failed answer to a call.
type attempt struct {
	store int
	err   error
}

// damagedError marks a copy that a store served but Verify rejected.
type damagedError struct{ err error }

func (e *damagedError) Error() string { return "copy fails verification: " + e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }

// onlyMissingOrDamaged reports whether every failed attempt was "not found",
// a damaged copy, or, degraded, a store passed over.
func (s *Store) onlyMissingOrDamaged(tries []attempt) bool {
	for _, a := range tries {
		var d *damagedError
		if !errors.Is(a.err, repo.ErrNotFound) && !errors.As(a.err, &d) && !s.passOver(a) {
			return false
		}
	}
	return true
}

// passOver reports whether a degraded Store treats the failed attempt as
// the store being empty, and if so records the store as unavailable. An
// answer (not found, a damaged copy, a range outside the object) and the
// caller's own cancellation are never passed over.
func (s *Store) passOver(a attempt) bool {
	var d *damagedError
	if !s.degraded || errors.Is(a.err, repo.ErrNotFound) || errors.As(a.err, &d) || errors.Is(a.err, io.ErrUnexpectedEOF) ||
		errors.Is(a.err, context.Canceled) || errors.Is(a.err, context.DeadlineExceeded) {
		return false
	}
	s.mu.Lock()
	s.unavailable[a.store] = true
	s.mu.Unlock()
	return true
}

// Unavailable returns the labels of the stores that a Store opened with
// Options.Degraded has passed over since New, in store order.
func (s *Store) Unavailable() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i, l := range s.labels {
		if s.unavailable[i] {
			out = append(out, l)
		}
	}
	return out
}

// failed returns nil if every store succeeded, and otherwise an error naming
// each store that failed, wrapping their errors.
func (s *Store) failed(op, name string, errs []error) error {
	var tries []attempt
	for i, err := range errs {
		if err != nil {
			tries = append(tries, attempt{i, err})
		}
	}
	return s.failedAttempts(op, name, tries)
}

func (s *Store) failedAttempts(op, name string, tries []attempt) error {
	if len(tries) == 0 {
		return nil
	}
	errs := make(storeErrors, len(tries))
	for j, a := range tries {
		errs[j] = fmt.Errorf("%s: %w", s.labels[a.store], a.err)
	}
	return fmt.Errorf("multi store: %s %s: %w", op, name, errs.join())
}

// combine makes the error of a read that no store could serve. It wraps
// repo.ErrNotFound only if every store said "not found" (or, degraded, was
// passed over): an object that one store could not be asked about is not
// known to be missing, so then the "not found" answers are named but not
// wrapped.
func (s *Store) combine(op, name string, tries []attempt) error {
	var errs storeErrors
	var missing, passed []string
	for _, a := range tries {
		switch {
		case errors.Is(a.err, repo.ErrNotFound):
			missing = append(missing, s.labels[a.store])
		case s.passOver(a):
			passed = append(passed, fmt.Sprintf("%s passed over: %v", s.labels[a.store], a.err))
		default:
			errs = append(errs, fmt.Errorf("%s: %w", s.labels[a.store], a.err))
		}
	}
	if len(errs) == 0 {
		var where []string
		if len(missing) > 0 {
			where = append(where, "on "+strings.Join(missing, ", "))
		}
		return fmt.Errorf("multi store: %s %s: %w %s", op, name, repo.ErrNotFound, strings.Join(append(where, passed...), "; "))
	}
	for _, p := range passed {
		errs = append(errs, errors.New(p))
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("not found on %s", strings.Join(missing, ", ")))
	}
	return fmt.Errorf("multi store: %s %s: %w", op, name, errs.join())
}

// storeErrors are the failures of one call on several stores, each naming
// its store. errors.Is and errors.As see every one of them.
type storeErrors []error

func (e storeErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e storeErrors) Unwrap() []error { return e }

func (e storeErrors) join() error {
	if len(e) == 1 {
		return e[0]
	}
	return e
}
