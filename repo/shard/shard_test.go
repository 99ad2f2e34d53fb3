package shard

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func randomPack(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ k, m, n int }{
		{1, 0, 1}, {1, 1, 100}, {2, 1, 3}, {4, 2, 4096}, {8, 2, 1}, {8, 2, 1<<20 + 7}, {10, 4, 99999}, {3, 0, 10},
	} {
		t.Run(fmt.Sprintf("%d+%d/%d", tc.k, tc.m, tc.n), func(t *testing.T) {
			pack := randomPack(tc.n, uint64(tc.n))
			id, objs, err := Encode(pack, tc.k, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(objs), tc.k+tc.m; got != want {
				t.Fatalf("%d shards, want %d", got, want)
			}
			for i, o := range objs {
				h, err := Verify(o)
				if err != nil {
					t.Fatalf("shard %d: %v", i, err)
				}
				if h.Index != i || h.PackID != id || h.PackLen != uint64(tc.n) {
					t.Fatalf("shard %d header %+v", i, h)
				}
			}
			got, rep, err := Decode(id, objs)
			if err != nil || rep.Damaged() {
				t.Fatalf("decode: %v %v", err, rep.Problems())
			}
			if !bytes.Equal(got, pack) {
				t.Fatal("decoded pack differs")
			}
			// Any m shards may go.
			for drop := 0; drop+tc.m <= len(objs) && tc.m > 0; drop++ {
				damaged := append([][]byte(nil), objs...)
				for i := drop; i < drop+tc.m; i++ {
					damaged[i] = nil
				}
				got, rep, err := Decode(id, damaged)
				if err != nil || !bytes.Equal(got, pack) || len(rep.Missing) != tc.m {
					t.Fatalf("drop %d..%d: err %v, equal %v, report %v", drop, drop+tc.m-1, err, bytes.Equal(got, pack), rep.Problems())
				}
				rebuilt, _, err := Rebuild(id, damaged)
				if err != nil {
					t.Fatal(err)
				}
				for i := range objs {
					if (rebuilt[i] != nil) != (damaged[i] == nil) {
						t.Fatalf("rebuild: shard %d rebuilt=%v missing=%v", i, rebuilt[i] != nil, damaged[i] == nil)
					}
					if rebuilt[i] != nil && !bytes.Equal(rebuilt[i], objs[i]) {
						t.Fatalf("rebuilt shard %d differs from the original", i)
					}
				}
			}
		})
	}
}

func TestDamageDetected(t *testing.T) {
	pack := randomPack(50000, 3)
	id, objs, err := Encode(pack, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := Encode(randomPack(50000, 4), 4, 2)
	flip := func(off func(n int) int) func([]byte) []byte {
		return func(b []byte) []byte { c := bytes.Clone(b); c[off(len(c))] ^= 1; return c }
	}
	cases := []struct {
		name   string
		shard  int
		damage func([]byte) []byte
	}{
		{"header magic", 0, flip(func(int) int { return 0 })},
		{"header pack length", 1, flip(func(int) int { return 13 })},
		{"payload", 2, flip(func(n int) int { return HeaderSize + 1000 })},
		{"parity payload", 5, flip(func(n int) int { return n / 2 })},
		{"checksum", 3, flip(func(n int) int { return n - 1 })},
		{"truncated", 0, func(b []byte) []byte { return b[:len(b)-10] }},
		{"too short", 1, func(b []byte) []byte { return b[:10] }},
		{"empty", 4, func(b []byte) []byte { return []byte{} }},
		{"extended", 2, func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
		{"shard of another pack", 1, func([]byte) []byte { return other[1] }},
		{"shard stored under the wrong index", 1, func([]byte) []byte { return objs[2] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			damaged := append([][]byte(nil), objs...)
			damaged[tc.shard] = tc.damage(objs[tc.shard])
			got, rep, err := Decode(id, damaged)
			if err != nil || !bytes.Equal(got, pack) {
				t.Fatalf("decode: %v", err)
			}
			if _, bad := rep.Bad[tc.shard]; !bad || len(rep.Bad) != 1 {
				t.Fatalf("report %v, want shard %d bad", rep.Problems(), tc.shard)
			}
			rebuilt, _, err := Rebuild(id, damaged)
			if err != nil || !bytes.Equal(rebuilt[tc.shard], objs[tc.shard]) {
				t.Fatalf("rebuild: %v", err)
			}
		})
	}
}

func TestTooFewShards(t *testing.T) {
	pack := randomPack(10000, 5)
	id, objs, _ := Encode(pack, 4, 2)
	damaged := append([][]byte(nil), objs...)
	damaged[0], damaged[3] = nil, nil
	damaged[5] = append(bytes.Clone(objs[5][:100]), 1)
	for _, fn := range []func() error{
		func() error { _, _, err := Decode(id, damaged); return err },
		func() error { _, _, err := Rebuild(id, damaged); return err },
		func() error { _, _, err := Decode(id, make([][]byte, 6)); return err },
	} {
		if err := fn(); !errors.Is(err, ErrTooFewShards) {
			t.Fatalf("got %v, want ErrTooFewShards", err)
		}
	}
	// The wrong pack ID is never "recovered".
	if _, _, err := Decode([32]byte{1}, objs); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("wrong ID: %v", err)
	}
}

func TestLocate(t *testing.T) {
	pack := randomPack(12345, 6)
	_, objs, _ := Encode(pack, 5, 1)
	h, _ := Verify(objs[0])
	for _, r := range [][2]int64{{0, 1}, {0, 12345}, {2468, 1}, {2468, 2}, {2469, 2469}, {100, 5000}, {12344, 1}} {
		spans, err := Locate(h, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, s := range spans {
			got = append(got, objs[s.Shard][s.Offset:s.Offset+s.Length]...)
		}
		if !bytes.Equal(got, pack[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v: located bytes differ", r)
		}
	}
	for _, r := range [][2]int64{{-1, 2}, {0, 0}, {12345, 1}, {12000, 400}} {
		if _, err := Locate(h, r[0], r[1]); err == nil {
			t.Fatalf("range %v accepted", r)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, tc := range []struct{ n, k, m int }{{0, 4, 2}, {10, 0, 1}, {10, 200, 56}, {10, 4, -1}} {
		if _, _, err := Encode(make([]byte, tc.n), tc.k, tc.m); err == nil {
			t.Fatalf("Encode(%d bytes, %d+%d) accepted", tc.n, tc.k, tc.m)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	pack := randomPack(4<<20, 7)
	b.SetBytes(int64(len(pack)))
	for b.Loop() {
		if _, _, err := Encode(pack, 8, 2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTwoMissing(b *testing.B) {
	pack := randomPack(4<<20, 8)
	id, objs, _ := Encode(pack, 8, 2)
	objs[1], objs[6] = nil, nil
	b.SetBytes(int64(len(pack)))
	for b.Loop() {
		if _, _, err := Decode(id, objs); err != nil {
			b.Fatal(err)
		}
	}
}
