package etcd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// The canonical record of an etcd key (FORMAT.md §11.1, §21.1) is its key
// and its value. Revisions, versions and leases are left out: a restore
// renumbers the first two and drops leases (§21.3), so they are not part
// of the state a restore can give back or a proof can compare.

func init() { source.RegisterStateProver("etcd", proveState) }

// netChanges folds revisions into the last change of each key they touch.
type netChanges map[string]*Change

func foldRevisions(revs []*Revision) netChanges {
	m := netChanges{}
	for _, rev := range revs {
		for i := range rev.Changes {
			m[string(rev.Changes[i].Key)] = &rev.Changes[i]
		}
	}
	return m
}

// digest adds the state the changes leave to d: the base's key-values
// (through each, as base calls it) that no change touched, then every key
// whose last change is a put.
func (m netChanges) digest(d *repo.Digester, base func(fn func(kv *KeyValue) error) error) error {
	err := base(func(kv *KeyValue) error {
		if _, ok := m[string(kv.Key)]; !ok {
			d.Add(kv.Key, kv.Value)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range m {
		if c.Op == ChangePut {
			d.Add(c.Key, c.Value)
		}
	}
	return nil
}

// eachBaseKey streams the base snapshot's key-values to fn, verifying its
// encoding and its revision against the manifest. It returns
// source.ErrNotMine when the base is not an etcd snapshot.
func eachBaseKey(ctx context.Context, r *repo.Repository, base index.SnapshotRef, fn func(kv *KeyValue) error) error {
	if base.Format != engine.FormatRaw || base.Position == nil {
		return source.ErrNotMine
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, base, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
		done <- err
	}()
	err := func() error {
		br := bufio.NewReaderSize(pr, 64<<10)
		if head, err := br.Peek(len(snapshotMagic)); err != nil || string(head) != snapshotMagic {
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return err
			}
			return source.ErrNotMine
		}
		sr, err := NewSnapshotReader(br)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", base.ID.Short(), err)
		}
		if uint64(sr.Revision) != *base.Position {
			return fmt.Errorf("%w: snapshot %s: its manifest says revision %d, its data %d", ErrCorrupt, base.ID.Short(), *base.Position, sr.Revision)
		}
		for {
			kv, err := sr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", base.ID.Short(), err)
			}
			if err := fn(kv); err != nil {
				return err
			}
		}
	}()
	pr.CloseWithError(errors.New("proof stopped"))
	if rerr := <-done; rerr != nil && (err == nil || errors.Is(err, source.ErrNotMine)) {
		return rerr
	}
	return err
}

// proveState is the StateProver of etcd snapshots: the plan's state,
// digested without a cluster. Memory is the keys the revisions touch.
func proveState(ctx context.Context, r *repo.Repository, p *index.Plan) (source.StateProof, error) {
	if p.Base.Format != engine.FormatRaw || p.Base.Position == nil {
		return source.StateProof{}, source.ErrNotMine
	}
	// Another source's raw base (Redis) must not have its log read as
	// etcd revisions: look at the base's first bytes first.
	if mine, err := isEtcdSnapshot(ctx, r, p.Base); err != nil || !mine {
		if err == nil {
			err = source.ErrNotMine
		}
		return source.StateProof{}, err
	}
	revs, err := LoadRevisions(ctx, r, p)
	if err != nil {
		return source.StateProof{}, err
	}
	d := r.NewDigester()
	err = foldRevisions(revs).digest(d, func(fn func(*KeyValue) error) error { return eachBaseKey(ctx, r, p.Base, fn) })
	if err != nil {
		return source.StateProof{}, err
	}
	sp := source.StateProof{Proof: d.Proof(), Reached: *p.Base.Position, Events: int64(len(revs))}
	if len(revs) > 0 {
		sp.Reached = uint64(revs[len(revs)-1].Revision)
	}
	if want, ok := p.Base.Proof(); ok && len(revs) == 0 {
		return sp, want.Check("snapshot "+p.Base.ID.Short(), sp.Proof)
	}
	return sp, nil
}

// isEtcdSnapshot reports whether a snapshot's export starts with the etcd
// snapshot magic, reading its first blobs only.
func isEtcdSnapshot(ctx context.Context, r *repo.Repository, base index.SnapshotRef) (bool, error) {
	return engine.SnapshotHasPrefix(ctx, r, base, []byte(snapshotMagic))
}

// targetProof digests what the cluster holds now, read at one revision.
func targetProof(ctx context.Context, cli *clientv3.Client, cfg Config, d *repo.Digester) error {
	first, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithLimit(pageKeys))
	if err != nil {
		return rpcErr(cfg, err)
	}
	return readPages(ctx, cli, first, first.Header.Revision, func(kv *KeyValue) error {
		d.Add(kv.Key, kv.Value)
		return nil
	})
}
