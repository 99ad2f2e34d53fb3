package mongodb

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/repo"
)

// ej parses canonical or relaxed Extended JSON into BSON.
func ej(t testing.TB, s string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(s), false, &r); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return r
}

func toJSON(v any) string {
	b, err := bson.MarshalExtJSON(v, false, false)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// Oplog entries as MongoDB 6/7 writes them (field order and types as in
// local.oplog.rs), for what FerretDB cannot produce: $v:2 diffs,
// applyOps, commands.
const (
	tsField    = `"ts":{"$timestamp":{"t":1767225600,"i":3}},"t":{"$numberLong":"7"},"v":{"$numberLong":"2"},"wall":{"$date":"2026-01-01T00:00:00.123Z"}`
	uiField    = `"ui":{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}}`
	recInsert  = `{"op":"i","ns":"shop.users",` + uiField + `,"o":{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"name":"ann","n":{"$numberInt":"1"}},"o2":{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"}},` + tsField + `}`
	recDiff    = `{"op":"u","ns":"shop.users",` + uiField + `,"o":{"$v":2,"diff":{"d":{"old":false},"u":{"name":"bob"},"i":{"added":{"$numberLong":"5"}},"saddr":{"u":{"city":"Oslo"},"i":{"zip":"0150"}},"stags":{"a":true,"u3":"new"}}},"o2":{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"}},` + tsField + `}`
	recPull    = `{"op":"u","ns":"shop.users",` + uiField + `,"o":{"$v":2,"diff":{"stags":{"a":true,"l":{"$numberInt":"2"},"u1":"z"},"sitems":{"a":true,"s0":{"u":{"q":{"$numberInt":"9"}}}}}},"o2":{"_id":1},` + tsField + `}`
	recV1      = `{"op":"u","ns":"shop.users","o":{"$v":1,"$set":{"a.b":1},"$unset":{"c":true}},"o2":{"_id":1},` + tsField + `}`
	recRepl    = `{"op":"u","ns":"shop.users","o":{"_id":1,"only":"this"},"o2":{"_id":1},` + tsField + `}`
	recDelete  = `{"op":"d","ns":"shop.users",` + uiField + `,"o":{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"}},` + tsField + `}`
	recTxn     = `{"lsid":{"id":{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}}},"txnNumber":{"$numberLong":"1"},"op":"c","ns":"admin.$cmd","o":{"applyOps":[{"op":"i","ns":"shop.orders","ui":{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}},"o":{"_id":1,"total":{"$numberDecimal":"9.99"}}},{"op":"u","ns":"shop.users","o":{"$v":2,"diff":{"u":{"orders":2}}},"o2":{"_id":1}},{"op":"i","ns":"config.x","o":{"_id":1}}]},"prevOpTime":{"ts":{"$timestamp":{"t":0,"i":0}},"t":{"$numberLong":"-1"}},` + tsField + `}`
	recPartial = `{"op":"c","ns":"admin.$cmd","o":{"applyOps":[{"op":"i","ns":"shop.a","o":{"_id":1}}],"partialTxn":true},` + tsField + `}`
	recCreate  = `{"op":"c","ns":"shop.$cmd",` + uiField + `,"o":{"create":"events","capped":true,"size":{"$numberLong":"1048576"},"idIndex":{"v":2,"key":{"_id":1},"name":"_id_"}},` + tsField + `}`
	recDrop    = `{"op":"c","ns":"shop.$cmd","o":{"drop":"events"},"o2":{"numRecords":0},` + tsField + `}`
	recRename  = `{"op":"c","ns":"shop.$cmd","o":{"renameCollection":"shop.tmp","to":"shop.final","stayTemp":false,"dropTarget":{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}}},` + tsField + `}`
	recIndex   = `{"op":"c","ns":"shop.$cmd","o":{"createIndexes":"users","v":2,"key":{"email":1},"name":"email_1","unique":true},` + tsField + `}`
	recCommit  = `{"op":"c","ns":"shop.$cmd","o":{"commitIndexBuild":"users","indexBuildUUID":{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}},"indexes":[{"v":2,"key":{"n":-1},"name":"n_-1"}]},` + tsField + `}`
	recDropIx  = `{"op":"c","ns":"shop.$cmd","o":{"dropIndexes":"users","index":"email_1"},"o2":{"v":2,"key":{"email":1},"name":"email_1"},` + tsField + `}`
	recDropDB  = `{"op":"c","ns":"shop.$cmd","o":{"dropDatabase":1},` + tsField + `}`
	recNoop    = `{"op":"n","ns":"","o":{"msg":"periodic noop"},` + tsField + `}`
	recLocal   = `{"op":"i","ns":"local.startup_log","o":{"_id":"x"},` + tsField + `}`
	recFerret  = `{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"op":"u","ns":"app.items","ts":{"$timestamp":{"t":1767225600,"i":3}},"o":{"$v":1,"$set":{"_id":1,"kept":true}},"t":{"$numberLong":"1"},"v":{"$numberLong":"2"},"wall":{"$date":"2026-01-01T00:00:00.123Z"},"o2":{"_id":1}}`
)

func parseRec(t testing.TB, s string) *Entry {
	t.Helper()
	e, err := ParseEntry(ej(t, s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return e
}

func TestParseEntry(t *testing.T) {
	e := parseRec(t, recInsert)
	if e.TS != (Timestamp{1767225600, 3}) || e.Op != "i" || e.NS != "shop.users" || e.DB() != "shop" {
		t.Fatalf("%+v", e)
	}
	if want := time.Date(2026, 1, 1, 0, 0, 0, 123e6, time.UTC); !e.Time().Equal(want) {
		t.Fatalf("time %s, want %s", e.Time(), want)
	}
	if got, want := e.TS.Pack(), uint64(1767225600)<<32|3; got != want || UnpackTimestamp(got) != e.TS {
		t.Fatalf("pack %d, want %d", got, want)
	}
	noWall := parseRec(t, `{"op":"n","ns":"","o":{},"ts":{"$timestamp":{"t":1767225600,"i":9}}}`)
	if !noWall.Time().Equal(time.Unix(1767225600, 0)) {
		t.Fatalf("time without wall: %s", noWall.Time())
	}
	for _, bad := range []string{
		`{"op":"i","ns":"a.b","o":{"_id":1}}`,
		`{"op":"x","ns":"a.b","o":{"_id":1},"ts":{"$timestamp":{"t":1,"i":1}}}`,
		`{"op":"i","ns":"ab","o":{"_id":1},"ts":{"$timestamp":{"t":1,"i":1}}}`,
		`{"op":"i","ns":"a.b","o":1,"ts":{"$timestamp":{"t":1,"i":1}}}`,
		`{"op":"i","ns":"a.b","o":{"_id":1},"ts":1}`,
		`{"op":"i","ns":"a.b","o":{"_id":1},"ts":{"$timestamp":{"t":1,"i":1}},"wall":"today"}`,
	} {
		if _, err := ParseEntry(ej(t, bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", bad, err)
		}
	}
	if _, err := ParseEntry([]byte{1, 2, 3}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad BSON: %v", err)
	}
}

func TestOps(t *testing.T) {
	cases := []struct {
		name, rec string
		o         OpsOptions
		want      string // the ops as relaxed Extended JSON of {kind, ...}
	}{
		{"insert", recInsert, OpsOptions{}, `insert shop.users {"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"name":"ann","n":1}`},
		{"v2 diff", recDiff, OpsOptions{}, `update shop.users {"$set":{"name":"bob","added":5,"addr.city":"Oslo","addr.zip":"0150","tags.3":"new"},"$unset":{"old":""}}`},
		{"v2 resize", recPull, OpsOptions{}, `diff shop.users {"stags":{"a":true,"l":2,"u1":"z"},"sitems":{"a":true,"s0":{"u":{"q":9}}}}`},
		{"v1", recV1, OpsOptions{}, `update shop.users {"$set":{"a.b":1},"$unset":{"c":true}}`},
		{"replacement", recRepl, OpsOptions{}, `replace shop.users {"_id":1,"only":"this"}`},
		{"delete", recDelete, OpsOptions{}, `delete shop.users {"$oid":"65a1b2c3d4e5f60718293a4b"}`},
		{"transaction", recTxn, OpsOptions{}, `insert shop.orders {"_id":1,"total":{"$numberDecimal":"9.99"}}; update shop.users {"$set":{"orders":2}}`},
		{"create", recCreate, OpsOptions{}, `create shop.events {"capped":true,"size":1048576,"idIndex":{"v":2,"key":{"_id":1},"name":"_id_"}}`},
		{"drop", recDrop, OpsOptions{}, `drop shop.events`},
		{"rename", recRename, OpsOptions{}, `rename shop.tmp shop.final dropTarget`},
		{"createIndexes", recIndex, OpsOptions{}, `createIndexes shop.users {"i":[{"v":2,"key":{"email":1},"name":"email_1","unique":true}]}`},
		{"commitIndexBuild", recCommit, OpsOptions{}, `createIndexes shop.users {"i":[{"v":2,"key":{"n":-1},"name":"n_-1"}]}`},
		{"dropIndexes", recDropIx, OpsOptions{}, `dropIndex shop.users email_1`},
		{"dropDatabase", recDropDB, OpsOptions{}, `dropDatabase shop.`},
		{"noop", recNoop, OpsOptions{}, ``},
		{"local", recLocal, OpsOptions{}, ``},
		{"FerretDB as MongoDB", recFerret, OpsOptions{}, `update app.items {"$set":{"_id":1,"kept":true}}`},
		{"FerretDB full image", recFerret, OpsOptions{FullImageUpdates: true}, `replace app.items {"_id":1,"kept":true}`},
	}
	for _, tc := range cases {
		ops, err := parseRec(t, tc.rec).Ops(tc.o)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var parts []string
		for _, op := range ops {
			s := op.Kind.String() + " " + op.DB + "." + op.Coll
			switch op.Kind {
			case OpInsert, OpReplace:
				s += " " + toJSON(op.Doc)
			case OpUpdate:
				s += " " + toJSON(op.Update)
			case OpDiff:
				s += " " + toJSON(op.Diff)
			case OpDelete:
				s += " " + op.ID.String()
			case OpCreate:
				s += " " + toJSON(op.Options)
			case OpCreateIndexes:
				s += " " + toJSON(bson.D{{Key: "i", Value: op.Indexes}})
			case OpDropIndex:
				s += " " + op.Index
			case OpRename:
				s += " " + op.ToDB + "." + op.To
				if op.DropTarget {
					s += " dropTarget"
				}
			}
			parts = append(parts, s)
		}
		if got := strings.Join(parts, "; "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	for _, rec := range []string{recPartial,
		`{"op":"c","ns":"shop.$cmd","o":{"emptycapped":"x"},` + tsField + `}`,
		`{"op":"u","ns":"a.b","o":{"$v":1,"$inc":{"a":1}},"o2":{"_id":1},` + tsField + `}`,
		`{"op":"u","ns":"a.b","o":{"$v":2,"diff":{"x":{"a":1}}},"o2":{"_id":1},` + tsField + `}`,
	} {
		if _, err := parseRec(t, rec).Ops(OpsOptions{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", rec, err)
		}
	}
	for _, rec := range []string{
		`{"op":"u","ns":"a.b","o":{"$v":2,"diff":{"sx":{"a":true,"u01":1}}},"o2":{"_id":1},` + tsField + `}`,
		`{"op":"u","ns":"a.b","o":{"$v":2,"diff":{"u":5}},"o2":{"_id":1},` + tsField + `}`,
		`{"op":"u","ns":"a.b","o":{"$set":{"a":1}},` + tsField + `}`,
		`{"op":"i","ns":"a.b","o":{"x":1},` + tsField + `}`,
		`{"op":"c","ns":"a.b","o":{"drop":"x"},` + tsField + `}`,
		`{"op":"c","ns":"a.$cmd","o":{"renameCollection":"a.x","to":"y"},` + tsField + `}`,
	} {
		if _, err := parseRec(t, rec).Ops(OpsOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", rec, err)
		}
	}
}

func TestApplyDiff(t *testing.T) {
	var doc bson.D
	if err := bson.Unmarshal(ej(t, `{"_id":1,"old":1,"name":"ann","addr":{"city":"Bergen"},"tags":["a","b","c"],"items":[{"q":1},{"q":2}]}`), &doc); err != nil {
		t.Fatal(err)
	}
	diff := ej(t, `{"d":{"old":false},"u":{"name":"bob"},"i":{"added":5},"saddr":{"u":{"city":"Oslo"}},"stags":{"a":true,"l":2,"u1":"z","u3":"w"},"sitems":{"a":true,"s1":{"i":{"r":true}}}}`)
	got, err := ApplyDiff(doc, diff)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := toJSON(got), `{"_id":1,"name":"bob","addr":{"city":"Oslo"},"tags":["a","z",null,"w"],"items":[{"q":1},{"q":2,"r":true}],"added":5}`; g != w {
		t.Fatalf("\n got %s\nwant %s", g, w)
	}
	if _, err := ApplyDiff(bson.D{{Key: "x", Value: int32(1)}}, ej(t, `{"sx":{"u":{"a":1}}}`)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("diff into a number: %v", err)
	}
}

// TestEventRoundTrip: an entry stored as an event decodes to the same
// entry and options; damaged events are refused.
func TestEventRoundTrip(t *testing.T) {
	e := parseRec(t, recFerret)
	ev, err := OplogEvent(5, e.Time().UnixNano(), e, true)
	if err != nil {
		t.Fatal(err)
	}
	got, o, err := DecodeOplogEvent(&ev)
	if err != nil || !bytes.Equal(got.Raw, e.Raw) || !o.FullImageUpdates || string(ev.Key) != "app.items" {
		t.Fatalf("%v %+v %+v", err, got, o)
	}
	for _, mut := range []func(*repo.Event){
		func(e *repo.Event) { e.Value[0] = 2 },
		func(e *repo.Event) { e.Value[1] = 0x80 },
		func(e *repo.Event) { e.Key = []byte("app.other") },
		func(e *repo.Event) { e.Value = e.Value[:len(e.Value)-1] },
		func(e *repo.Event) { e.Op = repo.OpDelete },
	} {
		c := ev
		c.Value = bytes.Clone(ev.Value)
		mut(&c)
		if _, _, err := DecodeOplogEvent(&c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("damaged event decoded: %v", err)
		}
	}
}

// TestBaseRoundTrip: every BSON type, decimals included, survives a base;
// truncation, miscounts and bad lines are ErrCorrupt.
func TestBaseRoundTrip(t *testing.T) {
	docs := []bson.Raw{
		ej(t, `{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"d":{"$numberDecimal":"12.345"},"dt":{"$date":"2026-01-01T00:00:00Z"},"bin":{"$binary":{"base64":"AQID","subType":"80"}},"i":{"$numberInt":"1"},"l":{"$numberLong":"1"},"f":{"$numberDouble":"1.0"},"re":{"$regularExpression":{"pattern":"a\n","options":"i"}},"ts":{"$timestamp":{"t":1,"i":2}},"min":{"$minKey":1},"max":{"$maxKey":1},"nested":{"a":[1,{"b":null}]},"s":"line\nbreak"}`),
		ej(t, `{"_id":"x","big":"`+strings.Repeat("z", 100000)+`"}`),
	}
	var b bytes.Buffer
	bw := NewBaseWriter(&b)
	if err := bw.Collection(&Collection{NS: "shop.users", Options: ej(t, `{"capped":true,"size":4096}`), Indexes: []bson.Raw{ej(t, `{"v":2,"key":{"_id":1},"name":"_id_"}`)}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := bw.Document(d); err != nil {
			t.Fatal(err)
		}
	}
	e := parseRec(t, recInsert)
	if err := bw.Oplog(e); err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Close(Timestamp{1767225600, 1}, Timestamp{1767225600, 3}, false); err != nil {
		t.Fatal(err)
	}
	enc := b.Bytes()
	if bytes.Count(enc, []byte("\n")) != 6 {
		t.Fatalf("a base of 6 records has %d lines", bytes.Count(enc, []byte("\n")))
	}
	recs, tr, err := readAll(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0].Collection.NS != "shop.users" || !bytes.Equal(recs[1].Document, docs[0]) || !bytes.Equal(recs[2].Document, docs[1]) ||
		recs[3].Oplog.TS != e.TS || tr.Documents != 2 || tr.EndTS() != (Timestamp{1767225600, 3}) {
		t.Fatalf("round trip: %+v %+v", recs, tr)
	}
	lines := bytes.SplitAfter(enc, []byte("\n"))
	for name, bad := range map[string][]byte{
		"truncated":       enc[:len(enc)-5],
		"no trailer":      bytes.Join(lines[:5], nil),
		"miscounted":      bytes.Join(append(append([][]byte{}, lines[:2]...), lines[3:]...), nil),
		"after trailer":   append(bytes.Clone(enc), "D AAAA\n"...),
		"bad magic":       append([]byte("strata-mongodb-base 2\n"), bytes.Join(lines[1:], nil)...),
		"bad tag":         bytes.Replace(enc, []byte("\nD "), []byte("\nX "), 1),
		"bad base64":      bytes.Replace(enc, []byte("\nD "), []byte("\nD !"), 1),
		"doc before coll": append([]byte(baseMagic+"\n"), lines[2]...),
	} {
		if _, _, err := readAll(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func readAll(b []byte) ([]Record, Trailer, error) {
	br, err := NewBaseReader(bytes.NewReader(b))
	if err != nil {
		return nil, Trailer{}, err
	}
	var out []Record
	for {
		r, err := br.Next()
		if err == io.EOF {
			return out, br.Trailer(), nil
		}
		if err != nil {
			return out, Trailer{}, err
		}
		out = append(out, r)
	}
}

// FuzzOplogEntry: any bytes parse to an entry or an error, never a panic;
// an entry's writes, and its diffs applied to a document, likewise.
func FuzzOplogEntry(f *testing.F) {
	for _, s := range []string{recInsert, recDiff, recPull, recV1, recRepl, recDelete, recTxn, recPartial, recCreate, recDrop, recRename, recIndex, recCommit, recDropIx, recDropDB, recNoop, recFerret} {
		f.Add([]byte(ej(f, s)))
	}
	doc := bson.D{{Key: "_id", Value: int32(1)}, {Key: "tags", Value: bson.A{"a", bson.D{{Key: "q", Value: int32(1)}}}}, {Key: "addr", Value: bson.D{{Key: "city", Value: "x"}}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		for _, fi := range []bool{false, true} {
			ops, err := e.Ops(OpsOptions{FullImageUpdates: fi})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("error without a sentinel: %v", err)
				}
				continue
			}
			for _, op := range ops {
				if op.Kind == OpDiff {
					d := make(bson.D, len(doc))
					copy(d, doc)
					ApplyDiff(d, op.Diff)
				}
			}
		}
	})
}

// FuzzBase: any bytes decode as a base or fail with ErrCorrupt.
func FuzzBase(f *testing.F) {
	var b bytes.Buffer
	bw := NewBaseWriter(&b)
	bw.Collection(&Collection{NS: "a.b", Options: emptyDoc})
	bw.Document(bson.Raw(ej(f, `{"_id":1,"x":"y"}`)))
	bw.Close(Timestamp{1, 1}, Timestamp{1, 1}, true)
	f.Add(b.Bytes())
	f.Add([]byte(baseMagic + "\nE AAAA\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, _, err := readAll(in); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error without ErrCorrupt: %v", err)
		}
	})
}

// FuzzOplogEvent: any event value decodes or fails with ErrCorrupt.
func FuzzOplogEvent(f *testing.F) {
	e, _ := ParseEntry(ej(f, recFerret))
	ev, _ := OplogEvent(1, 0, e, true)
	f.Add(ev.Key, ev.Value)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _, err := DecodeOplogEvent(&repo.Event{Seq: 1, Op: repo.OpPut, Key: key, Value: value})
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error without ErrCorrupt: %v", err)
		}
	})
}
