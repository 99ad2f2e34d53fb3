package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrTargetNotEmpty is returned when a restore target holds keys and the
// caller did not force.
var ErrTargetNotEmpty = errors.New("etcd target is not empty")

// RestoreOptions tune a restore. The zero value is valid.
type RestoreOptions struct {
	// Force restores into a cluster that holds keys: they are all deleted
	// first, so the result is exactly the stream's state.
	Force bool
	// TxnOps and TxnBytes bound one transaction (default 128 operations,
	// etcd's default --max-txn-ops, and 1 MiB, under its default 1.5 MiB
	// --max-request-bytes).
	TxnOps, TxnBytes int
	// Log receives progress lines; may be nil.
	Logf func(format string, a ...any)
}

// validate fills the defaults of zero fields; every field's zero value is
// valid.
func (o *RestoreOptions) validate() error {
	if o.TxnOps <= 0 {
		o.TxnOps = 128
	}
	if o.TxnBytes <= 0 {
		o.TxnBytes = 1 << 20
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// RestoreStats say what a restore did.
type RestoreStats struct {
	BaseRevision int64
	BaseKeys     uint64
	Revisions    int64 // revisions applied after the base
	LastRevision int64 // the source revision the target now equals
	Transactions int64
	// SplitRevisions counts revisions too large for one transaction,
	// applied in several.
	SplitRevisions int64
	// LeasedKeys counts keys written without the lease they had in the source.
	LeasedKeys int64
	Deleted    int64 // keys the target held, deleted under Force
	// Proof is the record count and digest of the state written, which the
	// target was read back and found to hold (FORMAT.md §11.1).
	Proof repo.Proof
}

// CountKeys returns how many keys the cluster holds.
func CountKeys(ctx context.Context, cli *clientv3.Client, cfg Config) (int64, error) {
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, rpcErr(cfg, err)
	}
	return resp.Count, nil
}

// LoadRevisions reads and verifies every log event a plan applies, in
// order: segment manifests intact and chained, every revision from the
// plan's From on present exactly once, every event decodable. It stops at
// the plan's target.
func LoadRevisions(ctx context.Context, r *repo.Repository, p *index.Plan) ([]*Revision, error) {
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return nil, err
	}
	var out []*Revision
	err = engine.EachPlanEvent(ctx, r, p, segs, func(k repo.SegmentKey, e *repo.Event) error {
		// Events alias the segment's buffer; keep a copy.
		c := *e
		c.Key, c.Value = bytes.Clone(e.Key), bytes.Clone(e.Value)
		rev, err := DecodeRevisionEvent(&c)
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name(), err)
		}
		out = append(out, rev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Restore writes the plan's state into the cluster: the base snapshot's
// key-values, then each revision after it up to the target, in order, each
// within one transaction when it fits in one (consecutive revisions on
// distinct keys share one). The whole log part is read and verified
// before the first write. Keys are written without leases (FORMAT.md §21.3).
func Restore(ctx context.Context, cli *clientv3.Client, cfg Config, r *repo.Repository, p *index.Plan, o RestoreOptions) (RestoreStats, error) {
	var st RestoreStats
	if err := o.validate(); err != nil {
		return st, err
	}
	if p.Base.Position == nil {
		return st, fmt.Errorf("%w: snapshot %s has no revision; it was not made by backup --source etcd://", index.ErrNotRestorable, p.Base.ID.Short())
	}
	if p.Base.Format != engine.FormatRaw {
		return st, fmt.Errorf("%w: snapshot %s is a %s export, not an etcd snapshot", index.ErrNotRestorable, p.Base.ID.Short(), p.Base.Format)
	}
	n, err := CountKeys(ctx, cli, cfg)
	if err != nil {
		return st, err
	}
	if n > 0 && !o.Force {
		return st, fmt.Errorf("etcd %s: %w: it holds %d keys; restore into an empty cluster, or give --force to delete them first", cfg, ErrTargetNotEmpty, n)
	}
	revs, err := LoadRevisions(ctx, r, p)
	if err != nil {
		return st, err
	}
	if n > 0 {
		resp, err := cli.Delete(ctx, "", clientv3.WithPrefix())
		if err != nil {
			return st, rpcErr(cfg, err)
		}
		st.Deleted = resp.Deleted
		o.Logf("deleted the %d keys the target held (--force)", st.Deleted)
	}
	// The state's proof is computed from what is written (FORMAT.md
	// §11.1) and checked, at the end, against what the target then holds.
	changed := foldRevisions(revs)
	want := r.NewDigester()
	tx := &txnBatcher{ctx: ctx, cli: cli, cfg: cfg, o: &o, st: &st, keys: map[string]struct{}{}}
	err = changed.digest(want, func(digest func(*KeyValue) error) error { return restoreBase(ctx, r, p.Base, tx, &st, digest) })
	if err != nil {
		return st, fmt.Errorf("%w (the target holds a partial restore: restore again with --force)", err)
	}
	st.LastRevision = st.BaseRevision
	// Whole revisions share a transaction while they touch distinct keys
	// (etcd refuses a key twice in one) and fit its bounds: each revision
	// stays atomic and in order, and the target commits (and syncs) once
	// per batch instead of once per revision.
	for _, rev := range revs {
		if !tx.fits(rev) || tx.overlaps(rev) {
			if err := tx.commit(); err != nil {
				return st, fmt.Errorf("apply revisions through %d: %w (the target holds the state at revision %d or earlier: restore again with --force)", st.LastRevision, err, st.LastRevision)
			}
		}
		before := tx.committed
		for i := range rev.Changes {
			c := &rev.Changes[i]
			if c.Op == ChangePut {
				tx.add(clientv3.OpPut(string(c.Key), string(c.Value)), len(c.Key)+len(c.Value))
				if c.Lease != 0 {
					st.LeasedKeys++
				}
			} else {
				tx.add(clientv3.OpDelete(string(c.Key)), len(c.Key))
			}
			tx.keys[string(c.Key)] = struct{}{}
		}
		if tx.err != nil {
			return st, fmt.Errorf("apply revision %d: %w (the target holds a partial state: restore again with --force)", rev.Revision, tx.err)
		}
		if tx.committed != before {
			st.SplitRevisions++
		}
		st.Revisions++
		st.LastRevision = rev.Revision
	}
	if err := tx.commit(); err != nil {
		return st, fmt.Errorf("apply revisions through %d: %w (the target holds a partial state: restore again with --force)", st.LastRevision, err)
	}
	st.Proof = want.Proof()
	if rec, ok := p.Base.Proof(); ok && len(revs) == 0 {
		if err := rec.Check("snapshot "+p.Base.ID.Short(), st.Proof); err != nil {
			return st, err
		}
	}
	got := r.NewDigester()
	if err := targetProof(ctx, cli, cfg, got); err != nil {
		return st, fmt.Errorf("read the target back to verify it: %w", err)
	}
	if err := st.Proof.Check(fmt.Sprintf("etcd %s after the restore", cfg), got.Proof()); err != nil {
		return st, fmt.Errorf("%w (was the target written to during the restore?)", err)
	}
	return st, nil
}

func restoreBase(ctx context.Context, r *repo.Repository, base index.SnapshotRef, tx *txnBatcher, st *RestoreStats, digest func(*KeyValue) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, base, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
		done <- err
	}()
	err := loadBase(pr, base, tx, st, digest)
	pr.CloseWithError(errors.New("restore stopped"))
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func loadBase(src io.Reader, base index.SnapshotRef, tx *txnBatcher, st *RestoreStats, digest func(*KeyValue) error) error {
	sr, err := NewSnapshotReader(src)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", base.ID.Short(), err)
	}
	if uint64(sr.Revision) != *base.Position {
		return fmt.Errorf("%w: snapshot %s: its manifest says revision %d, its data %d", ErrCorrupt, base.ID.Short(), *base.Position, sr.Revision)
	}
	st.BaseRevision = sr.Revision
	for {
		kv, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", base.ID.Short(), err)
		}
		if kv.Lease != 0 {
			st.LeasedKeys++
		}
		// Base keys need no atomicity among themselves: transactions
		// are only batches, committed when full.
		if tx.full(len(kv.Key) + len(kv.Value)) {
			if err := tx.commit(); err != nil {
				return err
			}
		}
		tx.add(clientv3.OpPut(string(kv.Key), string(kv.Value)), len(kv.Key)+len(kv.Value))
		st.BaseKeys++
		if err := digest(kv); err != nil {
			return err
		}
	}
	return tx.commit()
}

// txnBatcher gathers operations into transactions of bounded size. A
// revision that does not fit in one is split (and counted), which is
// harmless in a target nobody reads until the restore ends.
type txnBatcher struct {
	ctx       context.Context
	cli       *clientv3.Client
	cfg       Config
	o         *RestoreOptions
	st        *RestoreStats
	ops       []clientv3.Op
	bytes     int
	keys      map[string]struct{} // keys in ops
	committed int64               // transactions committed
	err       error
}

// fits reports whether rev can join the batch whole.
func (t *txnBatcher) fits(rev *Revision) bool {
	return len(t.ops) == 0 || len(t.ops)+len(rev.Changes) <= t.o.TxnOps && t.bytes+revBytes(rev) <= t.o.TxnBytes
}

// overlaps reports whether rev touches a key the batch holds.
func (t *txnBatcher) overlaps(rev *Revision) bool {
	for i := range rev.Changes {
		if _, ok := t.keys[string(rev.Changes[i].Key)]; ok {
			return true
		}
	}
	return false
}

// revBytes is what a revision adds to a transaction's size.
func revBytes(rev *Revision) int {
	n := 0
	for i := range rev.Changes {
		n += len(rev.Changes[i].Key) + len(rev.Changes[i].Value)
	}
	return n
}

func (t *txnBatcher) full(n int) bool {
	return len(t.ops) > 0 && (len(t.ops) >= t.o.TxnOps || t.bytes+n > t.o.TxnBytes)
}

// add queues op; when the batch is full it commits the batch first,
// which splits the revision being added.
func (t *txnBatcher) add(op clientv3.Op, n int) {
	if t.err != nil {
		return
	}
	if t.full(n) {
		t.err = t.commit()
	}
	t.ops = append(t.ops, op)
	t.bytes += n
}

func (t *txnBatcher) commit() error {
	if t.err != nil {
		return t.err
	}
	if len(t.ops) == 0 {
		return nil
	}
	if _, err := t.cli.Txn(t.ctx).Then(t.ops...).Commit(); err != nil {
		t.err = rpcErr(t.cfg, err)
		return t.err
	}
	t.st.Transactions++
	t.committed++
	t.ops, t.bytes = t.ops[:0], 0
	clear(t.keys)
	return nil
}
