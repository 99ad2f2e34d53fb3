package fuzz

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
)

// FuzzScrubRecord: the scrub record decoder (FORMAT.md §24.2), which the
// keyless server runs on uploads and on what it finds in the store, never
// panics, fails only with ErrCorrupt, and what it accepts encodes and
// decodes again to the same record.
func FuzzScrubRecord(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-05T20:00:00Z","keyed":false,"cycle_start":"2026-12-01T00:00:00Z","cycle_seconds":2592000,"next":"","packs_read":3,"bytes_read":1000,"bad_shards":1,"repaired":1,"unrepaired":0}`))
	f.Add([]byte(`{"time":"2026-12-05T20:00:00Z","next":"zz","cycle_seconds":-1}`))
	f.Add([]byte(`{"time":"2026-12-05T20:00:00Z","next":"00000000000000000000000000000000000000000000000000000000000000ff"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		name := repo.ScrubName(1)
		r, err := ops.DecodeScrub(name, data)
		if err != nil {
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ops.DecodeScrub(name, b)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", b, b2)
		}
	})
}
