package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// BackupOptions describe one base snapshot.
type BackupOptions struct {
	Stream string
	Parent *index.SnapshotRef // deduplicate against it; may be nil
	Host   string
	// Position is the log position the base is recorded at (FORMAT.md
	// §22.4); nil stores a base without one, restorable only as itself.
	Position *uint64
}

// BackupResult is what Backup stored.
type BackupResult struct {
	ID       repo.ID
	Snapshot *repo.Snapshot
	Trailer  Trailer
	// Unproven says why the snapshot records no proof; nil when it does.
	Unproven error
}

// Backup takes a base with mongodump --oplog semantics: it notes the
// newest oplog entry, dumps every wanted collection (options, indexes,
// documents in _id order), then stores the oplog entries written during
// the dump. Replaying those entries over the dumped documents gives the
// state at the trailer's End exactly, however the dump and the writes
// interleaved; the snapshot's time is End's wall time.
func Backup(ctx context.Context, cli *mongo.Client, cfg Config, r *repo.Repository, o BackupOptions) (BackupResult, error) {
	fullImage, err := IsFerretDB(ctx, cli)
	if err != nil {
		return BackupResult{}, classify(cfg, err)
	}
	start, startTime, err := lastTimestamp(ctx, cli, fullImage)
	if err != nil {
		return BackupResult{}, fmt.Errorf("mongodb %s: %w", cfg, err)
	}
	var tr Trailer
	var at time.Time
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var err error
		tr, at, err = dump(ctx, cli, cfg, pw, start, startTime, fullImage)
		pw.CloseWithError(err)
		done <- err
	}()
	var id repo.ID
	var snap *repo.Snapshot
	var unproven error
	// engine.Backup needs the time before it starts: it is set through
	// Describe once the dump has ended and End is known.
	id, snap, err = engine.Backup(ctx, r, pr, engine.BackupOptions{
		Stream: o.Stream, Format: engine.FormatNDJSON, Position: o.Position, Parent: o.Parent, Host: o.Host,
		Describe: func(s *repo.Snapshot) {
			s.Time = at.UTC()
			unproven = proveBase(ctx, r, s)
		},
	})
	pr.CloseWithError(errors.New("backup stopped"))
	derr := <-done
	if derr != nil {
		return BackupResult{}, fmt.Errorf("mongodb %s: snapshot: %w", cfg, derr)
	}
	if err != nil {
		return BackupResult{}, fmt.Errorf("mongodb %s: snapshot: %w", cfg, err)
	}
	return BackupResult{ID: id, Snapshot: snap, Trailer: tr, Unproven: unproven}, nil
}

// dump writes a base to w and returns its trailer and the time of its End.
func dump(ctx context.Context, cli *mongo.Client, cfg Config, w io.Writer, start Timestamp, startTime time.Time, fullImage bool) (Trailer, time.Time, error) {
	bw := NewBaseWriter(w)
	dbs := []string{cfg.Database}
	if cfg.Database == "" {
		var err error
		if dbs, err = cli.ListDatabaseNames(ctx, bson.D{}); err != nil {
			return Trailer{}, time.Time{}, classify(cfg, err)
		}
	}
	for _, db := range dbs {
		if SkipDB(db) {
			continue
		}
		specs, err := cli.Database(db).ListCollectionSpecifications(ctx, bson.D{{Key: "type", Value: "collection"}})
		if err != nil {
			return Trailer{}, time.Time{}, fmt.Errorf("list collections of %s: %w", db, err)
		}
		sortSpecs(specs)
		for _, s := range specs {
			if !cfg.wants(db, s.Name) {
				continue
			}
			if err := dumpCollection(ctx, cli.Database(db).Collection(s.Name), db, s, bw); err != nil {
				return Trailer{}, time.Time{}, fmt.Errorf("%s.%s: %w", db, s.Name, err)
			}
		}
	}
	// The entries written while the dump ran.
	filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: start.bson()}}}}
	sort := bson.D{{Key: "$natural", Value: 1}}
	if fullImage {
		// FerretDB commits oplog entries out of timestamp order: take
		// those written before the dump ended, once they have settled,
		// in timestamp order (see capture's poll).
		cutoff := time.Now()
		select {
		case <-ctx.Done():
			return Trailer{}, time.Time{}, ctx.Err()
		case <-time.After(settle):
		}
		filter, sort = settledAfter(start, cutoff), bson.D{{Key: "ts", Value: 1}}
	}
	cur, err := oplogColl(cli).Find(ctx, filter, options.Find().SetSort(sort))
	if err != nil {
		return Trailer{}, time.Time{}, fmt.Errorf("read the oplog: %w", err)
	}
	defer cur.Close(ctx)
	end, endTime := start, startTime
	for cur.Next(ctx) {
		e, err := ParseEntry(cur.Current)
		if err != nil {
			return Trailer{}, time.Time{}, err
		}
		if !e.TS.After(end) {
			return Trailer{}, time.Time{}, fmt.Errorf("oplog entry %s after %s: the oplog is not in timestamp order", e.TS, end)
		}
		end, endTime = e.TS, e.Time()
		if !cfg.relevant(e) {
			continue
		}
		e.Raw = bson.Raw(append([]byte(nil), e.Raw...))
		if err := bw.Oplog(e); err != nil {
			return Trailer{}, time.Time{}, err
		}
	}
	if err := cur.Err(); err != nil {
		return Trailer{}, time.Time{}, fmt.Errorf("read the oplog: %w", err)
	}
	if endTime.IsZero() {
		endTime = time.Now() // an empty oplog: nothing was ever written
	}
	// The oplog must still hold start, else entries between start and the
	// first one read may have been lost to a rollover.
	if !start.IsZero() {
		first, err := FirstTimestamp(ctx, cli)
		if err != nil {
			return Trailer{}, time.Time{}, err
		}
		if first.After(start) {
			return Trailer{}, time.Time{}, fmt.Errorf("the oplog rolled over during the dump (it now starts at %s, after %s): give it more room, or dump fewer collections at once", first, start)
		}
	}
	tr, err := bw.Close(start, end, fullImage)
	return tr, endTime, err
}

func sortSpecs(s []mongo.CollectionSpecification) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Name < s[j-1].Name; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func dumpCollection(ctx context.Context, c *mongo.Collection, db string, s mongo.CollectionSpecification, bw *BaseWriter) error {
	meta := &Collection{NS: db + "." + s.Name, Options: s.Options}
	if meta.Options == nil {
		meta.Options = emptyDoc
	}
	icur, err := c.Indexes().List(ctx)
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for icur.Next(ctx) {
		meta.Indexes = append(meta.Indexes, bson.Raw(append([]byte(nil), icur.Current...)))
	}
	if err := icur.Err(); err != nil {
		icur.Close(ctx)
		return fmt.Errorf("list indexes: %w", err)
	}
	icur.Close(ctx)
	if err := bw.Collection(meta); err != nil {
		return err
	}
	cur, err := c.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := bw.Document(cur.Current); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

var emptyDoc = bson.Raw{5, 0, 0, 0, 0}

// relevant reports whether the capture keeps an oplog entry: no-ops and
// entries of the server's own databases are dropped, and so are entries
// of databases and collections the configuration leaves out. applyOps
// entries are kept whole (their inner operations are filtered on restore).
func (c Config) relevant(e *Entry) bool {
	if e.Op == "n" {
		return false
	}
	db, coll, _ := cutNS(e.NS)
	if e.Op == "c" {
		if v, err := e.O.IndexErr(0); err == nil && v.Key() == "applyOps" {
			return true
		}
		return !SkipDB(db) && (c.Database == "" || db == c.Database)
	}
	if coll == "system.indexes" {
		return !SkipDB(db) && (c.Database == "" || db == c.Database)
	}
	return c.wants(db, coll)
}
