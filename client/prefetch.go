package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/repo"
)

// Manifests fetched ahead: PlanFor hands each page's segment manifests to
// a prefetch as the page arrives, and the restore that follows
// (engine.LoadPlanSegments, reading through the repository's store) gets
// them from Store.Get, so a plan of many pages is not read page by page
// and then manifest by manifest. The bytes are only ever a Get's answer
// fetched earlier: the repository verifies them against their name as it
// would any Get's.
const (
	// prefetchHeld bounds the bytes fetched ahead and not yet taken; past
	// it, later manifests are left to the restore's own Gets.
	prefetchHeld = 64 << 20
	// prefetchMaxObject is the largest answer kept: a segment manifest is
	// at most 1 MiB (FORMAT.md, "Key filter"), and a larger one would be
	// refused by the reader anyway.
	prefetchMaxObject = 1 << 20
	// prefetchWorkers is the GETs one plan's prefetch runs at once, so in
	// flight it holds at most prefetchWorkers × prefetchMaxObject.
	prefetchWorkers = 16
	// prefetchTTL drops what nobody took (a plan that was not restored).
	prefetchTTL = 10 * time.Minute
	// prefetchPages is the pages waiting for a plan's prefetch; a page
	// arriving when they are full is not prefetched.
	prefetchPages = 64
)

// prefetched holds the objects fetched ahead of their Get, by name. Every
// method is safe for concurrent use.
type prefetched struct {
	mu      sync.Mutex
	entries map[string]*fetch
	held    int64 // bytes of done entries still in entries
}

// fetch is one object fetched ahead.
type fetch struct {
	name    string
	added   time.Time
	done    chan struct{} // closed when b and err are set
	b       []byte
	err     error
	running bool // a worker began the GET
	claimed bool // a Get took it before it began: the worker skips it
	counted bool // b counts in held
}

var errSkipped = errors.New("not fetched ahead")

// take hands over the object name when it was fetched ahead, waiting for
// a GET under way; ok is false when it was not (or failed, or had not
// begun), and the caller fetches it itself. An object is handed over once.
func (pf *prefetched) take(ctx context.Context, name string) (b []byte, ok bool) {
	pf.mu.Lock()
	e := pf.entries[name]
	if e == nil {
		pf.mu.Unlock()
		return nil, false
	}
	delete(pf.entries, name)
	if !e.running {
		e.claimed = true
		pf.mu.Unlock()
		return nil, false
	}
	pf.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if e.counted {
		pf.held -= int64(len(e.b))
		e.counted = false
	}
	select {
	case <-e.done:
		return e.b, e.err == nil
	default:
		return nil, false
	}
}

// register adds entries for names not held yet, within prefetchHeld, and
// drops entries older than prefetchTTL.
func (pf *prefetched) register(names []string) []*fetch {
	now := time.Now()
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.entries == nil {
		pf.entries = map[string]*fetch{}
	}
	for name, e := range pf.entries {
		if now.Sub(e.added) > prefetchTTL {
			pf.dropLocked(name, e)
		}
	}
	var out []*fetch
	for _, name := range names {
		if pf.held >= prefetchHeld {
			break
		}
		if pf.entries[name] != nil {
			continue
		}
		e := &fetch{name: name, added: now, done: make(chan struct{})}
		pf.entries[name] = e
		out = append(out, e)
	}
	return out
}

// drop forgets entries (a plan that failed, a page not queued).
func (pf *prefetched) drop(es []*fetch) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	for _, e := range es {
		if pf.entries[e.name] == e {
			pf.dropLocked(e.name, e)
		}
	}
}

func (pf *prefetched) dropLocked(name string, e *fetch) {
	delete(pf.entries, name)
	e.claimed = true // a worker that has not begun skips it
	if e.counted {
		pf.held -= int64(len(e.b))
		e.counted = false
	}
}

// run fetches e unless a Get claimed it first or the budget is spent.
func (pf *prefetched) run(ctx context.Context, s *Store, e *fetch) {
	pf.mu.Lock()
	if e.claimed || pf.held >= prefetchHeld {
		if pf.entries[e.name] == e {
			delete(pf.entries, e.name)
		}
		pf.mu.Unlock()
		e.err = errSkipped
		close(e.done)
		return
	}
	e.running = true
	pf.mu.Unlock()
	b, err := s.getBounded(ctx, e.name, prefetchMaxObject)
	pf.mu.Lock()
	e.b, e.err = b, err
	if err == nil && pf.entries[e.name] == e {
		pf.held += int64(len(b))
		e.counted = true
	}
	pf.mu.Unlock()
	close(e.done)
}

// planPrefetch fetches one plan's segment manifests as its pages arrive.
type planPrefetch struct {
	pf     *prefetched
	st     *Store
	ctx    context.Context
	cancel context.CancelFunc
	pages  chan []*fetch
	queued []*fetch
	done   chan struct{}
}

// startPrefetch begins a plan's prefetch; call add for every page and
// finish at the end.
func (c *Client) startPrefetch(ctx context.Context, r *repo.Repository) *planPrefetch {
	ctx, cancel := context.WithCancel(ctx)
	p := &planPrefetch{pf: &c.prefetched, st: c.Store(), ctx: ctx, cancel: cancel,
		pages: make(chan []*fetch, prefetchPages), done: make(chan struct{})}
	workers := min(prefetchWorkers, repo.Concurrency(r.Store()))
	go func() {
		defer close(p.done)
		var g errgroup.Group
		g.SetLimit(workers)
		for page := range p.pages {
			for _, e := range page {
				g.Go(func() error {
					p.pf.run(p.ctx, p.st, e)
					return nil
				})
			}
		}
		_ = g.Wait() // run returns nothing: a failed fetch is the restore's to retry
	}()
	return p
}

// add queues the manifests of a page's segments.
func (p *planPrefetch) add(keys []repo.SegmentKey) {
	if len(keys) == 0 {
		return
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name()
	}
	es := p.pf.register(names)
	if len(es) == 0 {
		return
	}
	select {
	case p.pages <- es:
		p.queued = append(p.queued, es...)
	default:
		p.pf.drop(es) // the prefetch is behind: the restore fetches these itself
	}
}

// finish ends the plan's pages. When the plan failed, what was fetched
// ahead for it is dropped and fetches not begun are not made.
func (p *planPrefetch) finish(failed bool) {
	close(p.pages)
	if failed {
		p.cancel()
		p.pf.drop(p.queued)
		<-p.done
		return
	}
	// The fetches go on into the restore; the context is released once
	// they are done.
	go func() {
		<-p.done
		p.cancel()
	}()
}

// getBounded is Get refusing an answer over limit bytes before reading it.
func (s *Store) getBounded(ctx context.Context, name string, limit int64) ([]byte, error) {
	resp, err := s.c.call(ctx, http.MethodGet, objectPath(name), nil, nil, nil, false)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %d bytes, over the %d a segment manifest may hold", name, resp.ContentLength, limit)
	}
	return readBody(resp, "GET "+name)
}
