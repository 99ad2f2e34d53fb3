package ops

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeDrillRecord: the decoder an index server runs on uploads never
// panics, and what it accepts is within its limits and encodes to a record
// that decodes to the same value.
func FuzzDecodeDrillRecord(f *testing.F) {
	f.Add([]byte(`{"stream":"shop/users","time":"2026-12-05T20:00:00Z","at":"2026-12-05T19:00:00Z","position":12,"ok":true,"rto_seconds":0.5,"records":3,"checks":[{"name":"restore","ok":true},{"name":"replay-proof","ok":false,"unproven":true,"note":"no later snapshot"}]}`))
	f.Add([]byte(`{"stream":"../x","time":"2026-12-05T20:00:00Z"}`))
	f.Add([]byte(`{"stream":"s","time":"2026-12-05T20:00:00Z","extra":1}`))
	f.Add([]byte(`{"stream":"s","time":"2026-12-05T20:00:00Z"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeDrillRecord(b)
		if err != nil {
			return
		}
		if len(b) > MaxRecordSize || rec.Time.IsZero() || rec.RTOSeconds < 0 {
			t.Fatalf("accepted an out-of-range record: %+v", rec)
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) <= MaxRecordSize {
			if _, err := DecodeDrillRecord(again); err != nil {
				t.Fatalf("a record re-encoded from an accepted one is refused: %v\n%s", err, again)
			}
		}
	})
}
