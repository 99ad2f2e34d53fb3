package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrNoRetention: the repository's store cannot hold objects under retention.
var ErrNoRetention = errors.New("the store has no object retention (Object Lock)")

// RetentionResult counts what ExtendRetention did.
type RetentionResult struct {
	Objects int      // objects whose retention now reaches until
	Missing []string // referenced objects that were not there
}

// RetentionReport is what RetainReferenced did.
type RetentionReport struct {
	RetentionResult
	Until time.Time // the retain-until every referenced object now has
	Mode  string    // the layout's retention mode
}

// Log reports the extension, and every referenced object found missing.
func (rep RetentionReport) Log(logf func(format string, args ...any)) {
	logf("retention: %d referenced objects retained (%s) until %s", rep.Objects, rep.Mode, rep.Until.UTC().Format(time.RFC3339))
	for _, n := range rep.Missing {
		logf("retention: referenced object %s is missing (run strata check)", n)
	}
}

// RetainReferenced extends the retention of everything still referenced to
// now + the retention in the repository's store layout (FORMAT.md §17), so
// an old base never expires under a newer snapshot that deduplicates
// against it. Backup calls it after every snapshot it writes, so every path
// that writes one (the CLI, Redis and etcd bases) gets it. It does nothing
// and returns nil, false when the layout sets no retention or the store
// cannot hold objects under one (an index server's client: retention is the
// storage's, extended where the store is).
func RetainReferenced(ctx context.Context, r *repo.Repository) (RetentionReport, bool, error) {
	var rep RetentionReport
	if _, ok := r.Store().(repo.Retainer); !ok {
		return rep, false, nil
	}
	b, err := r.Store().Get(ctx, repo.LayoutName)
	if errors.Is(err, repo.ErrNotFound) {
		return rep, false, nil
	} else if err != nil {
		return rep, false, fmt.Errorf("retention: read the store layout: %w", err)
	}
	l, err := repo.DecodeLayout(b)
	if err != nil {
		return rep, false, fmt.Errorf("retention: %w", err)
	}
	if l.RetentionPeriod() <= 0 {
		return rep, false, nil
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		return rep, false, fmt.Errorf("retention: the catalog is incomplete, so nothing is extended: %w", err)
	}
	rep.Until, rep.Mode = time.Now().Add(l.RetentionPeriod()), l.Mode
	rep.RetentionResult, err = ExtendRetention(ctx, r, cat, rep.Until)
	if err != nil {
		return rep, false, fmt.Errorf("retention: %w", err)
	}
	return rep, true, nil
}

// ExtendRetention extends the retention of every object a snapshot or a log
// segment in cat may still need, so a base kept for years is never left
// unprotected while newer objects are: the config, key files and layout,
// every snapshot and segment manifest, every index file, and every shard of
// their packs and of segment packs, except packs a prune has marked as
// unreferenced: those are left to expire, so the prune sweep can remove them.
func ExtendRetention(ctx context.Context, r *repo.Repository, cat *index.Catalog, until time.Time) (RetentionResult, error) {
	var res RetentionResult
	ret, ok := r.Store().(repo.Retainer)
	if !ok {
		return res, ErrNoRetention
	}
	names := []string{repo.ConfigName}
	add := func(prefix string) error {
		return r.Store().List(ctx, prefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil })
	}
	if err := add(repo.KeysPrefix); err != nil {
		return res, err
	}
	if _, err := r.Store().Stat(ctx, repo.LayoutName); err == nil {
		names = append(names, repo.LayoutName)
	}
	for _, s := range cat.Snapshots {
		names = append(names, repo.SnapshotName(s.ID))
	}
	// Every index file and its packs, but for packs a prune has marked as
	// unreferenced: those are left to expire so the sweep can delete them.
	// (Snapshots' own index lists can name files a prune replaced, so the
	// files present are what counts.)
	marked, err := PruneMarks(ctx, r.Store())
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	ids, err := r.ListIDs(ctx, repo.IndexPrefix)
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	packs := map[repo.ID]repo.PackInfo{}
	for _, id := range ids {
		f, err := r.LoadIndex(ctx, id)
		if err != nil {
			return res, fmt.Errorf("retention: %w", err)
		}
		names = append(names, repo.IndexName(id))
		for _, p := range f.Packs {
			if _, gone := marked[p.ID]; !gone {
				packs[p.ID] = p
			}
		}
	}
	for _, l := range cat.Logs {
		for _, k := range l.All() {
			seg, err := r.LoadSegment(ctx, k)
			if err != nil {
				return res, fmt.Errorf("retention: %w", err)
			}
			names = append(names, k.Name())
			packs[seg.Pack.ID] = seg.Pack.Info()
		}
	}
	for _, p := range packs {
		for i := range p.K + p.M {
			names = append(names, repo.ShardName(p.ID, i))
		}
	}
	var mu sync.Mutex
	err = repo.ForEach(ctx, r.Store(), len(names), func(i int) error {
		n := names[i]
		err := ret.RetainUntil(ctx, n, until)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, repo.ErrNotFound):
			res.Missing = append(res.Missing, n)
		case err != nil:
			return fmt.Errorf("%s: %w", n, err)
		default:
			res.Objects++
		}
		return nil
	})
	return res, err
}
