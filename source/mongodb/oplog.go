package mongodb

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrCorrupt is wrapped by every error about bytes that do not decode: an
// oplog entry, event or base that was damaged or not written by MongoDB or
// this package.
var ErrCorrupt = errors.New("mongodb encoding corrupt")

// ErrUnsupported is wrapped when an oplog entry is well formed but asks
// for something a restore cannot reproduce exactly (a prepared or
// multi-entry transaction, an unknown command): the restore stops rather
// than produce a state the source never had.
var ErrUnsupported = errors.New("mongodb oplog entry not supported")

// maxApplyOpsDepth bounds applyOps nested in applyOps: MongoDB itself
// nests at most one level, and a decoder must not recurse without end.
const maxApplyOpsDepth = 4

// Timestamp is an oplog timestamp: seconds since the epoch and an
// increment that orders the entries of one second.
type Timestamp struct{ T, I uint32 }

// Pack returns the timestamp as one ordered number, T<<32 | I.
func (ts Timestamp) Pack() uint64 { return uint64(ts.T)<<32 | uint64(ts.I) }

// UnpackTimestamp is the inverse of Pack.
func UnpackTimestamp(p uint64) Timestamp { return Timestamp{T: uint32(p >> 32), I: uint32(p)} }

// After reports whether ts comes after u in the oplog.
func (ts Timestamp) After(u Timestamp) bool { return ts.Pack() > u.Pack() }

// IsZero reports whether ts is the zero timestamp (no entry).
func (ts Timestamp) IsZero() bool { return ts.T == 0 && ts.I == 0 }

func (ts Timestamp) String() string { return fmt.Sprintf("%d.%d", ts.T, ts.I) }

func (ts Timestamp) bson() bson.Timestamp { return bson.Timestamp{T: ts.T, I: ts.I} }

// Entry is one oplog entry (a document of local.oplog.rs) with the fields
// a restore needs; the rest of the entry is kept in Raw.
type Entry struct {
	TS   Timestamp
	Wall time.Time // zero when the entry has no wall field (MongoDB < 4.2)
	Op   string    // "i", "u", "d", "c" or "n"
	NS   string    // "db.collection", or "db.$cmd" for commands
	O    bson.Raw
	O2   bson.Raw // nil when absent
	Raw  bson.Raw
}

// Time is when the entry was written: wall when the entry has it, else
// its timestamp's second.
func (e *Entry) Time() time.Time {
	if !e.Wall.IsZero() {
		return e.Wall
	}
	return time.Unix(int64(e.TS.T), 0).UTC()
}

// DB is the database part of the entry's namespace.
func (e *Entry) DB() string { db, _, _ := strings.Cut(e.NS, "."); return db }

// ParseEntry decodes one oplog entry. It checks the BSON and the fields
// every entry has (ts, op, ns, o); it does not interpret o (see Ops).
func ParseEntry(raw []byte) (*Entry, error) {
	r := bson.Raw(raw)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: oplog entry: %v", ErrCorrupt, err)
	}
	return parseEntryDoc(r, true)
}

func parseEntryDoc(r bson.Raw, needTS bool) (*Entry, error) {
	e := &Entry{Raw: r}
	if v, err := r.LookupErr("ts"); err == nil {
		t, i, ok := v.TimestampOK()
		if !ok {
			return nil, fmt.Errorf("%w: oplog entry: ts is a %s, not a timestamp", ErrCorrupt, v.Type)
		}
		e.TS = Timestamp{t, i}
	} else if needTS {
		return nil, fmt.Errorf("%w: oplog entry without ts", ErrCorrupt)
	}
	if v, err := r.LookupErr("wall"); err == nil {
		ms, ok := v.DateTimeOK()
		if !ok {
			return nil, fmt.Errorf("%w: oplog entry %s: wall is a %s, not a date", ErrCorrupt, e.TS, v.Type)
		}
		e.Wall = time.UnixMilli(ms).UTC()
	}
	op, ok := lookupString(r, "op")
	if !ok {
		return nil, fmt.Errorf("%w: oplog entry %s: no op string", ErrCorrupt, e.TS)
	}
	switch op {
	case "i", "u", "d", "c", "n":
	default:
		return nil, fmt.Errorf("%w: oplog entry %s: unknown op %q", ErrCorrupt, e.TS, op)
	}
	e.Op = op
	if e.NS, ok = lookupString(r, "ns"); !ok {
		return nil, fmt.Errorf("%w: oplog entry %s: no ns string", ErrCorrupt, e.TS)
	}
	if e.Op != "n" && (!strings.Contains(e.NS, ".") || strings.HasPrefix(e.NS, ".")) {
		return nil, fmt.Errorf("%w: oplog entry %s: namespace %q is not db.collection", ErrCorrupt, e.TS, e.NS)
	}
	v, err := r.LookupErr("o")
	if err != nil {
		return nil, fmt.Errorf("%w: oplog entry %s: no o", ErrCorrupt, e.TS)
	}
	if e.O, ok = v.DocumentOK(); !ok {
		return nil, fmt.Errorf("%w: oplog entry %s: o is a %s, not a document", ErrCorrupt, e.TS, v.Type)
	}
	if v, err := r.LookupErr("o2"); err == nil {
		if e.O2, ok = v.DocumentOK(); !ok {
			return nil, fmt.Errorf("%w: oplog entry %s: o2 is a %s, not a document", ErrCorrupt, e.TS, v.Type)
		}
	}
	return e, nil
}

func lookupString(r bson.Raw, key string) (string, bool) {
	v, err := r.LookupErr(key)
	if err != nil {
		return "", false
	}
	return v.StringValueOK()
}

// OpKind says what one write does to the target.
type OpKind uint8

// The kinds of writes an oplog entry turns into.
const (
	OpInsert        OpKind = iota + 1 // Doc, inserted or (idempotently) replacing a document of the same _id
	OpReplace                         // Doc replaces the document with ID
	OpUpdate                          // Update ($set/$unset with dotted paths) on the document with ID
	OpDiff                            // Diff ($v:2 document diff) applied to the document with ID in memory
	OpDelete                          // delete the document with ID
	OpCreate                          // create collection Coll with Options
	OpDrop                            // drop collection Coll
	OpRename                          // rename Coll to To (in database ToDB), DropTarget
	OpDropDatabase                    // drop database DB
	OpCreateIndexes                   // create Indexes on Coll
	OpDropIndex                       // drop index Index of Coll ("*" for all)
)

var opKindNames = [...]string{"", "insert", "replace", "update", "diff", "delete", "create", "drop", "rename", "dropDatabase", "createIndexes", "dropIndex"}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// Op is one write an oplog entry asks for, in terms a restore can apply.
type Op struct {
	Kind       OpKind
	DB, Coll   string
	ID         bson.RawValue // the document's _id (CRUD kinds)
	Doc        bson.Raw      // OpInsert, OpReplace
	Update     bson.D        // OpUpdate: {$set: {...}, $unset: {...}}
	Diff       bson.Raw      // OpDiff
	Options    bson.D        // OpCreate: the create command's options
	Indexes    []bson.Raw    // OpCreateIndexes: index specifications (key, name, ...)
	Index      string        // OpDropIndex
	ToDB, To   string        // OpRename
	DropTarget bool          // OpRename
}

// Options for Ops.
type OpsOptions struct {
	// FullImageUpdates says update entries are FerretDB's: {$v:1, $set: D}
	// where D is the whole new document. They become replacements, so
	// fields the update removed are removed.
	FullImageUpdates bool
}

// SkipDB reports whether a database's entries are never captured or
// restored: the server's own databases.
func SkipDB(db string) bool { return db == "local" || db == "admin" || db == "config" }

// skipNS reports whether a collection is the server's own (system.*).
func skipColl(coll string) bool { return strings.HasPrefix(coll, "system.") }

// Ops turns the entry into the writes it stands for, in order, expanding
// applyOps. Entries of the server's own databases and collections and
// no-ops give no writes. It fails with ErrCorrupt on malformed fields and
// ErrUnsupported on what cannot be restored exactly.
func (e *Entry) Ops(o OpsOptions) ([]Op, error) {
	var out []Op
	err := e.ops(o, 0, &out)
	return out, err
}

func (e *Entry) ops(o OpsOptions, depth int, out *[]Op) error {
	if e.Op == "n" {
		return nil
	}
	db, coll, _ := strings.Cut(e.NS, ".")
	if e.Op == "c" {
		if coll != "$cmd" {
			return fmt.Errorf("%w: oplog entry %s: command on %q, not db.$cmd", ErrCorrupt, e.TS, e.NS)
		}
		return e.command(o, db, depth, out)
	}
	if SkipDB(db) {
		return nil
	}
	if coll == "system.indexes" && e.Op == "i" {
		// MongoDB before 4.2 logged index builds as inserts here.
		target, ok := lookupString(e.O, "ns")
		if !ok {
			return fmt.Errorf("%w: oplog entry %s: system.indexes insert without ns", ErrCorrupt, e.TS)
		}
		tdb, tcoll, _ := strings.Cut(target, ".")
		*out = append(*out, Op{Kind: OpCreateIndexes, DB: tdb, Coll: tcoll, Indexes: []bson.Raw{withoutField(e.O, "ns")}})
		return nil
	}
	if skipColl(coll) {
		return nil
	}
	op := Op{DB: db, Coll: coll}
	switch e.Op {
	case "i":
		id, err := e.O.LookupErr("_id")
		if err != nil {
			return fmt.Errorf("%w: oplog entry %s: insert without _id", ErrCorrupt, e.TS)
		}
		op.Kind, op.ID, op.Doc = OpInsert, id, e.O
	case "d":
		id, err := e.O.LookupErr("_id")
		if err != nil {
			return fmt.Errorf("%w: oplog entry %s: delete without _id", ErrCorrupt, e.TS)
		}
		op.Kind, op.ID = OpDelete, id
	case "u":
		if err := e.update(o, &op); err != nil {
			return err
		}
	}
	*out = append(*out, op)
	return nil
}

// update decodes an update entry: o is a replacement document, $v:1
// operators ($set, $unset), or a $v:2 diff; o2 holds the _id.
func (e *Entry) update(o OpsOptions, op *Op) error {
	var id bson.RawValue
	var err error
	if e.O2 != nil {
		id, err = e.O2.LookupErr("_id")
	} else {
		id, err = e.O.LookupErr("_id") // MongoDB before 3.6 had no o2 on replacements
	}
	if err != nil {
		return fmt.Errorf("%w: oplog entry %s: update without o2._id", ErrCorrupt, e.TS)
	}
	op.ID = id
	elems, err := e.O.Elements()
	if err != nil {
		return fmt.Errorf("%w: oplog entry %s: %v", ErrCorrupt, e.TS, err)
	}
	if len(elems) == 0 || !strings.HasPrefix(elems[0].Key(), "$") {
		op.Kind, op.Doc = OpReplace, e.O
		return nil
	}
	version := int64(1)
	var set, unset, diff bson.Raw
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "$v":
			n, ok := v.AsInt64OK()
			if !ok || n < 1 || n > 2 {
				return fmt.Errorf("%w: oplog entry %s: update $v %v", ErrUnsupported, e.TS, v)
			}
			version = n
		case "$set", "$unset", "diff":
			d, ok := v.DocumentOK()
			if !ok {
				return fmt.Errorf("%w: oplog entry %s: %s is a %s, not a document", ErrCorrupt, e.TS, el.Key(), v.Type)
			}
			switch el.Key() {
			case "$set":
				set = d
			case "$unset":
				unset = d
			default:
				diff = d
			}
		default:
			return fmt.Errorf("%w: oplog entry %s: update operator %q (oplog updates hold only $set, $unset or a $v:2 diff)", ErrUnsupported, e.TS, el.Key())
		}
	}
	if version == 2 {
		if diff == nil || set != nil || unset != nil {
			return fmt.Errorf("%w: oplog entry %s: a $v:2 update holds exactly one diff", ErrCorrupt, e.TS)
		}
		if err := validDiff(diff, false, 0); err != nil {
			return fmt.Errorf("oplog entry %s: %w", e.TS, err)
		}
		if u, ok := diffToUpdate(diff); ok {
			op.Kind, op.Update = OpUpdate, u
		} else {
			op.Kind, op.Diff = OpDiff, diff
		}
		return nil
	}
	if diff != nil {
		return fmt.Errorf("%w: oplog entry %s: diff in a $v:1 update", ErrCorrupt, e.TS)
	}
	if o.FullImageUpdates && set != nil && unset == nil {
		if sid, err := set.LookupErr("_id"); err == nil && sid.Equal(id) {
			op.Kind, op.Doc = OpReplace, set
			return nil
		}
	}
	op.Kind = OpUpdate
	if set != nil {
		op.Update = append(op.Update, bson.E{Key: "$set", Value: set})
	}
	if unset != nil {
		op.Update = append(op.Update, bson.E{Key: "$unset", Value: unset})
	}
	if op.Update == nil {
		return fmt.Errorf("%w: oplog entry %s: update with no $set or $unset", ErrCorrupt, e.TS)
	}
	return nil
}

// command decodes a command entry (ns "db.$cmd").
func (e *Entry) command(o OpsOptions, db string, depth int, out *[]Op) error {
	elems, err := e.O.Elements()
	if err != nil || len(elems) == 0 {
		return fmt.Errorf("%w: oplog entry %s: empty command", ErrCorrupt, e.TS)
	}
	name, first := elems[0].Key(), elems[0].Value()
	if name == "applyOps" {
		return e.applyOps(o, first, depth, out)
	}
	if SkipDB(db) {
		return nil
	}
	collName := func() (string, error) {
		s, ok := first.StringValueOK()
		if !ok || s == "" {
			return "", fmt.Errorf("%w: oplog entry %s: %s names no collection", ErrCorrupt, e.TS, name)
		}
		return s, nil
	}
	switch name {
	case "create":
		c, err := collName()
		if err != nil {
			return err
		}
		if skipColl(c) {
			return nil
		}
		op := Op{Kind: OpCreate, DB: db, Coll: c}
		for _, el := range elems[1:] {
			op.Options = append(op.Options, bson.E{Key: el.Key(), Value: el.Value()})
		}
		*out = append(*out, op)
	case "drop":
		c, err := collName()
		if err != nil {
			return err
		}
		if !skipColl(c) {
			*out = append(*out, Op{Kind: OpDrop, DB: db, Coll: c})
		}
	case "dropDatabase":
		*out = append(*out, Op{Kind: OpDropDatabase, DB: db})
	case "renameCollection":
		from, err := collName()
		if err != nil {
			return err
		}
		to, ok := lookupString(e.O, "to")
		if !ok {
			return fmt.Errorf("%w: oplog entry %s: renameCollection without to", ErrCorrupt, e.TS)
		}
		fdb, fcoll, ok1 := strings.Cut(from, ".")
		tdb, tcoll, ok2 := strings.Cut(to, ".")
		if !ok1 || !ok2 || fcoll == "" || tcoll == "" {
			return fmt.Errorf("%w: oplog entry %s: rename %q to %q: not db.collection", ErrCorrupt, e.TS, from, to)
		}
		op := Op{Kind: OpRename, DB: fdb, Coll: fcoll, ToDB: tdb, To: tcoll}
		if v, err := e.O.LookupErr("dropTarget"); err == nil {
			// A bool, or since 4.2 the UUID of the dropped target.
			b, isBool := v.BooleanOK()
			op.DropTarget = !isBool || b
		}
		*out = append(*out, op)
	case "createIndexes":
		c, err := collName()
		if err != nil {
			return err
		}
		*out = append(*out, Op{Kind: OpCreateIndexes, DB: db, Coll: c, Indexes: []bson.Raw{withoutField(e.O, "createIndexes")}})
	case "commitIndexBuild":
		c, err := collName()
		if err != nil {
			return err
		}
		v, err := e.O.LookupErr("indexes")
		arr, ok := v.ArrayOK()
		if err != nil || !ok {
			return fmt.Errorf("%w: oplog entry %s: commitIndexBuild without indexes", ErrCorrupt, e.TS)
		}
		vals, err := arr.Values()
		if err != nil {
			return fmt.Errorf("%w: oplog entry %s: %v", ErrCorrupt, e.TS, err)
		}
		op := Op{Kind: OpCreateIndexes, DB: db, Coll: c}
		for _, v := range vals {
			d, ok := v.DocumentOK()
			if !ok {
				return fmt.Errorf("%w: oplog entry %s: index spec is a %s", ErrCorrupt, e.TS, v.Type)
			}
			op.Indexes = append(op.Indexes, d)
		}
		*out = append(*out, op)
	case "startIndexBuild", "abortIndexBuild":
		// The build's outcome is its commitIndexBuild entry.
	case "dropIndexes", "deleteIndexes":
		c, err := collName()
		if err != nil {
			return err
		}
		idx, ok := lookupString(e.O, "index")
		if !ok {
			return fmt.Errorf("%w: oplog entry %s: %s without an index name", ErrUnsupported, e.TS, name)
		}
		*out = append(*out, Op{Kind: OpDropIndex, DB: db, Coll: c, Index: idx})
	default:
		return fmt.Errorf("%w: oplog entry %s: command %q", ErrUnsupported, e.TS, name)
	}
	return nil
}

func (e *Entry) applyOps(o OpsOptions, v bson.RawValue, depth int, out *[]Op) error {
	if depth >= maxApplyOpsDepth {
		return fmt.Errorf("%w: oplog entry %s: applyOps nested deeper than %d", ErrCorrupt, e.TS, maxApplyOpsDepth)
	}
	for _, k := range []string{"partialTxn", "prepare"} {
		if b, err := e.O.LookupErr(k); err == nil {
			if t, ok := b.BooleanOK(); !ok || t {
				return fmt.Errorf("%w: oplog entry %s: applyOps with %s (a transaction spread over several entries or prepared)", ErrUnsupported, e.TS, k)
			}
		}
	}
	arr, ok := v.ArrayOK()
	if !ok {
		return fmt.Errorf("%w: oplog entry %s: applyOps is a %s, not an array", ErrCorrupt, e.TS, v.Type)
	}
	vals, err := arr.Values()
	if err != nil {
		return fmt.Errorf("%w: oplog entry %s: %v", ErrCorrupt, e.TS, err)
	}
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return fmt.Errorf("%w: oplog entry %s: applyOps[%d] is a %s", ErrCorrupt, e.TS, i, v.Type)
		}
		inner, err := parseEntryDoc(d, false)
		if err != nil {
			return fmt.Errorf("applyOps[%d]: %w", i, err)
		}
		inner.TS, inner.Wall = e.TS, e.Wall
		if err := inner.ops(o, depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

// withoutField returns d without its top-level field key.
func withoutField(d bson.Raw, key string) bson.Raw {
	elems, _ := d.Elements()
	var out bson.D
	for _, el := range elems {
		if el.Key() != key {
			out = append(out, bson.E{Key: el.Key(), Value: el.Value()})
		}
	}
	b, err := bson.Marshal(out)
	if err != nil {
		return d
	}
	return b
}

// cutNS splits "db.collection"; ok is false without a dot.
func cutNS(ns string) (db, coll string, ok bool) { return strings.Cut(ns, ".") }
