package shard

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/zeebo/blake3"
)

// referenceEncode is Encode as it was before the Writer: the pack copied
// into freshly zeroed objects one shard at a time, parity over them, then
// checksums. The Writer must give the same bytes (FORMAT.md §9).
func referenceEncode(t *testing.T, pack []byte, k, m int) ([32]byte, [][]byte) {
	t.Helper()
	id := blake3.Sum256(pack)
	h := NewHeader(k, m, uint64(len(pack)), id)
	objs := make([][]byte, k+m)
	payloads := make([][]byte, k+m)
	for i := range objs {
		h.Index = i
		obj := h.append(make([]byte, 0, h.Size()))
		obj = obj[:HeaderSize+int(h.ShardLen)]
		if i < k {
			start := min(len(pack), i*int(h.ShardLen))
			copy(obj[HeaderSize:], pack[start:min(len(pack), start+int(h.ShardLen))])
		}
		objs[i] = obj
		payloads[i] = obj[HeaderSize:len(obj):len(obj)]
	}
	if m > 0 {
		enc, err := encoder(k, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(payloads); err != nil {
			t.Fatal(err)
		}
	}
	for i, obj := range objs {
		sum := blake3.Sum256(obj)
		objs[i] = append(obj, sum[:]...)
	}
	return id, objs
}

// TestWriterMatchesReference writes packs in pieces of several sizes
// (crossing shard boundaries mid-piece) and checks every object against
// the reference encoding.
func TestWriterMatchesReference(t *testing.T) {
	for _, tc := range []struct{ k, m, n int }{
		{1, 0, 1}, {1, 1, 100}, {2, 1, 3}, {8, 2, 3}, {8, 2, 13}, {4, 2, 4096}, {8, 2, 1<<20 + 7}, {10, 4, 99999}, {3, 0, 10}, {7, 3, 70001},
	} {
		for _, piece := range []int{1, 7, 4096, 1 << 30} {
			t.Run(fmt.Sprintf("%d+%d/%d/%d", tc.k, tc.m, tc.n, piece), func(t *testing.T) {
				pack := randomPack(tc.n, uint64(tc.n))
				wantID, want := referenceEncode(t, pack, tc.k, tc.m)
				w, err := NewWriter(tc.k, tc.m, tc.n)
				if err != nil {
					t.Fatal(err)
				}
				for p := pack; len(p) > 0; {
					n := min(piece, len(p))
					if _, err := w.Write(p[:n]); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
				id, objs, err := w.Finish()
				if err != nil {
					t.Fatal(err)
				}
				if id != wantID {
					t.Fatalf("pack ID %x, want %x", id[:4], wantID[:4])
				}
				for i := range want {
					if !bytes.Equal(objs[i], want[i]) {
						t.Fatalf("shard %d differs from the reference encoding", i)
					}
				}
			})
		}
	}
}

// TestWriterRefusesMisuse: a write past the declared length, a short
// pack, and a second Finish are errors.
func TestWriterRefusesMisuse(t *testing.T) {
	w, err := NewWriter(4, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 11)); err == nil {
		t.Fatal("write past the pack length accepted")
	}
	if _, err := w.Write(make([]byte, 9)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(); err == nil {
		t.Fatal("finish of a short pack accepted")
	}
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(); err == nil {
		t.Fatal("second finish accepted")
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("write after finish accepted")
	}
	for _, n := range []int{0, -1, MaxPackLen + 1} {
		if _, err := NewWriter(4, 2, n); err == nil {
			t.Fatalf("pack length %d accepted", n)
		}
	}
	if _, err := NewWriter(0, 2, 10); err == nil {
		t.Fatal("k = 0 accepted")
	}
}
