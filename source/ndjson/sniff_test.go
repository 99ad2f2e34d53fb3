package ndjson_test

import (
	"strings"
	"testing"

	"github.com/strata-backup/strata/source/ndjson"
)

func TestSniffNDJSON(t *testing.T) {
	for _, tc := range []struct {
		head string
		all  bool
		want bool
	}{
		{`{"_id":1}` + "\n" + `{"_id":"b"}` + "\n", true, true},
		{`{"_id":1}` + "\n" + `{"_id":"b"}`, true, true}, // the whole export, last line unterminated
		{`{"_id":1}` + "\n" + `{"_id":"b`, false, true},  // cut mid-line by the 64 KiB window
		{`{"_id":1}` + "\r\n" + `{"_id":2}` + "\r\n", true, true},
		{`{"id":1}` + "\n", true, false},        // no key field
		{`{"_id":{"a":1}}` + "\n", true, false}, // key not a string or number
		{`[1,2]` + "\n", true, false},
		{`{"_id":1}` + "\n\n", true, false}, // an empty line
		{"", true, false},
		{`{"_id":1,"pad":"` + strings.Repeat("x", 100) + `"`, false, false}, // no complete line
	} {
		if got, why := ndjson.Sniff([]byte(tc.head), tc.all, "_id"); got != tc.want {
			t.Errorf("ndjson.Sniff(%q, %v) = %v (%s), want %v", tc.head, tc.all, got, why, tc.want)
		}
	}
}
