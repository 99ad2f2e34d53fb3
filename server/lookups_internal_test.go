package server

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/strata-backup/strata/server/wire"
)

// TestAppendPlanIsJSON: the hand-built plan answer is byte for byte what
// encoding/json writes for the same wire.Plan, for plan logs of every
// length modulo 3 (base64 padding) and around base64's internal chunks.
func TestAppendPlanIsJSON(t *testing.T) {
	head := wire.Plan{Stream: "shop/\"users\"<>", Target: "position 7", Base: wire.Snapshot{ID: "ab"}, From: 8}
	for _, n := range []int{0, 1, 2, 3, 4, 1023, 1024, 1025, 200_000} {
		log := make([]byte, n)
		for i := range log {
			log[i] = byte(i * 7)
		}
		got := appendPlan([]byte("junk"), head, log)[4:]
		var want bytes.Buffer
		p := head
		p.Log = log
		if err := json.NewEncoder(&want).Encode(p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d bytes of log: wrote\n%.300s\nwant\n%.300s", n, got, want.Bytes())
		}
	}
}
