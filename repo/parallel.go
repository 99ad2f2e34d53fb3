package repo

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// Limiter is the optional interface of a store (usually the repo/limit
// decorator) that bounds the calls in flight to it.
type Limiter interface {
	// Limit is the most calls the store runs at once.
	Limit() int
}

// DefaultConcurrency is how many calls run at once against a store that
// states no limit.
const DefaultConcurrency = 16

// Concurrency is how many calls to run at once against s: the limit of a
// Limiter in its decorator chain (StoreAs), else DefaultConcurrency. More
// would only queue inside the limit.
func Concurrency(s Store) int {
	if l, ok := StoreAs[Limiter](s); ok && l.Limit() > 0 {
		return l.Limit()
	}
	return DefaultConcurrency
}

// ForEach calls fn(i) for i in 0..n-1, at most Concurrency(s) at once
// (errgroup.SetLimit), waits for all, and returns every error they
// returned, joined. Once ctx is done it starts no more calls. It is the one
// bounded loop over a store's objects (catalog loads, retention, prune).
func ForEach(ctx context.Context, s Store, n int, fn func(i int) error) error {
	errs := make([]error, n)
	var g errgroup.Group
	g.SetLimit(min(Concurrency(s), max(n, 1)))
	for i := range n {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			break
		}
		g.Go(func() error {
			errs[i] = fn(i)
			return nil
		})
	}
	_ = g.Wait() // every error is in errs
	return errors.Join(errs...)
}
