package limit

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-backup/strata/repo"
)

var _ repo.Store = (*store)(nil)

// New returns inner with at most n calls in flight at once. It panics if n
// is less than 1, a programming error. The result implements repo.Retainer
// and repo.Tampered exactly when inner does (package documentation,
// "Forwarding").
func New(inner repo.Store, n int) repo.Store {
	if n < 1 {
		panic(fmt.Sprintf("limit: %d concurrent calls, want 1 or more", n))
	}
	s := &store{inner: inner, slots: make(chan struct{}, n)}
	return repo.Decorated(s, inner, s.retainUntil)
}

// store is the decorator without the optional interfaces.
type store struct {
	inner repo.Store
	slots chan struct{} // a call in flight holds one element
}

// acquire takes a slot, waiting until one is free or ctx is done.
func (s *store) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("limit: waiting for one of %d slots: %w", cap(s.slots), context.Cause(ctx))
	}
}

func (s *store) release() { <-s.slots }

// Put stores data while holding a slot.
func (s *store) Put(ctx context.Context, name string, data []byte) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.inner.Put(ctx, name, data)
}

// Get returns the object while holding a slot.
func (s *store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.inner.Get(ctx, name)
}

// GetRange returns the range while holding a slot.
func (s *store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.inner.GetRange(ctx, name, offset, length)
}

// Stat returns the object's size while holding a slot.
func (s *store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := s.acquire(ctx); err != nil {
		return repo.ObjectInfo{}, err
	}
	defer s.release()
	return s.inner.Stat(ctx, name)
}

// List lists the inner store, holding a slot except while fn runs.
func (s *store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	held := true
	defer func() {
		if held {
			s.release()
		}
	}()
	return s.inner.List(ctx, prefix, func(info repo.ObjectInfo) error {
		s.release()
		held = false
		if err := fn(info); err != nil {
			return err
		}
		if err := s.acquire(ctx); err != nil {
			return err
		}
		held = true
		return nil
	})
}

// Delete deletes the object while holding a slot.
func (s *store) Delete(ctx context.Context, name string) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.inner.Delete(ctx, name)
}

func (s *store) retainUntil(ctx context.Context, name string, until time.Time) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.inner.(repo.Retainer).RetainUntil(ctx, name, until)
}

// Unwrap returns the store the limit wraps.
func (s *store) Unwrap() repo.Store { return s.inner }

// Limit returns n, the most calls in flight (repo.Limiter).
func (s *store) Limit() int { return cap(s.slots) }
