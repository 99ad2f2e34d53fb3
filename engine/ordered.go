package engine

import (
	"context"
	"sync"
)

// ordered is the one ordered-results pipeline of the engine: a producer
// submits items in order, workers process up to n of them at once, and the
// consumer takes them back in submission order, each once its work is
// done. Backup hashes chunk batches through it; Restore fetches frames.
type ordered[T any] struct {
	work  chan *orderedItem[T] // to the workers
	order chan *orderedItem[T] // to the consumer, in submission order
	wg    sync.WaitGroup
}

type orderedItem[T any] struct {
	v     T
	ready chan struct{} // closed when a worker is done with v
}

// newOrdered starts n workers calling process on each submitted item; at
// most ahead items wait for the consumer.
func newOrdered[T any](n, ahead int, process func(*T)) *ordered[T] {
	o := &ordered[T]{work: make(chan *orderedItem[T], n), order: make(chan *orderedItem[T], ahead)}
	for range n {
		o.wg.Go(func() {
			for it := range o.work {
				process(&it.v)
				close(it.ready)
			}
		})
	}
	return o
}

// submit queues v; it reports false, having queued nothing for the
// consumer to wait on, when ctx ends first.
func (o *ordered[T]) submit(ctx context.Context, v T) bool {
	it := &orderedItem[T]{v: v, ready: make(chan struct{})}
	select {
	case o.work <- it:
	case <-ctx.Done():
		return false
	}
	select {
	case o.order <- it:
	case <-ctx.Done():
		return false
	}
	return true
}

// close ends the input: the producer calls it once, when it is done.
func (o *ordered[T]) close() {
	close(o.work)
	close(o.order)
}

// next returns the next item in submission order once processed; ok is
// false after the last. It returns ctx's cause when ctx ends while it
// waits.
func (o *ordered[T]) next(ctx context.Context) (v *T, ok bool, err error) {
	it, ok := <-o.order
	if !ok {
		return nil, false, nil
	}
	select {
	case <-it.ready:
		return &it.v, true, nil
	case <-ctx.Done():
		return nil, true, context.Cause(ctx)
	}
}

// drain discards what remains, so the producer can finish, and waits for
// the workers.
func (o *ordered[T]) drain() {
	for range o.order {
	}
	o.wg.Wait()
}
