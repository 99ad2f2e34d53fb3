package spec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"testing"

	"github.com/restic/chunker"
	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/chunk"
)

func lengths(t *testing.T, c chunk.Chunker) string {
	t.Helper()
	var out []string
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return strings.Join(out, " ")
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strconv.Itoa(len(b)))
	}
}

// TestRecordChunkerVector recomputes FORMAT.md 5.2's gear table and record
// hash from the text, and checks the chunk boundaries the code produces.
func TestRecordChunkerVector(t *testing.T) {
	v := vector(t, "record-chunker")
	seed := [32]byte(unhex(t, v["seed"]))
	out := make([]byte, 2048)
	blake3.DeriveKey("strata v1 2026-11-24 record chunker gear table", seed[:], out)
	var g [256]uint64
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(out[8*i:])
	}
	for _, i := range []int{0, 1, 10, 255} {
		if got := fmt.Sprintf("0x%016x", g[i]); got != v[fmt.Sprintf("G[%d]", i)] {
			t.Errorf("G[%d] = %s, FORMAT.md says %s", i, got, v[fmt.Sprintf("G[%d]", i)])
		}
	}
	var h uint64
	for _, b := range []byte(`{"_id":1,"name":"alice"}` + "\n") {
		h = bits.RotateLeft64(h, 1) ^ g[b]
	}
	if v["hash input"] != `{"_id":1,"name":"alice"} followed by a newline` {
		t.Fatalf("FORMAT.md's hash input changed: %q", v["hash input"])
	}
	if got := fmt.Sprintf("0x%016x", h); got != v["hash"] {
		t.Errorf("record hash %s, FORMAT.md says %s", got, v["hash"])
	}

	inputA := func(n int) []byte {
		var b bytes.Buffer
		for i := range n {
			fmt.Fprintf(&b, `{"id":%s%d}`+"\n", strings.Repeat("a", i*i%97), i%10)
		}
		return b.Bytes()
	}
	inputB := append(append(bytes.Repeat([]byte("b"), 2500), '\n'), bytes.Repeat([]byte("c"), 100)...)
	for _, tc := range []struct {
		field string
		input []byte
		p     chunk.RecordParams
	}{
		{"A, 60 lines, 64/256/1024", inputA(60), chunk.RecordParams{Min: 64, Avg: 256, Max: 1024, Delim: '\n'}},
		{"A, 600 lines, 1024/2560/65536", inputA(600), chunk.RecordParams{Min: 1024, Avg: 2560, Max: 65536, Delim: '\n'}},
		{"B, 64/256/1000", inputB, chunk.RecordParams{Min: 64, Avg: 256, Max: 1000, Delim: '\n'}},
	} {
		if got := lengths(t, chunk.NewRecords(bytes.NewReader(tc.input), seed, tc.p)); got != v[tc.field] {
			t.Errorf("%s: chunk lengths %s, FORMAT.md says %s", tc.field, got, v[tc.field])
		}
	}
}

func TestRawChunkerVector(t *testing.T) {
	v := vector(t, "raw-chunker")
	pol, err := strconv.ParseUint(strings.TrimPrefix(v["polynomial"], "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	minSize, _ := strconv.Atoi(v["min"])
	maxSize, _ := strconv.Atoi(v["max"])
	avgBits, _ := strconv.Atoi(v["average bits"])
	input := make([]byte, 100000)
	d := blake3.New()
	d.Write([]byte("strata raw-mode test vector"))
	if _, err := io.ReadFull(d.Digest(), input); err != nil {
		t.Fatal(err)
	}
	c := chunk.NewRabin(bytes.NewReader(input), chunker.Pol(pol), chunk.RabinParams{Min: uint(minSize), Max: uint(maxSize), AverageBits: avgBits})
	if got := lengths(t, c); got != v["chunk lengths"] {
		t.Errorf("raw chunk lengths %s, FORMAT.md says %s", got, v["chunk lengths"])
	}
}
