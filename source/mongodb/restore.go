package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrTargetNotEmpty is returned when a restore target holds collections the
// restore would write and the caller did not force.
var ErrTargetNotEmpty = errors.New("mongodb target is not empty")

// RestoreOptions tune a restore. The zero value restores everything into
// databases of the same names.
type RestoreOptions struct {
	// Force restores into a target that holds collections of the restore's
	// scope: they are dropped first, so the result is exactly the stream's.
	Force bool
	// Collections restores only these collections (names, or db.name);
	// empty means all.
	Collections []string
	// Database, when set, receives the collections of the stream's one
	// database (a stream of several databases is refused).
	Database string
	// Batch bounds the writes sent in one command; default 1000.
	Batch int
	// Log receives progress lines; may be nil.
	Logf func(format string, a ...any)
	// Expect, when set, returns the recorded proof of a snapshot at the
	// log position the restore reached, with what names it, and false when
	// there is none: the state restored must match it.
	Expect func(pos uint64) (repo.Proof, string, bool)
}

// RestoreStats say what a restore did.
type RestoreStats struct {
	BaseEnd     Timestamp // the oplog point the base is exact at
	Collections int64
	Documents   int64
	Indexes     int64
	BaseOplog   int64     // entries of the base replayed over its documents
	Entries     int64     // log entries applied after the base
	Last        Timestamp // the newest oplog entry the target now reflects
	Dropped     int64     // target collections dropped under Force
	Missing     int64     // updates of documents the target did not hold (idempotent replay)
	Through     uint64    // the last log position applied (0: none after the base)
	// Proof is what the target holds in the restore's scope, read back
	// when the restore is done (FORMAT.md §11.1, §23.5); it equals the
	// state computed in memory from the base and log. Verified names the
	// recorded proof that state also matched, "" when none applies
	// (Unproven then says why).
	Proof    repo.Proof
	Verified string
	Unproven string
	Checked  bool          // the target was read back and matched the computed state
	Verify   time.Duration // spent verifying: the state computed, the target read back
	// Server is the time spent waiting on the target's document writes
	// (inserts of the base's documents and bulk writes of the log's).
	Server time.Duration
	// ReadBack is the part of Verify spent reading the target back.
	ReadBack time.Duration
}

// LoggedEntry is one oplog entry of a plan with how to decode it.
type LoggedEntry struct {
	Seq   uint64
	Entry *Entry
	Opts  OpsOptions
	Ops   []Op
}

// LoadEntries reads and verifies every log event a plan applies, in
// order: manifests intact and chained, every position from the plan's
// From on present exactly once, every entry decodable into writes. It
// stops at the plan's target.
func LoadEntries(ctx context.Context, r *repo.Repository, p *index.Plan) ([]LoggedEntry, error) {
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return nil, err
	}
	var out []LoggedEntry
	var last Timestamp
	err = engine.EachPlanEvent(ctx, r, p, segs, func(k repo.SegmentKey, ev *repo.Event) error {
		// Events alias the segment's buffer; keep a copy.
		c := *ev
		c.Key, c.Value = bytes.Clone(ev.Key), bytes.Clone(ev.Value)
		e, o, err := DecodeOplogEvent(&c)
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name(), err)
		}
		if len(out) > 0 && !e.TS.After(last) {
			return &repo.CorruptError{Object: k.Name(), Offset: -1,
				Reason: fmt.Sprintf("oplog entry %s at position %d after %s", e.TS, ev.Seq, last),
				Hint:   "entries must ascend; run 'strata check'"}
		}
		last = e.TS
		ops, err := e.Ops(o)
		if err != nil {
			return fmt.Errorf("position %d: %w", ev.Seq, err)
		}
		out = append(out, LoggedEntry{Seq: ev.Seq, Entry: e, Opts: o, Ops: ops})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scope says which namespaces a restore writes and where.
type scope struct {
	colls    map[string]bool // wanted: "name" or "db.name"; empty: all
	database string
	srcDB    string // the one source database when database is set
}

func (s *scope) wants(db, coll string) bool {
	if SkipDB(db) || skipColl(coll) {
		return false
	}
	return len(s.colls) == 0 || s.colls[coll] || s.colls[db+"."+coll]
}

func (s *scope) target(db string) string {
	if s.database != "" {
		return s.database
	}
	return db
}

// Restore writes the plan's state into the target: the base's
// collections (options, documents, then indexes), the oplog entries the
// base holds, then every log entry after the base up to the target, in
// order. The log is read and verified before the first write.
func Restore(ctx context.Context, cli *mongo.Client, cfg Config, r *repo.Repository, p *index.Plan, o RestoreOptions) (RestoreStats, error) {
	var st RestoreStats
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if p.Base.Format != engine.FormatNDJSON || p.Base.Position == nil && len(p.Segments) > 0 {
		return st, fmt.Errorf("%w: snapshot %s is not a MongoDB base with a position (made by backup or log --source mongodb://)", index.ErrNotRestorable, p.Base.ID.Short())
	}
	sc := &scope{colls: map[string]bool{}, database: o.Database}
	for _, c := range o.Collections {
		sc.colls[c] = true
	}
	// The log is read and verified before the first write, and read again
	// as it is applied: memory does not grow with the log.
	var segs []*repo.Segment
	if len(p.Segments) > 0 {
		var err error
		if segs, err = engine.LoadPlanSegments(ctx, r, p); err != nil {
			return st, err
		}
	}
	srcDBs := map[string]bool{}
	if err := eachLogged(ctx, r, p, segs, func(le *LoggedEntry) error {
		for _, op := range le.Ops {
			if !SkipDB(op.DB) {
				srcDBs[op.DB] = true
			}
		}
		return nil
	}); err != nil {
		return st, err
	}
	// The base's namespaces, read before any write to check the target.
	var nss []string
	if err := readBase(ctx, r, p.Base, func(br *BaseReader) error {
		for {
			rec, err := br.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if c := rec.Collection; c != nil && sc.wants(c.DB(), c.Name()) {
				nss = append(nss, c.NS)
				srcDBs[c.DB()] = true
			}
		}
	}); err != nil {
		return st, err
	}
	if o.Database != "" && len(srcDBs) > 1 {
		return st, fmt.Errorf("the stream holds %d databases; restore them under their own names (a target URL without a database), or name one with --collections DB.COLL", len(srcDBs))
	}
	if err := checkTarget(ctx, cli, cfg, sc, nss, srcDBs, o, &st); err != nil {
		return st, err
	}
	a := &applier{ctx: ctx, cli: cli, sc: sc, batch: o.Batch, st: &st, pending: map[string][]mongo.WriteModel{}}
	// The base: collections and documents, then its oplog entries.
	var baseOplog []*Entry
	var tr Trailer
	err := readBase(ctx, r, p.Base, func(br *BaseReader) error {
		var cur *Collection
		var docs []any
		var size int
		flushDocs := func() error {
			if len(docs) == 0 {
				return nil
			}
			t0 := time.Now()
			_, err := a.coll(cur.DB(), cur.Name()).InsertMany(ctx, docs)
			st.Server += time.Since(t0)
			docs, size = docs[:0], 0
			return err
		}
		endColl := func() error {
			if cur == nil {
				return nil
			}
			if err := flushDocs(); err != nil {
				return fmt.Errorf("%s: insert: %w", cur.NS, err)
			}
			n, err := a.createIndexes(cur.DB(), cur.Name(), cur.Indexes)
			st.Indexes += n
			if err != nil {
				return fmt.Errorf("%s: %w", cur.NS, err)
			}
			cur = nil
			return nil
		}
		for {
			rec, err := br.Next()
			if err == io.EOF {
				tr = br.Trailer()
				return endColl()
			}
			if err != nil {
				return err
			}
			switch {
			case rec.Collection != nil:
				if err := endColl(); err != nil {
					return err
				}
				c := rec.Collection
				if !sc.wants(c.DB(), c.Name()) {
					continue
				}
				if err := a.create(c.DB(), c.Name(), c.Options); err != nil {
					return fmt.Errorf("%s: create: %w", c.NS, err)
				}
				cur = c
				st.Collections++
			case rec.Document != nil:
				if cur == nil {
					continue
				}
				docs = append(docs, rec.Document)
				size += len(rec.Document)
				st.Documents++
				if len(docs) >= o.Batch || size >= 8<<20 {
					if err := flushDocs(); err != nil {
						return fmt.Errorf("%s: insert: %w", cur.NS, err)
					}
				}
			case rec.Oplog != nil:
				if err := endColl(); err != nil {
					return err
				}
				baseOplog = append(baseOplog, rec.Oplog)
			}
		}
	})
	if err != nil {
		return st, fmt.Errorf("%w (the target holds a partial restore: restore again with --force)", err)
	}
	st.BaseEnd, st.Last = tr.EndTS(), tr.EndTS()
	a.replay = true
	for _, e := range baseOplog {
		ops, err := e.Ops(OpsOptions{FullImageUpdates: tr.FullImageUpdates})
		if err != nil {
			return st, fmt.Errorf("base %s: %w (the target holds a partial restore)", p.Base.ID.Short(), err)
		}
		if err := a.apply(ops); err != nil {
			return st, fmt.Errorf("base %s: replay oplog entry %s: %w (the target holds a partial restore: restore again with --force)", p.Base.ID.Short(), e.TS, err)
		}
		st.BaseOplog++
	}
	if err := a.flush(); err != nil {
		return st, fmt.Errorf("base %s: replay its oplog: %w (the target holds a partial restore: restore again with --force)", p.Base.ID.Short(), err)
	}
	a.replay = false
	err = eachLogged(ctx, r, p, segs, func(le *LoggedEntry) error {
		if !le.Entry.TS.After(st.BaseEnd) {
			return fmt.Errorf("%w: position %d holds oplog entry %s, not after the base's end %s: the base and the log disagree", ErrCorrupt, le.Seq, le.Entry.TS, st.BaseEnd)
		}
		if err := a.apply(le.Ops); err != nil {
			return fmt.Errorf("apply oplog entry %s (position %d): %w", le.Entry.TS, le.Seq, err)
		}
		st.Entries++
		st.Last = le.Entry.TS
		st.Through = le.Seq
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("%w (the target holds a partial state: restore again with --force)", err)
	}
	if err := a.flush(); err != nil {
		return st, fmt.Errorf("apply the log through %s: %w (the target holds a partial state: restore again with --force)", st.Last, err)
	}
	vstart := time.Now()
	err = verifyRestore(ctx, cli, cfg, r, p, sc, srcDBs, &st, o)
	st.Verify = time.Since(vstart)
	return st, err
}

// checkTarget refuses a target holding collections in the restore's scope
// unless o.Force, which drops them.
func checkTarget(ctx context.Context, cli *mongo.Client, cfg Config, sc *scope, nss []string, srcDBs map[string]bool, o RestoreOptions, st *RestoreStats) error {
	dbs := map[string]bool{}
	for db := range srcDBs {
		dbs[sc.target(db)] = true
	}
	var busy []string
	for db := range dbs {
		names, err := cli.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return classify(cfg, err)
		}
		for _, n := range names {
			if skipColl(n) {
				continue
			}
			// A collection-level restore only needs its own collections free.
			if len(sc.colls) > 0 && !sc.colls[n] && !sc.colls[db+"."+n] && !restored(nss, sc, db, n) {
				continue
			}
			busy = append(busy, db+"."+n)
		}
	}
	sort.Strings(busy)
	if len(busy) == 0 {
		return nil
	}
	if !o.Force {
		return fmt.Errorf("mongodb %s: %w: it holds %d collections the restore would write (%s); restore into an empty target, or give --force to drop them first", cfg, ErrTargetNotEmpty, len(busy), summarize(busy))
	}
	for _, ns := range busy {
		db, coll, _ := cutNS(ns)
		if err := cli.Database(db).Collection(coll).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: %w", ns, err)
		}
		st.Dropped++
	}
	o.Logf("dropped the %d collections of the target in the restore's scope (--force)", st.Dropped)
	return nil
}

func restored(nss []string, sc *scope, db, coll string) bool {
	for _, ns := range nss {
		d, c, _ := cutNS(ns)
		if sc.target(d) == db && c == coll {
			return true
		}
	}
	return false
}

func summarize(s []string) string {
	if len(s) > 5 {
		return fmt.Sprintf("%v and %d more", s[:5], len(s)-5)
	}
	return fmt.Sprint(s)
}

// applier sends writes to the target, batching document writes per
// collection (ordered, so each collection's writes keep their order) and
// flushing every batch before a command or an in-memory diff.
type applier struct {
	ctx     context.Context
	cli     *mongo.Client
	sc      *scope
	batch   int
	st      *RestoreStats
	pending map[string][]mongo.WriteModel // by target "db.coll"
	n       int
	ids     map[string]bool // "ns\x00_id" of the pending writes
	// replay is set while the base's own entries are applied over its
	// documents, which may already reflect them: writes are idempotent.
	replay bool
}

func (a *applier) coll(db, coll string) *mongo.Collection {
	return a.cli.Database(a.sc.target(db)).Collection(coll)
}

func (a *applier) flush() error {
	keys := make([]string, 0, len(a.pending))
	for k := range a.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, ns := range keys {
		models := a.pending[ns]
		if len(models) == 0 {
			continue
		}
		db, coll, _ := cutNS(ns)
		t0 := time.Now()
		_, err := a.cli.Database(db).Collection(coll).BulkWrite(a.ctx, models, options.BulkWrite().SetOrdered(orderedBulk))
		a.st.Server += time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
		a.pending[ns] = models[:0]
	}
	a.n = 0
	clear(a.ids)
	return nil
}

func (a *applier) add(op *Op, m mongo.WriteModel) error {
	ns := a.sc.target(op.DB) + "." + op.Coll
	// One command changes a document at most once: FerretDB stalls on a
	// batch of many upserts of one _id (a hot counter).
	key := ns + "\x00" + string(op.ID.Value)
	if a.ids[key] {
		if err := a.flush(); err != nil {
			return err
		}
	}
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	a.ids[key] = true
	a.pending[ns] = append(a.pending[ns], m)
	a.n++
	if a.n >= a.batch {
		return a.flush()
	}
	return nil
}

// orderedBulk makes bulk writes ordered, for benchmarks to compare; a
// batch never changes one document twice (add flushes first), so its
// order is free and they are unordered.
var orderedBulk = false

// ignorable reports errors of idempotent replay: what the command would
// create exists, or what it would remove is gone.
func ignorable(err error) bool {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		switch ce.Code {
		case 26, 27, 48: // NamespaceNotFound, IndexNotFound, NamespaceExists
			return true
		}
	}
	return false
}

func (a *applier) apply(ops []Op) error {
	for i := range ops {
		op := &ops[i]
		if op.Kind == OpRename {
			if !a.sc.wants(op.DB, op.Coll) {
				continue
			}
			if len(a.sc.colls) > 0 {
				a.sc.colls[op.ToDB+"."+op.To] = true
			}
		} else if op.Kind != OpDropDatabase && !a.sc.wants(op.DB, op.Coll) {
			continue
		}
		id := bson.D{{Key: "_id", Value: op.ID}}
		var err error
		switch op.Kind {
		case OpInsert:
			if a.replay {
				// The base's documents may already hold it.
				err = a.add(op, mongo.NewReplaceOneModel().SetFilter(id).SetReplacement(op.Doc).SetUpsert(true))
			} else {
				// After the base an insert is of a document that does not
				// exist: a duplicate key means the log and base disagree.
				err = a.add(op, mongo.NewInsertOneModel().SetDocument(op.Doc))
			}
		case OpReplace:
			err = a.add(op, mongo.NewReplaceOneModel().SetFilter(id).SetReplacement(op.Doc).SetUpsert(true))
		case OpUpdate:
			if len(op.Update) > 0 {
				err = a.add(op, mongo.NewUpdateOneModel().SetFilter(id).SetUpdate(op.Update))
			}
		case OpDelete:
			err = a.add(op, mongo.NewDeleteOneModel().SetFilter(id))
		case OpDiff:
			err = a.diff(op, id)
		default:
			if err = a.flush(); err == nil {
				err = a.command(op)
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s.%s: %w", op.Kind, op.DB, op.Coll, err)
		}
	}
	return nil
}

func (a *applier) diff(op *Op, id bson.D) error {
	if err := a.flush(); err != nil {
		return err
	}
	c := a.coll(op.DB, op.Coll)
	var doc bson.D
	err := c.FindOne(a.ctx, id).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		a.st.Missing++
		return nil
	}
	if err != nil {
		return err
	}
	nd, err := ApplyDiff(doc, op.Diff)
	if err != nil {
		return err
	}
	_, err = c.ReplaceOne(a.ctx, id, nd)
	return err
}

func (a *applier) create(db, coll string, opts bson.Raw) error {
	cmd := bson.D{{Key: "create", Value: coll}}
	elems, err := opts.Elements()
	if err != nil {
		return fmt.Errorf("%w: collection options: %v", ErrCorrupt, err)
	}
	for _, el := range elems {
		cmd = append(cmd, bson.E{Key: el.Key(), Value: el.Value()})
	}
	err = a.cli.Database(a.sc.target(db)).RunCommand(a.ctx, cmd).Err()
	if ignorable(err) {
		return nil
	}
	return err
}

// createIndexes recreates index specifications, all but _id's.
func (a *applier) createIndexes(db, coll string, specs []bson.Raw) (int64, error) {
	var list bson.A
	for _, s := range specs {
		name, _ := lookupString(s, "name")
		if name == "_id_" {
			continue
		}
		elems, err := s.Elements()
		if err != nil {
			return 0, fmt.Errorf("%w: index specification: %v", ErrCorrupt, err)
		}
		var d bson.D
		for _, el := range elems {
			switch el.Key() {
			case "v", "ns", "createIndexes":
				// The target picks the index version; ns is legacy.
			default:
				d = append(d, bson.E{Key: el.Key(), Value: el.Value()})
			}
		}
		list = append(list, d)
	}
	if len(list) == 0 {
		return 0, nil
	}
	err := a.cli.Database(a.sc.target(db)).RunCommand(a.ctx, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: list}}).Err()
	if err != nil && !ignorable(err) {
		return 0, fmt.Errorf("create indexes: %w", err)
	}
	return int64(len(list)), nil
}

func (a *applier) command(op *Op) error {
	db := a.cli.Database(a.sc.target(op.DB))
	var err error
	switch op.Kind {
	case OpCreate:
		opts := emptyDoc
		if len(op.Options) > 0 {
			opts, err = bson.Marshal(op.Options)
		}
		if err == nil {
			err = a.create(op.DB, op.Coll, opts)
		}
	case OpDrop:
		err = db.Collection(op.Coll).Drop(a.ctx)
	case OpDropDatabase:
		if len(a.sc.colls) == 0 {
			err = db.Drop(a.ctx)
			break
		}
		// A collection restore drops only its own collections.
		for c := range a.sc.colls {
			name := c
			if d, n, ok := cutNS(c); ok {
				if d != op.DB {
					continue
				}
				name = n
			}
			if e := db.Collection(name).Drop(a.ctx); e != nil && err == nil {
				err = e
			}
		}
	case OpRename:
		err = a.cli.Database("admin").RunCommand(a.ctx, bson.D{
			{Key: "renameCollection", Value: a.sc.target(op.DB) + "." + op.Coll},
			{Key: "to", Value: a.sc.target(op.ToDB) + "." + op.To},
			{Key: "dropTarget", Value: op.DropTarget},
		}).Err()
	case OpCreateIndexes:
		var n int64
		n, err = a.createIndexes(op.DB, op.Coll, op.Indexes)
		a.st.Indexes += n
	case OpDropIndex:
		err = db.RunCommand(a.ctx, bson.D{{Key: "dropIndexes", Value: op.Coll}, {Key: "index", Value: op.Index}}).Err()
	default:
		return fmt.Errorf("%w: %s", ErrUnsupported, op.Kind)
	}
	if ignorable(err) {
		return nil
	}
	return err
}

// CountCollections returns how many collections the target holds in the
// databases a restore of cfg would write (every non-system database when
// cfg names none).
func CountCollections(ctx context.Context, cli *mongo.Client, cfg Config) (int, error) {
	dbs := []string{cfg.Database}
	if cfg.Database == "" {
		var err error
		if dbs, err = cli.ListDatabaseNames(ctx, bson.D{}); err != nil {
			return 0, classify(cfg, err)
		}
	}
	n := 0
	for _, db := range dbs {
		if SkipDB(db) {
			continue
		}
		names, err := cli.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return 0, classify(cfg, err)
		}
		for _, c := range names {
			if !skipColl(c) {
				n++
			}
		}
	}
	return n, nil
}
