package mongodb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func init() { source.RegisterStateProver("mongodb", proveState) }

// isBase reports whether a snapshot's export starts with the base magic,
// reading its first blobs only.
func isBase(ctx context.Context, r *repo.Repository, s index.SnapshotRef) (bool, error) {
	if s.Format != engine.FormatNDJSON || s.KeyField != "" {
		return false, nil
	}
	return engine.SnapshotHasPrefix(ctx, r, s, []byte(baseMagic+"\n"))
}

// proveState is the StateProver of MongoDB bases: the plan's state
// computed without a server, the base's documents with its own oplog
// entries and the plan's applied in memory (see stateProver).
func proveState(ctx context.Context, r *repo.Repository, p *index.Plan) (source.StateProof, error) {
	if mine, err := isBase(ctx, r, p.Base); err != nil || !mine {
		if err == nil {
			err = source.ErrNotMine
		}
		return source.StateProof{}, err
	}
	res, err := ComputeState(ctx, r, p, nil)
	if err != nil {
		return source.StateProof{}, err
	}
	sp := source.StateProof{Proof: res.Proof, Reached: res.Reached, Events: res.Events}
	if want, ok := p.Base.Proof(); ok && res.Events == 0 {
		return sp, want.Check("snapshot "+p.Base.ID.Short(), sp.Proof)
	}
	return sp, nil
}

// nsState is what the prover knows of one namespace: the digest of its
// documents whose final state is known, and the documents it holds.
type nsState struct {
	d    *repo.Digester    // records of documents no later write changes
	docs map[string][]byte // RecordKey -> document held (present)
}

// keyInfo is what the first pass over the log learned of one document.
type keyInfo struct {
	last int64 // the index of the last log write to it; 0: written only by the base's entries
	// needDoc: its last write is an update (or it is written only by the
	// base's entries), so its document must be held to apply it.
	needDoc bool
}

// StateResult is the proof of a plan's state computed in memory.
type StateResult struct {
	Proof repo.Proof // of every namespace
	// Scoped is the proof of the namespaces the scope function given to
	// ComputeState keeps (Proof when it was nil).
	Scoped  repo.Proof
	Reached uint64 // the last position applied, or the base's
	Events  int64  // log events applied after the base
	DBs     map[string]bool
}

// stateProver computes a plan's state in memory. A document whose last
// write in the log is a whole document (insert, replacement, delete) is
// hashed when that write is applied and never held; one whose last write
// is an update is held whole from the base (or its last whole image) on,
// to apply the updates to. Memory is therefore a small record per document
// the log writes, those documents that end with an update, and one
// digester per namespace; the base's other documents are only hashed.
type stateProver struct {
	root    *repo.Digester
	colls   map[string]*nsState
	touched map[string]*keyInfo // by RecordKey
	seq     int64               // log writes seen, in the current pass
	renamed map[string]bool     // namespaces the log renames
}

func newStateProver(root *repo.Digester) *stateProver {
	return &stateProver{root: root, colls: map[string]*nsState{}, touched: map[string]*keyInfo{}, renamed: map[string]bool{}}
}

func (s *stateProver) ns(ns string) *nsState {
	n := s.colls[ns]
	if n == nil {
		n = &nsState{d: s.root.Fork(), docs: map[string][]byte{}}
		s.colls[ns] = n
	}
	return n
}

func isWrite(k OpKind) bool {
	switch k {
	case OpInsert, OpReplace, OpUpdate, OpDiff, OpDelete:
		return true
	}
	return false
}

// touch records the log writes of ops (the first pass over the log).
func (s *stateProver) touch(ops []Op) error {
	for i := range ops {
		op := &ops[i]
		if op.Kind == OpRename {
			s.renamed[op.DB+"."+op.Coll] = true
		}
		if !isWrite(op.Kind) {
			continue
		}
		k, err := RecordKey(op.DB+"."+op.Coll, op.ID)
		if err != nil {
			return err
		}
		s.seq++
		ki := s.touched[string(k)]
		if ki == nil {
			ki = &keyInfo{}
			s.touched[string(k)] = ki
		}
		ki.last = s.seq
		ki.needDoc = op.Kind == OpUpdate || op.Kind == OpDiff
	}
	return nil
}

// endTouch ends the first pass: the documents of a namespace the log
// renames are held whatever their last write, since their records change
// name with it.
func (s *stateProver) endTouch() {
	s.seq = 0
	if len(s.renamed) == 0 {
		return
	}
	for k, ki := range s.touched {
		n, w := binary.Uvarint([]byte(k))
		if w > 0 && uint64(len(k)-w) >= n && s.renamed[k[w:w+int(n)]] {
			ki.needDoc = true
		}
	}
}

// scanBase reads the base's documents of the namespaces only (all when
// nil) into the state, and returns its oplog entries and trailer.
func (s *stateProver) scanBase(br *BaseReader, only map[string]bool) ([]*Entry, Trailer, error) {
	var cur string
	var keep bool
	var entries []*Entry
	for {
		rec, err := br.Next()
		if err == io.EOF {
			return entries, br.Trailer(), nil
		}
		if err != nil {
			return nil, Trailer{}, err
		}
		switch {
		case rec.Collection != nil:
			cur = rec.Collection.NS
			keep = only == nil || only[cur]
			if keep {
				s.ns(cur)
			}
		case rec.Document != nil:
			if !keep {
				continue
			}
			k, v, err := CanonicalRecord(cur, rec.Document)
			if err != nil {
				return nil, Trailer{}, err
			}
			n := s.ns(cur)
			switch ki := s.touched[string(k)]; {
			case ki == nil:
				n.d.Add(k, v)
			case ki.needDoc:
				n.docs[string(k)] = rec.Document
			default:
				// A later whole write replaces or deletes it.
			}
		case rec.Oplog != nil:
			entries = append(entries, rec.Oplog)
		}
	}
}

// apply applies ops in memory; inLog is set for the log's entries (after
// the base's own).
func (s *stateProver) apply(ops []Op, inLog bool) error {
	for i := range ops {
		op := &ops[i]
		ns := op.DB + "." + op.Coll
		switch op.Kind {
		case OpInsert, OpReplace, OpUpdate, OpDiff, OpDelete:
			k, err := RecordKey(ns, op.ID)
			if err != nil {
				return err
			}
			if inLog {
				s.seq++
			}
			ki := s.touched[string(k)]
			if ki == nil {
				return fmt.Errorf("%w: a write the prover's first pass did not see", ErrCorrupt)
			}
			n := s.ns(ns)
			if !ki.needDoc {
				// Only the last write counts, and it is whole.
				if inLog && s.seq == ki.last {
					delete(n.docs, string(k))
					if op.Kind != OpDelete {
						k, v, err := CanonicalRecord(ns, op.Doc)
						if err != nil {
							return err
						}
						n.d.Add(k, v)
					}
				}
				continue
			}
			doc, ok := n.docs[string(k)]
			switch op.Kind {
			case OpInsert, OpReplace:
				n.docs[string(k)] = op.Doc
			case OpDelete:
				delete(n.docs, string(k))
			case OpUpdate, OpDiff:
				if !ok {
					continue // the restore's update finds no document either
				}
				var nd bson.Raw
				if op.Kind == OpUpdate {
					nd, err = applyUpdate(doc, op.Update)
				} else {
					nd, err = applyDiffRaw(doc, op.Diff)
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", op.Kind, ns, err)
				}
				n.docs[string(k)] = nd
			}
		case OpCreate:
			s.ns(ns)
		case OpDrop:
			delete(s.colls, ns)
		case OpDropDatabase:
			for k := range s.colls {
				if db, _, _ := cutNS(k); db == op.DB {
					delete(s.colls, k)
				}
			}
		case OpRename:
			from := s.colls[ns]
			to := op.ToDB + "." + op.To
			if from == nil {
				continue
			}
			if from.d.Proof().Records > 0 {
				// Those documents are digested under the old name only.
				return fmt.Errorf("%w: collection %s is renamed to %s by the log; the prover would have to read its documents again", source.ErrUnproven, ns, to)
			}
			n := &nsState{d: s.root.Fork(), docs: map[string][]byte{}}
			for _, doc := range from.docs {
				k, _, err := CanonicalRecord(to, doc)
				if err != nil {
					return err
				}
				ki := s.touched[string(k)]
				switch {
				case ki == nil:
					s.touched[string(k)] = &keyInfo{needDoc: true}
				case !ki.needDoc && ki.last > s.seq:
					continue // a later whole write replaces it
				case !ki.needDoc:
					ki.needDoc = true // held from here on
				}
				n.docs[string(k)] = doc
			}
			delete(s.colls, ns)
			s.colls[to] = n
		}
	}
	return nil
}

// proof sums the namespaces keep keeps (all when nil).
func (s *stateProver) proof(keep func(db, coll string) bool) (repo.Proof, error) {
	d := s.root.Fork()
	names := make([]string, 0, len(s.colls))
	for ns := range s.colls {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		db, coll, _ := cutNS(ns)
		if SkipDB(db) || skipColl(coll) || keep != nil && !keep(db, coll) {
			continue
		}
		n := s.colls[ns]
		d.Merge(n.d)
		for _, doc := range n.docs {
			k, v, err := CanonicalRecord(ns, doc)
			if err != nil {
				return repo.Proof{}, err
			}
			d.Add(k, v)
		}
	}
	return d.Proof(), nil
}

// ComputeState computes the plan's state in memory and returns its proof,
// and with keep (nil: all) that of the namespaces keep keeps. It reads the
// log twice (the documents it touches, then its writes) and the base once,
// or twice when the base's own entries touch documents the log does not.
// Every byte is verified as a restore verifies it. A write the prover
// cannot apply as the server would (a rename of a collection whose
// documents it did not hold, a path through a scalar) is ErrUnproven.
func ComputeState(ctx context.Context, r *repo.Repository, p *index.Plan, keep func(db, coll string) bool) (StateResult, error) {
	s := newStateProver(r.NewDigester())
	res := StateResult{DBs: map[string]bool{}}
	if p.Base.Position != nil {
		res.Reached = *p.Base.Position
	}
	var segs []*repo.Segment
	if len(p.Segments) > 0 {
		var err error
		if segs, err = engine.LoadPlanSegments(ctx, r, p); err != nil {
			return res, err
		}
	}
	if err := eachLogged(ctx, r, p, segs, func(le *LoggedEntry) error { return s.touch(le.Ops) }); err != nil {
		return res, err
	}
	s.endTouch()
	var baseOps [][]Op
	var tr Trailer
	err := readBase(ctx, r, p.Base, func(br *BaseReader) error {
		entries, t, err := s.scanBase(br, nil)
		if err != nil {
			return err
		}
		tr = t
		for _, e := range entries {
			ops, err := e.Ops(OpsOptions{FullImageUpdates: t.FullImageUpdates})
			if err != nil {
				return fmt.Errorf("oplog entry %s: %w", e.TS, err)
			}
			baseOps = append(baseOps, ops)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	// Documents the base's own entries touch and the log does not were
	// only hashed: read their namespaces again, holding them.
	again := map[string]bool{}
	for _, ops := range baseOps {
		for i := range ops {
			op := &ops[i]
			switch op.Kind {
			case OpInsert, OpReplace, OpUpdate, OpDiff, OpDelete:
				k, err := RecordKey(op.DB+"."+op.Coll, op.ID)
				if err != nil {
					return res, err
				}
				if s.touched[string(k)] == nil {
					// Written only by the base's entries: held.
					s.touched[string(k)] = &keyInfo{needDoc: true}
					again[op.DB+"."+op.Coll] = true
				}
			}
		}
	}
	if len(again) > 0 {
		for ns := range again {
			delete(s.colls, ns)
		}
		err := readBase(ctx, r, p.Base, func(br *BaseReader) error {
			_, _, err := s.scanBase(br, again)
			return err
		})
		if err != nil {
			return res, err
		}
	}
	for _, ops := range baseOps {
		if err := s.apply(ops, false); err != nil {
			return res, fmt.Errorf("base %s: %w", p.Base.ID.Short(), unproven(err))
		}
	}
	end := tr.EndTS()
	err = eachLogged(ctx, r, p, segs, func(le *LoggedEntry) error {
		if !le.Entry.TS.After(end) {
			return fmt.Errorf("%w: position %d holds oplog entry %s, not after the base's end %s: the base and the log disagree", ErrCorrupt, le.Seq, le.Entry.TS, end)
		}
		if err := s.apply(le.Ops, true); err != nil {
			return fmt.Errorf("oplog entry %s (position %d): %w", le.Entry.TS, le.Seq, unproven(err))
		}
		res.Events++
		res.Reached = le.Seq
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Proof, err = s.proof(nil); err != nil {
		return res, err
	}
	res.Scoped = res.Proof
	if keep != nil {
		if res.Scoped, err = s.proof(keep); err != nil {
			return res, err
		}
	}
	for ns := range s.colls {
		db, _, _ := cutNS(ns)
		res.DBs[db] = true
	}
	return res, nil
}

// unproven marks what the prover cannot apply as unproven: never a
// mismatch, never a pass.
func unproven(err error) error {
	if errors.Is(err, errNotInMemory) || errors.Is(err, ErrUnsupported) {
		return fmt.Errorf("%w: %v", source.ErrUnproven, err)
	}
	return err
}

// eachLogged streams the plan's log entries, decoded and checked to
// ascend, to fn; the entries are the caller's to keep.
func eachLogged(ctx context.Context, r *repo.Repository, p *index.Plan, segs []*repo.Segment, fn func(*LoggedEntry) error) error {
	if len(segs) == 0 {
		return nil
	}
	var last Timestamp
	n := 0
	return engine.EachPlanEvent(ctx, r, p, segs, func(k repo.SegmentKey, ev *repo.Event) error {
		// Events alias the segment's buffers: the entry's documents must
		// outlive them (held by the prover, or pending in a batch).
		c := *ev
		c.Key, c.Value = bytes.Clone(ev.Key), bytes.Clone(ev.Value)
		e, o, err := DecodeOplogEvent(&c)
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name(), err)
		}
		if n > 0 && !e.TS.After(last) {
			return &repo.CorruptError{Object: k.Name(), Offset: -1,
				Reason: fmt.Sprintf("oplog entry %s at position %d after %s", e.TS, ev.Seq, last),
				Hint:   "entries must ascend; run 'strata check'"}
		}
		last = e.TS
		n++
		ops, err := e.Ops(o)
		if err != nil {
			return fmt.Errorf("position %d: %w", ev.Seq, err)
		}
		return fn(&LoggedEntry{Seq: ev.Seq, Entry: e, Opts: o, Ops: ops})
	})
}

// proveBase records in s, a base whose content is stored and whose
// manifest is not yet written, the proof of its state: its documents with
// its own oplog entries applied, computed from the stored bytes (so the
// proof is of what a restore reads). It returns why it recorded none.
func proveBase(ctx context.Context, r *repo.Repository, s *repo.Snapshot) error {
	res, err := ComputeState(ctx, r, &index.Plan{Stream: s.Stream, Base: index.SnapshotRef{Snapshot: s}}, nil)
	if err != nil {
		return err
	}
	s.SetProof(res.Proof)
	return nil
}
