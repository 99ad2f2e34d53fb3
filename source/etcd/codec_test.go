package etcd

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/strata-backup/strata/repo"
)

func encodeSnapshot(t testing.TB, rev int64, kvs []KeyValue) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewSnapshotWriter(&b, rev, 0xc1)
	for i := range kvs {
		if err := w.Add(&kvs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decodeSnapshot(b []byte) (int64, []KeyValue, error) {
	r, err := NewSnapshotReader(bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	var out []KeyValue
	for {
		kv, err := r.Next()
		if err == io.EOF {
			return r.Revision, out, nil
		}
		if err != nil {
			return 0, nil, err
		}
		out = append(out, *kv)
	}
}

var testKVs = []KeyValue{
	{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1},
	{Key: []byte("a/b"), Value: nil, CreateRevision: 3, ModRevision: 9, Version: 4, Lease: 0x694d7a1b2c3d4e5f},
	{Key: []byte("z\x00\xff"), Value: bytes.Repeat([]byte{7}, 300), CreateRevision: 5, ModRevision: 10, Version: 2},
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, kvs := range [][]KeyValue{nil, testKVs} {
		b := encodeSnapshot(t, 10, kvs)
		rev, got, err := decodeSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		if rev != 10 || len(got) != len(kvs) {
			t.Fatalf("revision %d, %d keys; want 10, %d", rev, len(got), len(kvs))
		}
		for i := range kvs {
			g, w := got[i], kvs[i]
			if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.CreateRevision != w.CreateRevision ||
				g.ModRevision != w.ModRevision || g.Version != w.Version || g.Lease != w.Lease {
				t.Fatalf("key %d: got %+v, want %+v", i, g, w)
			}
		}
	}
}

func TestSnapshotDamage(t *testing.T) {
	good := encodeSnapshot(t, 10, testKVs)
	cases := map[string][]byte{
		"truncated":        good[:len(good)-2],
		"no trailer":       good[:bytes.LastIndexByte(good, recEnd)],
		"long varint":      append(good[:len(good)-1], 0x83, 0x00),
		"trailing garbage": append(bytes.Clone(good), 0),
		"wrong magic":      append([]byte("x"), good[1:]...),
		"empty":            nil,
	}
	// A key's mod revision past the snapshot's revision.
	bad := bytes.Clone(good)
	bad[len(snapshotMagic)] = 5 // revision 5 < mod revisions 9, 10
	cases["mod past revision"] = bad
	for name, b := range cases {
		if _, _, err := decodeSnapshot(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	var sink bytes.Buffer
	w := NewSnapshotWriter(&sink, 10, 0)
	w.Add(&testKVs[1])
	if err := w.Add(&testKVs[0]); err == nil {
		t.Error("a key out of order was accepted")
	}
}

func TestRevisionRoundTrip(t *testing.T) {
	rev := &Revision{Revision: 42, Changes: []Change{
		{Op: ChangePut, Key: []byte("k1"), Value: []byte("v"), CreateRevision: 42, Version: 1},
		{Op: ChangeDelete, Key: []byte("k2")},
		{Op: ChangePut, Key: []byte("k3"), Value: []byte{}, CreateRevision: 7, Version: 9, Lease: 12345},
	}}
	e, err := RevisionEvent(rev, 1e18)
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 42 || e.Time != 1e18 {
		t.Fatalf("event %d at %d", e.Seq, e.Time)
	}
	// Through the log's own event encoding, as a segment stores it.
	var got []repo.Event
	if err := repo.DecodeEvents("x", repo.AppendEvent(nil, &e), func(e *repo.Event) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRevisionEvent(&got[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rev) {
		t.Fatalf("got %+v\nwant %+v", back, rev)
	}
	if _, err := RevisionEvent(&Revision{Revision: 3}, 0); err == nil {
		t.Fatal("an empty revision was accepted")
	}
	for name, v := range map[string][]byte{
		"no changes": {0},
		"bad op":     {1, 9, 1, 'k'},
		"extra":      append(bytes.Clone(e.Value), 0),
		"truncated":  e.Value[:len(e.Value)-1],
		"create>rev": AppendRevision(nil, &Revision{Changes: []Change{{Op: ChangePut, Key: []byte("k"), CreateRevision: 43, Version: 1}}}),
	} {
		ev := e
		ev.Value = v
		if _, err := DecodeRevisionEvent(&ev); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	big := &Revision{Revision: 1, Changes: []Change{{Op: ChangePut, Key: []byte("k"), Value: make([]byte, MaxRevisionBytes), CreateRevision: 1, Version: 1}}}
	if _, err := RevisionEvent(big, 0); err == nil {
		t.Fatal("a revision larger than a log event was accepted")
	}
}

func FuzzSnapshotDecode(f *testing.F) {
	f.Add(encodeSnapshot(f, 10, testKVs))
	f.Add(encodeSnapshot(f, 1, nil))
	f.Add([]byte(snapshotMagic + "\x01\x00K\x01a\x00\x01\x01\x01\x00E\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rev, kvs, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes, header aside.
		again := encodeSnapshot(t, rev, kvs)
		r, _ := NewSnapshotReader(bytes.NewReader(b))
		r2, _ := NewSnapshotReader(bytes.NewReader(again))
		if r.ClusterID != 0xc1 {
			return
		}
		if r2.Revision != r.Revision || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%q\n%q", b, again)
		}
	})
}

func FuzzRevisionDecode(f *testing.F) {
	e, _ := RevisionEvent(&Revision{Revision: 9, Changes: []Change{
		{Op: ChangePut, Key: []byte("a"), Value: []byte("b"), CreateRevision: 3, Version: 2, Lease: 5},
		{Op: ChangeDelete, Key: []byte("c")},
	}}, 0)
	f.Add(uint64(9), e.Value)
	f.Add(uint64(1), []byte{1, 2, 1, 'x'})
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		ev := repo.Event{Seq: seq, Op: repo.OpPut, Key: []byte(RevisionEventKey), Value: v}
		rev, err := DecodeRevisionEvent(&ev)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		if got := AppendRevision(nil, rev); !bytes.Equal(got, v) {
			t.Fatalf("re-encoding differs:\n%x\n%x", v, got)
		}
	})
}
