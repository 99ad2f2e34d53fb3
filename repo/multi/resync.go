package multi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/strata-backup/strata/repo"
	"golang.org/x/sync/errgroup"
)

// Report says what Resync did.
type Report struct {
	// Stores has one entry per store, in the order given to New.
	Stores []StoreReport
	// Unrecoverable lists replicated objects that some store holds but of
	// which no copy passes Verify; Resync leaves them as they are.
	Unrecoverable []string
}

// StoreReport is what Resync wrote to one store. The lists are sorted.
type StoreReport struct {
	Name     string   // the store's label: "store 1 (s3://bucket)"
	Restored []string // objects the store lacked, copied from another store
	Replaced []string // objects whose copy failed Verify, overwritten with a good one
}

// Copied returns how many objects Resync wrote, over all stores.
func (r Report) Copied() int {
	n := 0
	for _, sr := range r.Stores {
		n += len(sr.Restored) + len(sr.Replaced)
	}
	return n
}

// resyncWorkers is how many objects Resync handles at once; each reads
// every store's copy, so this bounds memory at a few metadata objects per
// store.
const resyncWorkers = 8

// maxResyncErrors bounds the failures Resync's error spells out.
const maxResyncErrors = 10

// Resync copies every replicated object (not shards) that some store holds
// onto each store that lacks it or holds a copy failing Verify, taking a
// copy that passes Verify. It lists every store completely, and reads every
// copy of every replicated object to verify it. It fails before writing
// anything if a store cannot be listed; otherwise it goes on past failed
// reads and writes and returns them joined, with the report of what it did
// write. Damaged copies it replaced are also reported by TamperedObjects.
//
// Resync cannot tell an object lost from a store from one deleted while the
// store was unreachable (a failed Delete), and copies it back: do not run it
// while objects are being deleted, and repeat failed deletes first.
func (s *Store) Resync(ctx context.Context) (Report, error) {
	rep := Report{Stores: make([]StoreReport, len(s.stores))}
	for i := range rep.Stores {
		rep.Stores[i].Name = s.labels[i]
	}
	if s.degraded {
		return rep, fmt.Errorf("multi store: resync: %w", ErrReadOnly)
	}
	// Which store has which replicated object. Shards are skipped while
	// listing, so memory follows the metadata, not the data.
	have := make([]map[string]bool, len(s.stores))
	errs := s.each(func(i int, st repo.Store) error {
		have[i] = make(map[string]bool)
		return st.List(ctx, "", func(oi repo.ObjectInfo) error {
			if _, shard := repo.ShardIndex(oi.Name); !shard {
				have[i][oi.Name] = true
			}
			return nil
		})
	})
	if err := s.failed("resync", "list", errs); err != nil {
		return rep, err
	}
	var names []string
	for i, h := range have {
		for name := range h {
			if !slices.ContainsFunc(have[:i], func(prev map[string]bool) bool { return prev[name] }) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)

	var (
		mu       sync.Mutex
		failures []error
	)
	var g errgroup.Group
	g.SetLimit(resyncWorkers)
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res := s.resyncOne(ctx, name, have)
			mu.Lock()
			defer mu.Unlock()
			for _, i := range res.restored {
				rep.Stores[i].Restored = append(rep.Stores[i].Restored, name)
			}
			for _, i := range res.replaced {
				rep.Stores[i].Replaced = append(rep.Stores[i].Replaced, name)
			}
			if res.unrecoverable {
				rep.Unrecoverable = append(rep.Unrecoverable, name)
			}
			failures = append(failures, res.errs...)
			return nil
		})
	}
	_ = g.Wait() // every failure is in failures

	for i := range rep.Stores {
		slices.Sort(rep.Stores[i].Restored)
		slices.Sort(rep.Stores[i].Replaced)
	}
	slices.Sort(rep.Unrecoverable)
	if err := ctx.Err(); err != nil {
		failures = append(failures, err)
	}
	if len(failures) == 0 {
		return rep, nil
	}
	if len(failures) > maxResyncErrors {
		more := len(failures) - maxResyncErrors
		failures = append(failures[:maxResyncErrors:maxResyncErrors], fmt.Errorf("and %d more failures", more))
	}
	return rep, fmt.Errorf("multi store: resync: %w", storeErrors(failures).join())
}

// resyncResult is what resyncOne did to one object: the stores it restored
// the object to or replaced a damaged copy on.
type resyncResult struct {
	restored, replaced []int
	unrecoverable      bool
	errs               []error
}

// resyncOne reads every listed copy of name, and writes a good one to the
// stores that lack it or hold a damaged one.
func (s *Store) resyncOne(ctx context.Context, name string, have []map[string]bool) resyncResult {
	const (
		missing = iota
		good
		damaged
		unknown // the store failed to answer
	)
	var res resyncResult
	state := make([]int, len(s.stores))
	var goodCopy []byte
	for i, st := range s.stores {
		if !have[i][name] {
			continue
		}
		b, err := st.Get(ctx, name)
		switch {
		case errors.Is(err, repo.ErrNotFound):
			// Deleted since the listing, or listed but unreadable: treat as missing.
		case err != nil:
			state[i] = unknown
			res.errs = append(res.errs, fmt.Errorf("get %s: %s: %w", name, s.labels[i], err))
		case s.verify(name, b) != nil:
			state[i] = damaged
		default:
			state[i] = good
			if goodCopy == nil {
				goodCopy = b
			}
		}
	}
	if goodCopy == nil {
		// A store that did not answer may hold a good copy.
		res.unrecoverable = slices.Contains(state, damaged) && !slices.Contains(state, unknown)
		return res
	}
	for i, st := range s.stores {
		if state[i] != missing && state[i] != damaged {
			continue
		}
		if err := st.Put(ctx, name, goodCopy); err != nil {
			res.errs = append(res.errs, fmt.Errorf("put %s: %s: %w", name, s.labels[i], err))
			continue
		}
		if state[i] == damaged {
			res.replaced = append(res.replaced, i)
		} else {
			res.restored = append(res.restored, i)
		}
	}
	if slices.Contains(state, damaged) {
		s.markTampered(name)
	}
	return res
}
