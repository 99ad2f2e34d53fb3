package ndjson

import (
	"context"
	"errors"
	"fmt"
	"io"

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
	// LastApplied and LastTime are the position and time of the newest
	// event applied: the state written is the base's plus every event
	// through LastApplied. Both are 0 when no event applied.
	LastApplied uint64
	LastTime    int64
	// Proof is the record count and digest of the state written
	// (FORMAT.md §11.1).
	Proof repo.Proof
}

// RestoreAt writes the state of the plan's stream at its target to w: the
// base snapshot's documents with every event of the plan applied, sorted by
// key. The manifests and every event are read and verified before the
// first byte is written; the snapshot's blobs are verified as they stream.
// The state's proof is computed on the way out (RestoreStats.Proof); when
// no event applies, the state is the base's, and a proof the base records
// must match it, or RestoreAt returns an error wrapping
// repo.ErrProofMismatch once the output is written.
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
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return st, err
	}
	// The day's changes spill to a temporary file past a bound, so memory
	// does not follow the number of documents changed.
	ch := NewSpillingChanges("", DefaultSpillBytes)
	defer ch.Close()
	for i, seg := range segs {
		err := engine.ReadSegment(ctx, r, p.Segments[i], seg, func(e *repo.Event) error {
			st.EventsRead++
			if p.Applies(e.Seq, e.Time) {
				ch.Apply(e)
				st.EventsApplied++
				st.LastApplied, st.LastTime = e.Seq, e.Time
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		st.Segments++
	}
	out := newProofWriter(w, r.NewDigester(), field)
	w = out
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, base, pw, o)
		pw.CloseWithError(err)
		done <- err
	}()
	if base.Sorted {
		st.KeysChanged, err = mergeChanges(pr, field, ch, w)
	} else {
		st.KeysChanged, err = mergeUnsorted(pr, field, ch, w)
	}
	pr.CloseWithError(errAbandoned) // unblock the restore if the merge stopped early
	if rerr := <-done; rerr != nil && !errors.Is(rerr, errAbandoned) {
		return st, rerr
	}
	if err != nil {
		return st, err
	}
	if st.Proof, err = out.proof(); err != nil {
		return st, fmt.Errorf("restore %s at %s: %w", p.Stream, p.Target, err)
	}
	if want, ok := base.Proof(); ok && st.EventsApplied == 0 && Proven(base.Snapshot) {
		return st, want.Check("snapshot "+base.ID.Short(), st.Proof)
	}
	return st, nil
}

var errAbandoned = errors.New("restore abandoned")
