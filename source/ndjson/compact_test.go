package ndjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCompactJSON: on valid JSON, compactJSON writes what encoding/json's
// Compact writes, so the canonical value of FORMAT.md §11.1 is that of the
// standard library.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"_id":"a","n":1}`, ` { "_id" : "a b" ,` + "\t" + `"n" : [ 1 , 2 ] } `, `{"s":"q\"uo te\\","t":"\u00e9 \n"}`, `{"a":{"b":[true, false, null]}}`, "{\"x\":\r\n1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		var want, buf bytes.Buffer
		if err := json.Compact(&want, b); err != nil {
			t.Fatal(err)
		}
		if got := compactJSON(&buf, b); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("compactJSON(%q) = %q, json.Compact %q", b, got, want.Bytes())
		}
	})
}
