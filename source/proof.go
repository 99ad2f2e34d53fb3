package source

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrUnproven is wrapped when a proof cannot be checked: a snapshot without
// one, a source that defines none, no later snapshot, or a log that does
// not join two snapshots. It is a note, never a pass and never damage.
var ErrUnproven = errors.New("unproven")

// ErrNotMine is returned by a StateProver whose kind the plan's base is not.
var ErrNotMine = errors.New("not a snapshot of this kind")

// StateProof is the proof of a state computed without writing it anywhere:
// the sink of `strata drill` and of replay proofs (FORMAT.md §11.1).
type StateProof struct {
	Proof repo.Proof
	// Reached is the position of the newest event applied, or the base's
	// position when none applied (0 when the base has none).
	Reached uint64
	Events  int64 // events applied after the base
}

// StateProver computes the proof of a plan's state: the base's canonical
// records with every event of the plan applied, as a restore of the plan
// would leave them. It MUST return ErrNotMine, having read at most the
// base's first bytes, when the base is not of its kind; MUST verify every
// byte it reads as a restore does; and MUST return an error wrapping
// repo.ErrProofMismatch when no event applies and the base's recorded
// proof differs from the state computed.
type StateProver func(ctx context.Context, r *repo.Repository, p *index.Plan) (StateProof, error)

var (
	proverMu sync.RWMutex
	provers  []namedProver
)

type namedProver struct {
	name string
	fn   StateProver
}

// RegisterStateProver adds the prover of one kind of snapshot; each
// package that defines a proof calls it from an init function. It panics
// when name is registered twice.
func RegisterStateProver(name string, fn StateProver) {
	proverMu.Lock()
	defer proverMu.Unlock()
	for _, p := range provers {
		if p.name == name {
			panic(fmt.Sprintf("source: state prover %q registered twice", name))
		}
	}
	provers = append(provers, namedProver{name, fn})
}

// ProveState computes the proof of a plan's state through the prover of
// its base's kind. When none claims the base it returns an error wrapping
// ErrUnproven.
func ProveState(ctx context.Context, r *repo.Repository, p *index.Plan) (StateProof, error) {
	proverMu.RLock()
	ps := provers
	proverMu.RUnlock()
	for _, pr := range ps {
		sp, err := pr.fn(ctx, r, p)
		if errors.Is(err, ErrNotMine) {
			continue
		}
		return sp, err
	}
	return StateProof{}, fmt.Errorf("%w: no digesting restore for snapshot %s (a %s export)", ErrUnproven, p.Base.ID.Short(), p.Base.Format)
}

// SnapshotProof recomputes a snapshot's proof from its content and checks
// it against the recorded one. It returns an error wrapping ErrUnproven
// when the snapshot records none, and one wrapping repo.ErrProofMismatch
// when they differ.
func SnapshotProof(ctx context.Context, r *repo.Repository, s index.SnapshotRef) error {
	want, ok := s.Proof()
	if !ok {
		return fmt.Errorf("%w: snapshot %s records no proof", ErrUnproven, s.ID.Short())
	}
	// A plan of the snapshot alone: no segment, so no event applies.
	p := &index.Plan{Stream: s.Stream, Target: index.Target{Time: s.Time}, Base: s}
	if s.Position != nil {
		p.Target = index.Target{Position: *s.Position, ByPos: true}
		p.From = *s.Position + 1
	}
	sp, err := ProveState(ctx, r, p)
	if err != nil {
		return err
	}
	return want.Check("snapshot "+s.ID.Short(), sp.Proof)
}

// ReplayProof checks the replay proof of two snapshots a and b of one
// stream (FORMAT.md §11.1): a's state plus the log up to b's position must
// have exactly b's proof. The error wraps repo.ErrProofMismatch when it
// does not, ErrUnproven when the pair cannot be checked.
func ReplayProof(ctx context.Context, r *repo.Repository, cat *index.Catalog, a, b index.SnapshotRef) (StateProof, error) {
	return ReplayProofBy(ctx, r, cat, a, b, func(p *index.Plan) (StateProof, error) { return ProveState(ctx, r, p) })
}

// PlanProver is a Source that can prove a plan's state by restoring it
// into its target and reading the target back: the replay proof of a
// source whose log only a server can apply (Redis). ProveRestore MUST
// replace what the target holds, MUST verify every byte it reads from the
// repository as a restore does, and MUST return the proof of what the
// target holds afterwards and the position it reached.
type PlanProver interface {
	ProveRestore(ctx context.Context, r *repo.Repository, p *index.Plan) (StateProof, error)
}

// ReplayProofBy is ReplayProof with the state of the plan computed by
// prove instead of ProveState.
func ReplayProofBy(ctx context.Context, r *repo.Repository, cat *index.Catalog, a, b index.SnapshotRef, prove func(*index.Plan) (StateProof, error)) (StateProof, error) {
	want, ok := b.Proof()
	switch {
	case !ok:
		return StateProof{}, fmt.Errorf("%w: snapshot %s records no proof", ErrUnproven, b.ID.Short())
	case a.Position == nil || b.Position == nil:
		return StateProof{}, fmt.Errorf("%w: a snapshot without a log position", ErrUnproven)
	case *b.Position < *a.Position:
		return StateProof{}, fmt.Errorf("%w: snapshot %s is at a lower position than the older %s", ErrUnproven, b.ID.Short(), a.ID.Short())
	}
	p, err := cat.PlanFrom(a.Stream, a, index.Target{Position: *b.Position, ByPos: true})
	if err != nil {
		if errors.Is(err, index.ErrNotRestorable) {
			return StateProof{}, fmt.Errorf("%w: the log does not join them: %v", ErrUnproven, err)
		}
		return StateProof{}, err
	}
	sp, err := prove(p)
	if err != nil {
		return sp, err
	}
	if sp.Reached != *b.Position {
		return sp, fmt.Errorf("%w: the replay reached position %d, not snapshot %s's %d", ErrUnproven, sp.Reached, b.ID.Short(), *b.Position)
	}
	return sp, want.Check(fmt.Sprintf("replay of snapshot %s + log to position %d (snapshot %s)", a.ID.Short(), *b.Position, b.ID.Short()), sp.Proof)
}
