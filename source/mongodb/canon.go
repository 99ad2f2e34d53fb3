package mongodb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The canonical record of a MongoDB document (FORMAT.md §11.1, §23.5):
//
//	key   = uvarint(len(ns)) || ns || canon(_id)
//	value = canon(document)
//
// canon is a type byte (BSON's own, so an int32 1, an int64 1 and a double
// 1.0 differ, as a restore compared type by type must) and the value:
// fixed-size numbers big-endian, strings and binary length-prefixed, and a
// document's fields sorted by name. Field order is left out because the
// order a server gives fields after an update is its own (MongoDB 5 adds
// new fields in name order, FerretDB and a diff applied in memory append
// them), so a restore that replays the same log through another path could
// not promise it; every name, type and value is kept. Array order is kept.
// NaN is one value (its payload does not survive every server's storage).

// maxCanonDepth bounds nesting: MongoDB allows 100 levels, and a decoder
// must not recurse without end on crafted input.
const maxCanonDepth = 128

// canonNaN is the bits every NaN is encoded as.
const canonNaN = 0x7ff8000000000000

// RecordKey returns the canonical record key of the document with this
// _id in namespace ns.
func RecordKey(ns string, id bson.RawValue) ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(ns)))
	b = append(b, ns...)
	return appendCanon(b, id, 0)
}

// CanonicalRecord returns the canonical record of doc, a document of
// namespace ns: its key and value (FORMAT.md §23.5).
func CanonicalRecord(ns string, doc bson.Raw) (key, value []byte, err error) {
	id, err := doc.LookupErr("_id")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: a document of %s without _id", ErrCorrupt, ns)
	}
	if key, err = RecordKey(ns, id); err != nil {
		return nil, nil, err
	}
	value, err = appendCanon(nil, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}, 0)
	return key, value, err
}

func appendLen(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// appendCanon appends the canonical encoding of v to b.
func appendCanon(b []byte, v bson.RawValue, depth int) ([]byte, error) {
	if depth > maxCanonDepth {
		return nil, fmt.Errorf("%w: a document nested over %d levels", ErrCorrupt, maxCanonDepth)
	}
	bad := func() ([]byte, error) {
		return nil, fmt.Errorf("%w: a malformed BSON %s value", ErrCorrupt, v.Type)
	}
	b = append(b, byte(v.Type))
	switch v.Type {
	case bson.TypeDouble:
		f, ok := v.DoubleOK()
		if !ok {
			return bad()
		}
		bits := math.Float64bits(f)
		if math.IsNaN(f) {
			bits = canonNaN
		}
		return binary.BigEndian.AppendUint64(b, bits), nil
	case bson.TypeString, bson.TypeJavaScript, bson.TypeSymbol:
		var s string
		var ok bool
		switch v.Type {
		case bson.TypeString:
			s, ok = v.StringValueOK()
		case bson.TypeJavaScript:
			s, ok = v.JavaScriptOK()
		default:
			s, ok = v.SymbolOK()
		}
		if !ok {
			return bad()
		}
		return appendLen(b, []byte(s)), nil
	case bson.TypeEmbeddedDocument:
		d, ok := v.DocumentOK()
		if !ok {
			return bad()
		}
		return appendDoc(b, d, false, depth)
	case bson.TypeArray:
		a, ok := v.ArrayOK()
		if !ok {
			return bad()
		}
		return appendDoc(b, bson.Raw(a), true, depth)
	case bson.TypeBinary:
		sub, data, ok := v.BinaryOK()
		if !ok {
			return bad()
		}
		return appendLen(append(b, sub), data), nil
	case bson.TypeUndefined, bson.TypeNull, bson.TypeMinKey, bson.TypeMaxKey:
		return b, nil
	case bson.TypeObjectID:
		oid, ok := v.ObjectIDOK()
		if !ok {
			return bad()
		}
		return append(b, oid[:]...), nil
	case bson.TypeBoolean:
		t, ok := v.BooleanOK()
		if !ok {
			return bad()
		}
		if t {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case bson.TypeDateTime:
		ms, ok := v.DateTimeOK()
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(ms)), nil
	case bson.TypeRegex:
		pat, opts, ok := v.RegexOK()
		if !ok {
			return bad()
		}
		o := []byte(opts)
		slices.Sort(o)
		return appendLen(appendLen(b, []byte(pat)), o), nil
	case bson.TypeDBPointer:
		ns, oid, ok := v.DBPointerOK()
		if !ok {
			return bad()
		}
		return append(appendLen(b, []byte(ns)), oid[:]...), nil
	case bson.TypeCodeWithScope:
		code, scope, ok := v.CodeWithScopeOK()
		if !ok {
			return bad()
		}
		return appendDoc(appendLen(b, []byte(code)), scope, false, depth)
	case bson.TypeInt32:
		n, ok := v.Int32OK()
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, uint32(n)), nil
	case bson.TypeTimestamp:
		t, i, ok := v.TimestampOK()
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(b, t), i), nil
	case bson.TypeInt64:
		n, ok := v.Int64OK()
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(n)), nil
	case bson.TypeDecimal128:
		d, ok := v.Decimal128OK()
		if !ok {
			return bad()
		}
		hi, lo := d.GetBytes()
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, hi), lo), nil
	default:
		return nil, fmt.Errorf("%w: unknown BSON type 0x%02x", ErrCorrupt, byte(v.Type))
	}
}

// appendDoc appends a document's (or an array's) fields: uvarint(count),
// then each field as uvarint(len(name)) || name || canon(value), sorted
// by name (bytewise, stable) for a document; an array's values alone, in
// order.
func appendDoc(b []byte, d bson.Raw, array bool, depth int) ([]byte, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !array {
		sort.SliceStable(elems, func(i, j int) bool { return bytes.Compare([]byte(elems[i].Key()), []byte(elems[j].Key())) < 0 })
	}
	b = binary.AppendUvarint(b, uint64(len(elems)))
	for _, el := range elems {
		if !array {
			b = appendLen(b, []byte(el.Key()))
		}
		v, err := el.ValueErr()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if b, err = appendCanon(b, v, depth+1); err != nil {
			return nil, err
		}
	}
	return b, nil
}
