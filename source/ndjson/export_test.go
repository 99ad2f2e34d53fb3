package ndjson

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestExportChecker(t *testing.T) {
	tests := []struct {
		export   string
		allowDup bool
		wantErr  string // "" for a valid export
		sorted   bool
	}{
		{export: "{\"_id\":\"a\"}\n{\"_id\":\"b\"}\n", sorted: true},
		{export: "{\"_id\":\"a\"}\r\n\n  \n{\"_id\":2}", sorted: false}, // CRLF, blank lines, no final newline; "2" < "a"
		{export: "{\"_id\":\"b\"}\n{\"_id\":\"a\"}\n", sorted: false},
		{export: "{\"_id\":\"a\"}\n[1,2]\n", wantErr: "line 2: "},
		{export: "{\"_id\":\"a\"}\n\"text\"\n", wantErr: "line 2: "},
		{export: "{\"_id\":\"a\"}\n{\"x\":1}\n", wantErr: `line 2: document has no "_id" field`},
		{export: "{\"_id\":{\"a\":1}}\n", wantErr: "line 1: field \"_id\": a key must be a string or a number"},
		{export: "{\"_id\":[1]}\n", wantErr: "line 1: field \"_id\""},
		{export: "{\"_id\":null}\n", wantErr: "line 1: field \"_id\""},
		{export: "{\"_id\":true}\n", wantErr: "line 1: field \"_id\""},
		{export: "{\"_id\":1,\"_id\":2}\n", wantErr: "line 1: field \"_id\": appears twice"},
		{export: "{\"_id\":1,\"v\":}\n", wantErr: "line 1: invalid JSON"},                    // bad after the key
		{export: "{\"_id\":1} trailing\n", wantErr: "line 1: invalid JSON"},                  // data after the object
		{export: "{\"_id\":\"a\"}\n\x00\x01\xff\xfe\x89PNG\n", wantErr: "line 2: not UTF-8"}, // binary garbage
		{export: "\x1f\x8b\x08\x00\x00\x00\n", wantErr: "line 1: "},                          // a gzip header
		{export: "{\"_id\":\"a\",\"s\":\"\xff\"}\n", wantErr: "line 1: not UTF-8"},
		{export: "{\"_id\":\"a\"}\n{\"_id\":\"a\"}\n", wantErr: "line 2: key \"a\" repeats the line before"},
		{export: "{\"_id\":\"b\"}\n{\"_id\":\"a\"}\n{\"_id\":\"c\"}\n{\"_id\":\"b\"}\n", wantErr: "line 4: its key repeats line 1"},
		{export: "{\"_id\":\"a\"}\n{\"_id\":\"a\"}\n", allowDup: true, sorted: false},
		{export: "{\"_id\":\"b\"}\n{\"_id\":\"a\"}\n{\"_id\":\"b\"}\n", allowDup: true, sorted: false},
		{export: "{\"_id\":\"1\"}\n{\"_id\":1}\n", wantErr: "repeats"}, // a string and a number key with one text are one key
	}
	for _, tt := range tests {
		// Feed in awkward pieces: lines split across reads.
		c := NewExportChecker("_id", tt.allowDup)
		_, err := io.Copy(io.Discard, c.Reader(&smallReader{s: tt.export, n: 3}))
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.export, err)
			} else if got, why := c.Sorted(); got != tt.sorted {
				t.Errorf("%q: sorted = %v (%s), want %v", tt.export, got, why, tt.sorted)
			}
			continue
		}
		if !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: %v, want ErrBadExport with %q", tt.export, err, tt.wantErr)
		}
	}
}

// TestExportCheckerLongLine: binary data with no newline is refused at the
// line limit, not buffered to its end.
func TestExportCheckerLongLine(t *testing.T) {
	c := NewExportChecker("_id", false)
	c.maxLine = 4 << 20
	chunk := make([]byte, 1<<20)
	var err error
	for i := 0; i <= 4 && err == nil; i++ {
		_, err = c.Write(chunk)
	}
	if !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), "line 1: longer than") {
		t.Fatalf("long line: %v", err)
	}
}

type smallReader struct {
	s string
	n int
}

func (r *smallReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[n:]
	return n, nil
}

func TestCheckEvent(t *testing.T) {
	tests := []struct {
		line, field, wantErr string
	}{
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"_id":"a","v":1}}`, "_id", ""},
		{`{"seq":1,"ts":1,"op":"put","key":7,"doc":{"v":1,"_id":7}}`, "_id", ""},
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"id":"a"}}`, "id", ""},
		{`{"seq":1,"ts":1,"op":"delete","key":"a"}`, "_id", ""},
		{`{"seq":1,"ts":1,"op":"delete","key":"a","doc":{"_id":"b"}}`, "_id", ""}, // a delete's doc is not state
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"_id":"b"}}`, "_id", `key "a" differs from the doc's "_id", "b"`},
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"_id":"a"}}`, "id", `doc has no "id" field`},
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":[1]}`, "_id", "not a JSON object"},
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"_id":["a"]}}`, "_id", "a key must be a string or a number"},
		{`{"seq":1,"ts":1,"op":"put","key":"a","doc":{"_id":"a","_id":"b"}}`, "_id", "appears twice"},
		{"{\"seq\":1,\"ts\":1,\"op\":\"put\",\"key\":\"a\",\"doc\":{\"_id\":\"a\",\"s\":\"\xff\"}}", "_id", "not UTF-8"},
	}
	for _, tt := range tests {
		e, err := ParseEvent([]byte(tt.line))
		if err != nil {
			t.Fatalf("%s: %v", tt.line, err)
		}
		err = CheckEvent(&e, tt.field)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (!errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v, want %q", tt.line, err, tt.wantErr)
		}
	}
}
