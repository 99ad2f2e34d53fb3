package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/strata-backup/strata/repo"
)

var _ repo.Store = (*store)(nil)

// Defaults for the zero fields of a Policy.
const (
	DefaultAttempts = 5
	DefaultBase     = 200 * time.Millisecond
	DefaultMax      = 15 * time.Second
)

// Policy says how often and how patiently to retry. The zero Policy is
// valid and means the defaults above.
type Policy struct {
	Attempts int           // calls in all, the first included; 0 means DefaultAttempts
	Base     time.Duration // the longest wait before the second attempt; 0 means DefaultBase
	Max      time.Duration // the longest wait ever; 0 means DefaultMax
}

// validate checks the policy and fills the defaults of zero fields.
func (p *Policy) validate() error {
	if p.Attempts < 0 || p.Base < 0 || p.Max < 0 {
		return fmt.Errorf("retry: negative policy field in %+v", *p)
	}
	if p.Attempts == 0 {
		p.Attempts = DefaultAttempts
	}
	if p.Base == 0 {
		p.Base = DefaultBase
	}
	if p.Max == 0 {
		p.Max = DefaultMax
	}
	p.Max = max(p.Max, p.Base)
	return nil
}

// backoff returns the wait after failed attempt n (1 is the first call).
func (p Policy) backoff(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		if d > p.Max/2 {
			d = p.Max
			break
		}
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// New returns inner with transient failures retried under p. It panics if
// a field of p is negative, a programming error. The result implements
// repo.Retainer and repo.Tampered exactly when inner does (package
// documentation, "Forwarding").
func New(inner repo.Store, p Policy) repo.Store {
	if err := p.validate(); err != nil {
		panic(err)
	}
	s := &store{inner: inner, p: p}
	return repo.Decorated(s, inner, s.retainUntil)
}

// store is the decorator without the optional interfaces.
type store struct {
	inner repo.Store
	p     Policy
}

// do calls op under the store's policy.
func (s *store) do(ctx context.Context, op func() error) error { return do(ctx, s.p, op) }

// Do calls op until it succeeds, fails permanently (IsTransient), runs out
// of p.Attempts or ctx is done, waiting the policy's backoff between
// attempts. It is the one backoff loop: the store decorator and the index
// server client's API calls both use it. It panics if a field of p is
// negative, a programming error.
func Do(ctx context.Context, p Policy, op func() error) error {
	if err := p.validate(); err != nil {
		panic(err)
	}
	return do(ctx, p, op)
}

func do(ctx context.Context, p Policy, op func() error) error {
	for n := 1; ; n++ {
		err := op()
		if err == nil || ctx.Err() != nil || !IsTransient(err) {
			return err
		}
		if n >= p.Attempts {
			if n == 1 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d attempts)", err, n)
		}
		t := time.NewTimer(p.backoff(n))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (stopped retrying after %d attempts: %w)", err, n, context.Cause(ctx))
		}
	}
}

// Put stores data, retrying transient failures; a repeated Put of the same
// bytes is harmless by the repo.Store contract.
func (s *store) Put(ctx context.Context, name string, data []byte) error {
	return s.do(ctx, func() error { return s.inner.Put(ctx, name, data) })
}

// Get returns the object, retrying transient failures.
func (s *store) Get(ctx context.Context, name string) ([]byte, error) {
	var b []byte
	err := s.do(ctx, func() error {
		var err error
		b, err = s.inner.Get(ctx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// GetRange returns the range, retrying transient failures.
func (s *store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	var b []byte
	err := s.do(ctx, func() error {
		var err error
		b, err = s.inner.GetRange(ctx, name, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Stat returns the object's size, retrying transient failures.
func (s *store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	var info repo.ObjectInfo
	err := s.do(ctx, func() error {
		var err error
		info, err = s.inner.Stat(ctx, name)
		return err
	})
	return info, err
}

// List lists the inner store. When listing fails transiently midway it
// lists again and skips the names fn has already seen, so fn still sees
// each name once, in order. An error from fn is returned as is, never
// retried.
func (s *store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	var (
		last    string
		started bool
		fnErr   error
	)
	err := s.do(ctx, func() error {
		err := s.inner.List(ctx, prefix, func(info repo.ObjectInfo) error {
			if started && info.Name <= last {
				return nil
			}
			if err := fn(info); err != nil {
				fnErr = err
				return err
			}
			last, started = info.Name, true
			return nil
		})
		if fnErr != nil {
			return permanent{err}
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Delete deletes the object, retrying transient failures; Delete is
// idempotent.
func (s *store) Delete(ctx context.Context, name string) error {
	return s.do(ctx, func() error { return s.inner.Delete(ctx, name) })
}

func (s *store) retainUntil(ctx context.Context, name string, until time.Time) error {
	r := s.inner.(repo.Retainer)
	return s.do(ctx, func() error { return r.RetainUntil(ctx, name, until) })
}

// permanent stops do from retrying an error that may look transient.
type permanent struct{ err error }

func (e permanent) Error() string   { return e.err.Error() }
func (e permanent) Unwrap() error   { return e.err }
func (e permanent) Transient() bool { return false }

// IsTransient reports whether a later identical call may succeed where the
// one that returned err failed (package documentation, "Transient").
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, permanent := range []error{repo.ErrNotFound, repo.ErrRetained, repo.ErrCorrupt, context.Canceled} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var c interface{ Transient() bool }
	if errors.As(err, &c) {
		return c.Transient()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, transient := range []error{
		context.DeadlineExceeded, // a per-request timeout; the caller's own deadline stops do first
		io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, transient) {
			return true
		}
	}
	return false
}

// Unwrap returns the store the retries wrap.
func (s *store) Unwrap() repo.Store { return s.inner }

// Backoff paces a loop that retries for as long as it runs (a capture
// reconnecting to its database), where Do's bounded attempts do not fit:
// each Next is twice the last, from the policy's Base up to its Max, with
// the same jitter as Do; Reset starts over once the loop made progress.
// The zero value waits from DefaultBase up to DefaultMax. Not safe for
// concurrent use.
type Backoff struct {
	Policy Policy
	n      int
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	p := b.Policy
	if err := p.validate(); err != nil {
		panic(err)
	}
	b.n++
	return p.backoff(b.n)
}

// Reset makes the next wait the shortest again.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d, or until ctx ends; it reports whether the wait ran out.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
