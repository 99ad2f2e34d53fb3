package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// pageKeys is how many keys one range read returns. Pages bound the
// memory of a read and the time the server spends on one request.
const pageKeys = 1000

// BackupOptions describe one snapshot.
type BackupOptions struct {
	Stream string
	Parent *index.SnapshotRef // deduplicate against it; may be nil
	Host   string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logf, when set, receives notes about the stored snapshot; nil discards them.
	Logf func(format string, args ...any)
}

// BackupResult is what Backup stored.
type BackupResult struct {
	ID       repo.ID
	Snapshot *repo.Snapshot
	Revision int64
	Keys     uint64
}

// Backup reads the whole keyspace at one revision and stores it as a
// snapshot of o.Stream with Position = that revision and Time = when the
// revision was fixed (every write up to it had committed by then). If the
// revision is compacted away while the read is under way, it starts over
// at a newer one, a few times.
func Backup(ctx context.Context, cli *clientv3.Client, cfg Config, r *repo.Repository, o BackupOptions) (BackupResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res BackupResult
		res, err = backupOnce(ctx, cli, cfg, r, o)
		if !errors.Is(err, rpctypes.ErrCompacted) {
			return res, err
		}
	}
	return BackupResult{}, fmt.Errorf("etcd %s: snapshot: the revision being read was compacted three times in a row: %w", cfg, err)
}

func backupOnce(ctx context.Context, cli *clientv3.Client, cfg Config, r *repo.Repository, o BackupOptions) (BackupResult, error) {
	// The first page fixes the revision; every later page reads at it.
	first, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithLimit(pageKeys))
	if err != nil {
		return BackupResult{}, rpcErr(cfg, err)
	}
	rev := first.Header.Revision
	at := o.Now()
	pos := uint64(rev)
	pr, pw := io.Pipe()
	var keys uint64
	var readErr error
	proof := r.NewDigester()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sw := NewSnapshotWriter(pw, rev, first.Header.ClusterId)
		err := readPages(ctx, cli, first, rev, func(kv *KeyValue) error {
			proof.Add(kv.Key, kv.Value) // the canonical record (proof.go)
			return sw.Add(kv)
		})
		if err == nil {
			err = sw.Close()
		}
		keys, readErr = sw.Count(), err
		pw.CloseWithError(err)
	}()
	id, snap, err := engine.Backup(ctx, r, pr, engine.BackupOptions{
		Stream: o.Stream, Format: engine.FormatRaw, Time: at, Position: &pos, Parent: o.Parent, Host: o.Host, Logf: o.Logf,
		// Called once the export is read to its end: every key is in the proof.
		Describe: func(s *repo.Snapshot) { s.SetProof(proof.Proof()) },
	})
	// Unblock the reader if the backup stopped before the end.
	pr.CloseWithError(errors.New("backup stopped"))
	<-done
	if err != nil {
		if errors.Is(readErr, rpctypes.ErrCompacted) {
			return BackupResult{}, readErr
		}
		if readErr != nil {
			return BackupResult{}, fmt.Errorf("etcd %s: snapshot at revision %d: read: %w", cfg, rev, readErr)
		}
		return BackupResult{}, fmt.Errorf("etcd %s: snapshot at revision %d: %w", cfg, rev, err)
	}
	return BackupResult{ID: id, Snapshot: snap, Revision: rev, Keys: keys}, nil
}

// readPages calls fn for each key of the keyspace at rev, in key order,
// starting with the page first.
func readPages(ctx context.Context, cli *clientv3.Client, first *clientv3.GetResponse, rev int64, fn func(*KeyValue) error) error {
	resp := first
	for {
		for _, kv := range resp.Kvs {
			if err := fn(&KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
				ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		// The next page starts just after the last key read.
		next := append(append([]byte(nil), resp.Kvs[len(resp.Kvs)-1].Key...), 0)
		var err error
		resp, err = cli.Get(ctx, string(next), clientv3.WithFromKey(), clientv3.WithRev(rev), clientv3.WithLimit(pageKeys))
		if err != nil {
			return err
		}
	}
}
