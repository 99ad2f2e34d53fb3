package ndjson

import (
	"errors"
	"testing"
)

// TestFirstKey: when a chunk may begin inside a record, its first line is
// never trusted, even when KeyOf would read a key from a nested object in it.
func TestFirstKey(t *testing.T) {
	tail := `{"_id":"zzz","n":1},"_id":"k"}` + "\n"
	tests := []struct {
		chunk string
		whole bool
		want  string
	}{
		{tail + `{"_id":"m"}` + "\n", false, "m"},
		{tail + `{"_id":"m"}` + "\n", true, "zzz"}, // whole: the caller knows the chunk starts a record
		{tail, false, ""},                          // no record certainly starts here
		{tail + `{"_id":"m","cut at the largest size`, false, ""},
		{`{"_id":"last"}`, true, "last"}, // the export's final line needs no newline
	}
	for _, tt := range tests {
		got, err := firstKey([]byte(tt.chunk), "_id", tt.whole)
		if tt.want == "" {
			if !errors.Is(err, errNoRecordStart) {
				t.Errorf("firstKey(%q, %v) = %q, %v; want errNoRecordStart", tt.chunk, tt.whole, got, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("firstKey(%q, %v) = %q, %v; want %q", tt.chunk, tt.whole, got, err, tt.want)
		}
	}
}
