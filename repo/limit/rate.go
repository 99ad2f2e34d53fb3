package limit

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-backup/strata/repo"
)

var _ repo.Store = (*readRate)(nil)

// Reads returns inner with what Get and GetRange return held to
// bytesPerSec bytes a second on average (a token bucket holding one second
// of reads), so a scrub or check does not starve the backups and restores
// that share the store. A call waits after it has read, for as long as its
// bytes take at the rate, or returns an error wrapping the context's cause
// (context.DeadlineExceeded when the wait would outlast the deadline) when
// its context ends first; the data read is then dropped. Writes,
// lists and deletes pass unthrottled. It panics if bytesPerSec is not
// positive, a programming error. The result implements repo.Retainer and
// repo.Tampered exactly when inner does.
func Reads(inner repo.Store, bytesPerSec float64) repo.Store {
	if !(bytesPerSec > 0) {
		panic(fmt.Sprintf("limit: read rate %v bytes a second, want more than 0", bytesPerSec))
	}
	burst := int(min(max(bytesPerSec, 64<<10), 1<<30))
	s := &readRate{inner: inner, lim: rate.NewLimiter(rate.Limit(bytesPerSec), burst)}
	return repo.Decorated(s, inner, func(ctx context.Context, name string, until time.Time) error {
		return inner.(repo.Retainer).RetainUntil(ctx, name, until)
	})
}

// readRate is the read-rate decorator without the optional interfaces.
type readRate struct {
	inner repo.Store
	lim   *rate.Limiter
}

// wait takes n bytes' worth of tokens, a burst at a time.
func (s *readRate) wait(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, s.lim.Burst())
		if err := s.lim.WaitN(ctx, k); err != nil {
			cause := context.Cause(ctx)
			if cause == nil {
				// The wait would outlast the context's deadline: rate
				// says so at once rather than waiting for it.
				cause = context.DeadlineExceeded
			}
			return fmt.Errorf("limit: waiting to read %d bytes: %w", k, cause)
		}
		n -= k
	}
	return nil
}

// Get returns the object once its bytes fit the rate.
func (s *readRate) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := s.inner.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.wait(ctx, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// GetRange returns the range once its bytes fit the rate.
func (s *readRate) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := s.inner.GetRange(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	if err := s.wait(ctx, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// Put writes through.
func (s *readRate) Put(ctx context.Context, name string, data []byte) error {
	return s.inner.Put(ctx, name, data)
}

// Stat passes through.
func (s *readRate) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	return s.inner.Stat(ctx, name)
}

// List passes through.
func (s *readRate) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	return s.inner.List(ctx, prefix, fn)
}

// Delete passes through.
func (s *readRate) Delete(ctx context.Context, name string) error {
	return s.inner.Delete(ctx, name)
}

// Unwrap returns the store the rate limit wraps.
func (s *readRate) Unwrap() repo.Store { return s.inner }
