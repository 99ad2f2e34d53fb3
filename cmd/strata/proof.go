package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// replayProofs checks the replay proof (FORMAT.md §11.1) of every pair of
// consecutive snapshots of every stream in cat: the older one plus the log
// up to the newer one's position must give the newer one's proof. Pairs
// that cannot be checked are notes; a mismatch, or damage met on the way,
// is a problem.
func replayProofs(ctx context.Context, r *repo.Repository, cat *index.Catalog) (notes, problems []string, err error) {
	streams := map[string]bool{}
	var order []string
	for _, s := range cat.Snapshots {
		if !streams[s.Stream] {
			streams[s.Stream] = true
			order = append(order, s.Stream)
		}
	}
	all := cat
	for _, stream := range order {
		if all.Untrusted {
			// A server's catalog of every stream lists no log: ask for the stream's.
			var err error
			if cat, err = index.LoadStreamCatalog(ctx, r, stream); cat == nil {
				return notes, problems, err
			}
		}
		snaps := cat.Stream(stream)
		// Unproven pairs are one note per stream: a Redis stream's every
		// pair is unproven for the same reason.
		unproven, why := 0, ""
		for i := range snaps {
			if i == 0 {
				if err := ownProof(ctx, r, snaps[0], &problems); err != nil {
					return notes, problems, err
				}
				continue
			}
			a, b := snaps[i-1], snaps[i]
			_, err := source.ReplayProof(ctx, r, cat, a, b)
			label := fmt.Sprintf("replay proof of %s, snapshot %s to %s", stream, a.ID.Short(), b.ID.Short())
			switch {
			case err == nil:
			case errors.Is(err, source.ErrUnproven):
				if unproven++; why == "" {
					why = fmt.Sprintf("%s: %v", label, err)
				}
				// Without the replay (a Redis log needs a server), the
				// snapshot's own proof is still checked.
				if err := ownProof(ctx, r, b, &problems); err != nil {
					return notes, problems, err
				}
			case ctx.Err() != nil:
				return notes, problems, ctx.Err()
			case exitCode(err) == exitDamage:
				problems = append(problems, fmt.Sprintf("%s: %v", label, err))
			default:
				return notes, problems, fmt.Errorf("%s: %w", label, err)
			}
		}
		switch {
		case unproven == 1:
			notes = append(notes, why)
		case unproven > 1:
			notes = append(notes, fmt.Sprintf("%d of %d snapshot pairs of %s are unproven; the first: %s", unproven, len(snaps)-1, stream, why))
		}
	}
	return notes, problems, nil
}

// ownProof checks a snapshot's recorded proof against its content, when
// it records one: a mismatch or damage is a problem, a snapshot its
// source cannot prove alone is left to the notes of the replay proofs.
func ownProof(ctx context.Context, r *repo.Repository, s index.SnapshotRef, problems *[]string) error {
	if _, ok := s.Proof(); !ok {
		return nil
	}
	err := source.SnapshotProof(ctx, r, s)
	switch {
	case err == nil, errors.Is(err, source.ErrUnproven):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case exitCode(err) == exitDamage:
		*problems = append(*problems, fmt.Sprintf("proof of %s snapshot %s: %v", s.Stream, s.ID.Short(), err))
		return nil
	}
	return fmt.Errorf("proof of %s snapshot %s: %w", s.Stream, s.ID.Short(), err)
}
