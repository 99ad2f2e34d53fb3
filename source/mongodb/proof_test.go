package mongodb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func canonOf(t testing.TB, d bson.D) []byte {
	t.Helper()
	doc, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	_, v, err := CanonicalRecord("db.c", doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCanonical: field order is left out at every level, types and array
// order are kept, NaNs are one value.
func TestCanonical(t *testing.T) {
	same := [][2]bson.D{
		{{{Key: "_id", Value: 1}, {Key: "a", Value: bson.D{{Key: "x", Value: 1}, {Key: "y", Value: "s"}}}},
			{{Key: "a", Value: bson.D{{Key: "y", Value: "s"}, {Key: "x", Value: 1}}}, {Key: "_id", Value: 1}}},
		{{{Key: "_id", Value: 1}, {Key: "f", Value: math.NaN()}},
			{{Key: "_id", Value: 1}, {Key: "f", Value: math.Float64frombits(0x7ff8000000000001)}}},
		{{{Key: "_id", Value: 1}, {Key: "r", Value: bson.Regex{Pattern: "a", Options: "mi"}}},
			{{Key: "_id", Value: 1}, {Key: "r", Value: bson.Regex{Pattern: "a", Options: "im"}}}},
	}
	for _, c := range same {
		if a, b := canonOf(t, c[0]), canonOf(t, c[1]); !bytes.Equal(a, b) {
			t.Errorf("%v and %v: %x != %x", c[0], c[1], a, b)
		}
	}
	dec, _ := bson.ParseDecimal128("1.0")
	dec2, _ := bson.ParseDecimal128("1.00")
	oid := bson.NewObjectID()
	values := []any{int32(1), int64(1), 1.0, "1", true, nil, bson.DateTime(1), bson.Timestamp{T: 1}, dec, dec2,
		bson.Binary{Data: []byte{1}}, bson.Binary{Subtype: 4, Data: []byte{1}}, oid, bson.A{1, 2}, bson.A{2, 1},
		bson.D{{Key: "a", Value: 1}}, bson.D{{Key: "b", Value: 1}}, bson.MinKey{}, bson.MaxKey{}, bson.Undefined{},
		bson.JavaScript("1"), bson.Symbol("1"), bson.CodeWithScope{Code: "1", Scope: bson.D{}}, bson.DBPointer{DB: "x", Pointer: oid}}
	seen := map[string]int{}
	for i, v := range values {
		c := string(canonOf(t, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: v}}))
		if j, ok := seen[c]; ok {
			t.Errorf("values %d (%v) and %d (%v) have one canonical form", j, values[j], i, v)
		}
		seen[c] = i
	}
	// Keys: namespace and _id type both count.
	k1, _ := RecordKey("db.c", bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}})
	k2, _ := RecordKey("db.d", bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}})
	k3, _ := RecordKey("db.c", bson.RawValue{Type: bson.TypeInt64, Value: []byte{1, 0, 0, 0, 0, 0, 0, 0}})
	if bytes.Equal(k1, k2) || bytes.Equal(k1, k3) {
		t.Errorf("keys collide: %x %x %x", k1, k2, k3)
	}
	// Malformed input is an error, never a panic.
	if _, _, err := CanonicalRecord("db.c", bson.Raw{5, 0, 0, 0}); err == nil {
		t.Error("a truncated document has a canonical record")
	}
}

// TestApplyUpdate applies $set and $unset with dotted paths as MongoDB
// does.
func TestApplyUpdate(t *testing.T) {
	cases := []struct{ doc, update, want string }{
		{`{"_id":1,"a":1}`, `{"$set":{"a":2,"b":3}}`, `{"_id":1,"a":2,"b":3}`},
		{`{"_id":1}`, `{"$set":{"a.b.c":1}}`, `{"_id":1,"a":{"b":{"c":1}}}`},
		{`{"_id":1,"a":[1,2]}`, `{"$set":{"a.3":5}}`, `{"_id":1,"a":[1,2,null,5]}`},
		{`{"_id":1,"a":[1,{"x":1}]}`, `{"$set":{"a.1.y":2}}`, `{"_id":1,"a":[1,{"x":1,"y":2}]}`},
		{`{"_id":1,"a":[1,2],"b":1}`, `{"$unset":{"a.0":"","b":"","c.d":""}}`, `{"_id":1,"a":[null,2]}`},
		{`{"_id":1,"a":{"b":1,"c":2}}`, `{"$unset":{"a.b":true}}`, `{"_id":1,"a":{"c":2}}`},
	}
	for _, c := range cases {
		var u bson.D
		if err := bson.UnmarshalExtJSON([]byte(c.update), false, &u); err != nil {
			t.Fatal(err)
		}
		got, err := applyUpdate(ej(t, c.doc), u)
		if err != nil {
			t.Errorf("%s %s: %v", c.doc, c.update, err)
			continue
		}
		if g := toJSON(got); g != toJSON(ej(t, c.want)) {
			t.Errorf("%s %s: %s, want %s", c.doc, c.update, g, c.want)
		}
	}
	var u bson.D
	bson.UnmarshalExtJSON([]byte(`{"$set":{"a.b":1}}`), false, &u)
	if _, err := applyUpdate(ej(t, `{"_id":1,"a":5}`), u); !errors.Is(err, errNotInMemory) {
		t.Errorf("a path through a scalar: %v", err)
	}
}

// TestProofVectorFromBase: the base of FORMAT.md §23.1, read and with its
// O entry applied by the prover, has the proof of §23.5's example.
func TestProofVectorFromBase(t *testing.T) {
	var base bytes.Buffer
	for _, l := range formatVector(t, "mongodb-base") {
		base.WriteString(l[len("line: "):] + "\n")
	}
	v := map[string]string{}
	for _, l := range formatVector(t, "mongodb-proof") {
		k, val, _ := bytes.Cut([]byte(l), []byte(": "))
		v[string(k)] = string(val)
	}
	master, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	s := newStateProver(repo.NewDigester(master))
	br, err := NewBaseReader(&base)
	if err != nil {
		t.Fatal(err)
	}
	// As ComputeState does: a first read hashes the document; the entry
	// touches it, so its namespace is read again, holding it.
	entries, tr, err := s.scanBase(br, nil)
	if err != nil || len(entries) != 1 {
		t.Fatal(err, entries)
	}
	ops, err := entries[0].Ops(OpsOptions{FullImageUpdates: tr.FullImageUpdates})
	if err != nil {
		t.Fatal(err)
	}
	k, err := RecordKey("shop.users", ops[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	s.touched[string(k)] = &keyInfo{needDoc: true}
	delete(s.colls, "shop.users")
	base.Reset()
	for _, l := range formatVector(t, "mongodb-base") {
		base.WriteString(l[len("line: "):] + "\n")
	}
	br, _ = NewBaseReader(&base)
	if _, _, err := s.scanBase(br, map[string]bool{"shop.users": true}); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(ops, false); err != nil {
		t.Fatal(err)
	}
	p, err := s.proof(nil)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(p.Digest[:]) != v["digest"] || p.Records != 1 {
		t.Fatalf("proof of the example base: %d records, %x; FORMAT.md says %s", p.Records, p.Digest, v["digest"])
	}
}

// FuzzCanonicalRecord: any bytes give a canonical record or an error,
// never a panic, and a valid document's record does not depend on the
// order of its top-level fields.
func FuzzCanonicalRecord(f *testing.F) {
	f.Add([]byte(ej(f, `{"_id":1,"a":{"b":[1,2,{"c":null}]},"d":{"$numberDecimal":"1.5"}}`)))
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, v, err := CanonicalRecord("db.c", b)
		if err != nil || bson.Raw(b).Validate() != nil {
			return
		}
		elems, _ := bson.Raw(b).Elements()
		var rev bson.D
		for i := len(elems) - 1; i >= 0; i-- {
			rev = append(rev, bson.E{Key: elems[i].Key(), Value: elems[i].Value()})
		}
		rb, err := bson.Marshal(rev)
		if err != nil {
			return
		}
		k2, v2, err := CanonicalRecord("db.c", rb)
		if err != nil {
			t.Fatalf("reversed document: %v", err)
		}
		dup := map[string]bool{}
		for _, e := range elems {
			if dup[e.Key()] {
				return // equal names keep their order: reversing changes the record
			}
			dup[e.Key()] = true
		}
		if !bytes.Equal(k, k2) || !bytes.Equal(v, v2) {
			t.Fatalf("field order changed the record: %x %x / %x %x", k, v, k2, v2)
		}
	})
}

// TestUnprovenBase: a base stored without a proof (as before bases had
// one) restores, its target verified against the state computed from it,
// and is reported unproven, never proven; its snapshot proof is
// ErrUnproven. The same bytes stored with a proof check out.
func TestUnprovenBase(t *testing.T) {
	tgt := mongotest.Start(t, mongotest.Options{})
	ctx := t.Context()
	r := newRepo(t)
	var base bytes.Buffer
	for _, l := range formatVector(t, "mongodb-base") {
		base.WriteString(l[len("line: "):] + "\n")
	}
	var zero uint64
	id, snap, err := engine.Backup(ctx, r, bytes.NewReader(base.Bytes()), engine.BackupOptions{Stream: "s", Format: engine.FormatNDJSON, Position: &zero})
	if err != nil {
		t.Fatal(err)
	}
	ref := index.SnapshotRef{ID: id, Snapshot: snap}
	if err := source.SnapshotProof(ctx, r, ref); !errors.Is(err, source.ErrUnproven) {
		t.Fatalf("snapshot proof of an unproven base: %v", err)
	}
	p := &index.Plan{Stream: "s", Base: ref, Target: index.Target{Position: 0, ByPos: true}, From: 1}
	sp, err := source.ProveState(ctx, r, p)
	if err != nil || sp.Proof.Records != 1 {
		t.Fatalf("state of an unproven base: %v %v", sp, err)
	}
	cli, cfg := connect(t, tgt, "")
	st, err := Restore(ctx, cli, cfg, r, p, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Checked || st.Verified != "" || !strings.Contains(st.Unproven, "records no proof") || st.Proof != sp.Proof {
		t.Fatalf("restore of an unproven base: %+v", st)
	}
	// Stored with its proof, the same base is proven; a wrong recorded
	// proof is a mismatch.
	_, snap2, err := engine.Backup(ctx, r, bytes.NewReader(base.Bytes()), engine.BackupOptions{Stream: "t", Format: engine.FormatNDJSON, Position: &zero,
		Describe: func(s *repo.Snapshot) {
			if err := proveBase(ctx, r, s); err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := snap2.Proof(); !ok || got != sp.Proof {
		t.Fatalf("recorded proof %v, computed %v", got, sp.Proof)
	}
	bad := *snap2
	bad.SetProof(repo.Proof{Records: 1})
	if err := source.SnapshotProof(ctx, r, index.SnapshotRef{ID: id, Snapshot: &bad}); !errors.Is(err, repo.ErrProofMismatch) {
		t.Fatalf("a wrong recorded proof: %v", err)
	}
}

// FuzzApplyUpdate: an update from the oplog applied in memory to any
// document gives a document or an error, never a panic.
func FuzzApplyUpdate(f *testing.F) {
	f.Add([]byte(ej(f, `{"_id":1,"a":[1,{"b":2}],"c":{"d":1}}`)), []byte(ej(f, `{"$set":{"a.1.b":3,"a.4":1,"c.e.f":2},"$unset":{"c.d":"","a.0":""}}`)))
	f.Fuzz(func(t *testing.T, doc, update []byte) {
		if bson.Raw(doc).Validate() != nil || bson.Raw(update).Validate() != nil {
			return
		}
		var u bson.D
		if bson.Unmarshal(update, &u) != nil {
			return
		}
		if out, err := applyUpdate(doc, u); err == nil {
			if err := out.Validate(); err != nil {
				t.Fatalf("applied update gives invalid BSON: %v", err)
			}
		}
	})
}
