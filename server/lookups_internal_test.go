package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/strata-backup/strata/server/wire"
)

// TestWritePlanIsJSON: the hand-streamed plan answer is byte for byte what
// encoding/json writes for the same wire.Plan, with a Content-Length that
// matches, for plan logs of every length modulo 3 (base64 padding).
func TestWritePlanIsJSON(t *testing.T) {
	head := wire.Plan{Stream: "shop/\"users\"<>", Target: "position 7", Base: wire.Snapshot{ID: "ab"}, From: 8}
	for _, n := range []int{0, 1, 2, 3, 4, 1023, 1024, 1025, 200_000} {
		log := make([]byte, n)
		for i := range log {
			log[i] = byte(i * 7)
		}
		rec := httptest.NewRecorder()
		writePlan(rec, head, log)
		var want bytes.Buffer
		p := head
		p.Log = log
		if err := json.NewEncoder(&want).Encode(p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
			t.Fatalf("%d bytes of log: wrote\n%.300s\nwant\n%.300s", n, rec.Body, want.Bytes())
		}
		if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(want.Len()) {
			t.Fatalf("%d bytes of log: Content-Length %s, body %d", n, cl, want.Len())
		}
	}
}
