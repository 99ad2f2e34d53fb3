package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// beforeVerify, when set by a test, runs between the restore's writes and
// the read-back of the target.
var beforeVerify func()

// verifyRestore checks a finished restore (FORMAT.md §23.5): the plan's
// state is computed in memory from the repository, checked against the
// base's recorded proof when no log entry applied, and against the proof
// of a snapshot at the position reached (o.Expect); then the target is
// read back, and what it holds in the restore's scope must have the
// computed proof. A state the prover cannot compute is unproven (noted in
// st), never a pass; a mismatch wraps repo.ErrProofMismatch.
func verifyRestore(ctx context.Context, cli *mongo.Client, cfg Config, r *repo.Repository, p *index.Plan, sc *scope, srcDBs map[string]bool, st *RestoreStats, o RestoreOptions) error {
	res, err := ComputeState(ctx, r, p, sc.wants)
	if errors.Is(err, source.ErrUnproven) {
		st.Unproven = err.Error()
		o.Logf("the restored state is unproven: %v", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("compute the state restored, to verify it: %w", err)
	}
	rec, proven := p.Base.Proof()
	switch {
	case proven && res.Events == 0:
		if err := rec.Check("snapshot "+p.Base.ID.Short(), res.Proof); err != nil {
			return err
		}
		st.Verified = "snapshot " + p.Base.ID.Short()
	case o.Expect != nil:
		if want, what, ok := o.Expect(res.Reached); ok {
			if err := want.Check(what, res.Proof); err != nil {
				return err
			}
			st.Verified = what
		}
	}
	if st.Verified == "" {
		st.Unproven = "no snapshot with a proof is at the position reached"
		if !proven {
			st.Unproven = fmt.Sprintf("snapshot %s records no proof (written before MongoDB bases had one)", p.Base.ID.Short())
		}
	}
	for db := range res.DBs {
		if !SkipDB(db) {
			srcDBs[db] = true
		}
	}
	if beforeVerify != nil {
		beforeVerify()
	}
	got := r.NewDigester()
	t0 := time.Now()
	for db := range srcDBs {
		if err := readBack(ctx, cli, cfg, sc, db, got); err != nil {
			return fmt.Errorf("read the target back to verify it: %w", err)
		}
	}
	st.ReadBack = time.Since(t0)
	st.Proof = got.Proof()
	what := fmt.Sprintf("mongodb %s after the restore, against the state computed from snapshot %s and %d oplog entries", cfg, p.Base.ID.Short(), res.Events)
	if err := res.Scoped.Check(what, st.Proof); err != nil {
		return fmt.Errorf("%w (was the target written to during the restore?)", err)
	}
	st.Checked = true
	return nil
}

// readBack digests the documents of source database db's collections in
// the restore's scope as the target holds them, named as in the source.
func readBack(ctx context.Context, cli *mongo.Client, cfg Config, sc *scope, db string, d *repo.Digester) error {
	tdb := cli.Database(sc.target(db))
	names, err := tdb.ListCollectionNames(ctx, bson.D{{Key: "type", Value: "collection"}})
	if err != nil {
		return classify(cfg, err)
	}
	for _, name := range names {
		if !sc.wants(db, name) {
			continue
		}
		ns := db + "." + name
		cur, err := tdb.Collection(name).Find(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
		for cur.Next(ctx) {
			k, v, err := CanonicalRecord(ns, cur.Current)
			if err != nil {
				cur.Close(ctx)
				return fmt.Errorf("%s: %w", ns, err)
			}
			d.Add(k, v)
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
	}
	return nil
}
