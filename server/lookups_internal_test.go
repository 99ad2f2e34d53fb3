package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// TestAppendPlanIsJSON: the hand-built plan answer is byte for byte what
// encoding/json writes for the same wire.Plan, with and without next, for
// strings that need escaping and strings that do not, for plan logs of
// every length modulo 3 (base64 padding) and around base64's internal
// chunks.
func TestAppendPlanIsJSON(t *testing.T) {
	pos := uint64(41)
	received := time.Date(2026, 12, 6, 1, 2, 3, 4, time.UTC)
	label := &repo.Label{Version: 1, Stream: "shop/users", Time: received.Add(-time.Hour), Position: &pos, Format: "ndjson",
		Size: 1 << 30, NewBlobs: 7, StoredBytes: 1 << 20, Received: &received, By: "ci"}
	base := wire.Snapshot{ID: "ab", Label: label}
	baseJSON, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	heads := []wire.Plan{
		{Stream: "shop/\"users\"<>", Target: "position 7", From: 8},
		{Stream: "shop/users", Target: "2026-12-06T00:00:00.5Z", From: 42, Next: "AQABAgMEBQYHCAkKCwwNDg8"},
		{Stream: "shop/ü\u2028\x01", Target: "position 18446744073709551615", From: 1<<64 - 1, Next: "a&b"},
	}
	for _, head := range heads {
		for _, n := range []int{0, 1, 2, 3, 4, 1023, 1024, 1025, 200_000} {
			log := make([]byte, n)
			for i := range log {
				log[i] = byte(i * 7)
			}
			got := appendPlan([]byte("junk"), head, baseJSON, log)[4:]
			var want bytes.Buffer
			p := head
			p.Base, p.Log = base, log
			if err := json.NewEncoder(&want).Encode(p); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%q, %d bytes of log: wrote\n%.400s\nwant\n%.400s", head.Stream, n, got, want.Bytes())
			}
		}
	}
}
