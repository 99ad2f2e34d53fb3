package ndjson

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// RestoreStats say what a point-in-time restore did.
type RestoreStats struct {
	Segments      int
	EventsRead    int64 // events in the segments read
	EventsApplied int64 // events at or before the target
	KeysChanged   int   // keys whose state differs from the base
	LastApplied   uint64
}

// LoadPlan reads and verifies the manifests of a plan's segments: each is
// intact, and each chains to the one before (its Prev names it). Nothing
// is written before this passes.
func LoadPlan(ctx context.Context, r *repo.Repository, p *index.Plan) ([]*repo.Segment, error) {
	segs := make([]*repo.Segment, len(p.Segments))
	errs := make([]error, len(p.Segments))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, k := range p.Segments {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			segs[i], errs[i] = r.LoadSegment(ctx, k)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].Prev == nil || *segs[i].Prev != p.Segments[i-1].ID {
			return nil, &repo.CorruptError{Object: p.Segments[i].Name(), Offset: -1,
				Reason: fmt.Sprintf("does not chain to %s, the segment before it (a segment was replaced, or two writers)", p.Segments[i-1].Name()),
				Hint:   "run 'strata coverage' and 'strata check'"}
		}
	}
	return segs, nil
}

// RestoreAt writes the state of the plan's stream at its target to w: the
// base snapshot's documents with every event of the plan applied, sorted by
// key. The manifests and every event are read and verified before the
// first byte is written; the snapshot's blobs are verified as they stream.
func RestoreAt(ctx context.Context, r *repo.Repository, p *index.Plan, w io.Writer, o engine.RestoreOptions) (RestoreStats, error) {
	var st RestoreStats
	base := p.Base
	if base.Format != engine.FormatNDJSON {
		return st, fmt.Errorf("%w: snapshot %s is a %s export; point-in-time restore applies change events to ndjson exports", index.ErrNotRestorable, base.ID.Short(), base.Format)
	}
	field := base.KeyField
	if field == "" {
		field = DefaultKeyField
	}
	segs, err := LoadPlan(ctx, r, p)
	if err != nil {
		return st, err
	}
	ch := NewChanges()
	for i, seg := range segs {
		err := engine.ReadSegment(ctx, r, p.Segments[i], seg, func(e *repo.Event) error {
			st.EventsRead++
			if p.Applies(e.Seq, e.Time) {
				ch.Apply(e)
				st.EventsApplied++
				st.LastApplied = e.Seq
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		st.Segments++
	}
	st.KeysChanged = ch.Len()

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, base, pw, o)
		pw.CloseWithError(err)
		done <- err
	}()
	if base.Sorted {
		err = Merge(pr, field, ch, w)
	} else {
		err = MergeUnsorted(pr, field, ch, w)
	}
	pr.CloseWithError(errAbandoned) // unblock the restore if the merge stopped early
	if rerr := <-done; rerr != nil && !errors.Is(rerr, errAbandoned) {
		return st, rerr
	}
	return st, err
}

var errAbandoned = errors.New("restore abandoned")
