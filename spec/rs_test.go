package spec

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo/shard"
)

// An independent implementation of FORMAT.md section 9's encoding matrix,
// written from the text alone (GF(2^8) over 0x11d, E = V·T⁻¹), so that the
// spec, not the library, is what the stored parity bytes are checked against.

func gfMul(a, b byte) byte {
	var p byte
	for b > 0 {
		if b&1 != 0 {
			p ^= a
		}
		carry := a & 0x80
		a <<= 1
		if carry != 0 {
			a ^= 0x1d // x^8 = x^4 + x^3 + x^2 + 1
		}
		b >>= 1
	}
	return p
}

func gfPow(a byte, n int) byte {
	r := byte(1)
	for range n {
		r = gfMul(r, a)
	}
	return r
}

func gfInv(a byte) byte {
	for x := 1; x < 256; x++ {
		if gfMul(a, byte(x)) == 1 {
			return byte(x)
		}
	}
	panic("no inverse of 0")
}

// invert returns the inverse of a square matrix by Gauss–Jordan elimination.
func invert(m [][]byte) [][]byte {
	n := len(m)
	a := make([][]byte, n)
	for i := range a {
		a[i] = make([]byte, 2*n)
		copy(a[i], m[i])
		a[i][n+i] = 1
	}
	for c := range n {
		p := c
		for a[p][c] == 0 {
			p++
		}
		a[c], a[p] = a[p], a[c]
		inv := gfInv(a[c][c])
		for j := range a[c] {
			a[c][j] = gfMul(a[c][j], inv)
		}
		for r := range n {
			if r != c && a[r][c] != 0 {
				f := a[r][c]
				for j := range a[r] {
					a[r][j] ^= gfMul(f, a[c][j])
				}
			}
		}
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = a[i][n:]
	}
	return out
}

// encodingMatrix returns E = V·T⁻¹ for k data and m parity shards.
func encodingMatrix(k, m int) [][]byte {
	v := make([][]byte, k+m)
	for r := range v {
		v[r] = make([]byte, k)
		for c := range k {
			v[r][c] = gfPow(byte(r), c)
		}
	}
	tInv := invert(v[:k])
	e := make([][]byte, k+m)
	for r := range e {
		e[r] = make([]byte, k)
		for c := range k {
			var s byte
			for i := range k {
				s ^= gfMul(v[r][i], tInv[i][c])
			}
			e[r][c] = s
		}
	}
	return e
}

func parityOf(e [][]byte, k int, data [][]byte) [][]byte {
	var out [][]byte
	for _, row := range e[k:] {
		p := make([]byte, len(data[0]))
		for c, d := range data {
			for i := range p {
				p[i] ^= gfMul(row[c], d[i])
			}
		}
		out = append(out, p)
	}
	return out
}

func TestReedSolomonMatrixVector(t *testing.T) {
	v := vector(t, "reed-solomon")
	k, _ := strconv.Atoi(v["k"])
	m, _ := strconv.Atoi(v["m"])
	var data [][]byte
	for _, f := range strings.Fields(v["data shards hex"]) {
		data = append(data, unhex(t, f))
	}
	e := encodingMatrix(k, m)
	for r := range k {
		for c := range k {
			if want := byte(0); r == c && e[r][c] != 1 || r != c && e[r][c] != want {
				t.Fatalf("top of E is not the identity: row %d %v", r, e[r])
			}
		}
	}
	var got []string
	for _, p := range parityOf(e, k, data) {
		got = append(got, hex.EncodeToString(p))
	}
	if g := strings.Join(got, " "); g != v["parity hex"] {
		t.Fatalf("parity from the spec's matrix: %s, FORMAT.md says %s", g, v["parity hex"])
	}
	// The matrix rows FORMAT.md quotes.
	for _, tc := range []struct {
		k, m int
		rows string
	}{{2, 1, "[[3 2]]"}, {4, 2, "[[27 28 18 20] [28 27 20 18]]"}} {
		if got := fmt.Sprint(encodingMatrix(tc.k, tc.m)[tc.k:]); got != tc.rows {
			t.Errorf("parity rows of %d+%d: %s, FORMAT.md says %s", tc.k, tc.m, got, tc.rows)
		}
	}
}

// TestShardParityMatchesSpec encodes packs with the code and checks every
// parity payload against the spec's matrix, for several k+m, so a library
// upgrade that changed the default matrix would fail here.
func TestShardParityMatchesSpec(t *testing.T) {
	for _, km := range [][2]int{{1, 1}, {2, 1}, {4, 2}, {8, 2}, {10, 4}, {3, 3}} {
		k, m := km[0], km[1]
		pack := make([]byte, 1000+k*37)
		for i := range pack {
			pack[i] = byte(i*7 + i/251)
		}
		_, objs, err := shard.Encode(pack, k, m)
		if err != nil {
			t.Fatal(err)
		}
		payload := func(o []byte) []byte { return o[shard.HeaderSize : len(o)-shard.ChecksumSize] }
		var data [][]byte
		for _, o := range objs[:k] {
			data = append(data, payload(o))
		}
		for j, p := range parityOf(encodingMatrix(k, m), k, data) {
			if !bytes.Equal(p, payload(objs[k+j])) {
				t.Fatalf("%d+%d: parity shard %d differs from FORMAT.md's matrix", k, m, k+j)
			}
		}
	}
}
