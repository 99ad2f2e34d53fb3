package ndjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		line    string
		want    repo.Event
		wantErr string
	}{
		{line: `{"seq":1,"ts":1767225601,"op":"put","key":"k1","doc":{"_id":"k1","v":1}}`,
			want: repo.Event{Seq: 1, Time: 1767225601e9, Op: repo.OpPut, Key: []byte("k1"), Value: []byte(`{"_id":"k1","v":1}`)}},
		{line: ` { "doc" : [1,2] , "key" : 42 , "op":"put", "ts":"2026-01-01T00:00:00.5Z", "seq":7 } `,
			want: repo.Event{Seq: 7, Time: 1767225600_500000000, Op: repo.OpPut, Key: []byte("42"), Value: []byte(`[1,2]`)}},
		{line: `{"seq":2,"ts":1767225601.000000001,"op":"delete","key":"\u00e9t\u00e9"}`,
			want: repo.Event{Seq: 2, Time: 1767225601_000000001, Op: repo.OpDelete, Key: []byte("été")}},
		{line: `{"seq":3,"ts":1,"op":"delete","key":"x","doc":{"ignored":true},"extra":[{}]}`,
			want: repo.Event{Seq: 3, Time: 1e9, Op: repo.OpDelete, Key: []byte("x")}},
		{line: `{"seq":0,"ts":1,"op":"put","key":"x","doc":1}`, wantErr: "positive integer"},
		{line: `{"seq":-1,"ts":1,"op":"put","key":"x","doc":1}`, wantErr: "positive integer"},
		{line: `{"seq":1.5,"ts":1,"op":"put","key":"x","doc":1}`, wantErr: "positive integer"},
		{line: `{"seq":1,"ts":-1,"op":"put","key":"x","doc":1}`, wantErr: "unix seconds"},
		{line: `{"seq":1,"ts":1e9,"op":"put","key":"x","doc":1}`, wantErr: "unix seconds"},
		{line: `{"seq":1,"ts":1.0000000001,"op":"put","key":"x","doc":1}`, wantErr: "unix seconds"},
		{line: `{"seq":1,"ts":"yesterday","op":"put","key":"x","doc":1}`, wantErr: "RFC 3339"},
		{line: `{"seq":1,"ts":1,"op":"upsert","key":"x","doc":1}`, wantErr: "want \"put\""},
		{line: `{"seq":1,"ts":1,"op":"put","key":{"a":1},"doc":1}`, wantErr: "string or a number"},
		{line: `{"seq":1,"ts":1,"op":"put","key":"x"}`, wantErr: `needs "doc"`},
		{line: `{"seq":1,"ts":1,"op":"put","doc":1}`, wantErr: `needs "seq"`},
		{line: `{"seq":1,"ts":1,"op":"put","key":"x","doc":{"a":}}`, wantErr: "invalid JSON"},
		{line: `{"seq":1,"ts":1,"op":"put","key":"x","doc":{"a":1}} trailing`, wantErr: "after the object"},
		{line: `{"seq":1,"ts":1,"op":"put","key":"x","doc":"unterminated}`, wantErr: "invalid JSON"},
		{line: `[1]`, wantErr: "not a JSON object"},
		{line: ``, wantErr: "not a JSON object"},
	}
	for _, tt := range tests {
		got, err := ParseEvent([]byte(tt.line))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseEvent(%s) = %v, want error containing %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEvent(%s): %v", tt.line, err)
			continue
		}
		if got.Seq != tt.want.Seq || got.Time != tt.want.Time || got.Op != tt.want.Op || !bytes.Equal(got.Key, tt.want.Key) || !bytes.Equal(got.Value, tt.want.Value) {
			t.Errorf("ParseEvent(%s) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

// The scanner must agree with encoding/json on what is valid JSON.
func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`,
		`{"a":.5}`, `{"a":"\x"}`, `{"a":"tab	here"}`, `{"a":tru}`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":[1,]}`,
		`{"a":"\ud800"}`, `{"a":1}}`, ` {"a" : true } `, `{"a":"` + "\xff" + `"}`, `{"a":-}`, `{"a":1e}`,
	} {
		err := fields([]byte(s), func(_, _ []byte) bool { return true })
		if (err == nil) != json.Valid([]byte(s)) {
			t.Errorf("%q: scanner says %v, encoding/json says valid=%v", s, err, json.Valid([]byte(s)))
		}
	}
}

func TestKeyOf(t *testing.T) {
	tests := []struct{ line, field, want, err string }{
		{`{"_id":"abc","x":1}`, "_id", "abc", ""},
		{`{"x":{"_id":"inner"},"_id":"outer"}`, "_id", "outer", ""},
		{`{"id":17}`, "id", "17", ""},
		{`{"\u005fid":"esc"}`, "_id", "esc", ""},
		{`{"x":1}`, "_id", "", "no \"_id\""},
		{`{"_id":null}`, "_id", "", "string or a number"},
		{`not json`, "_id", "", "not a JSON object"},
	}
	for _, tt := range tests {
		got, err := KeyOf([]byte(tt.line), tt.field)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("KeyOf(%s) err = %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("KeyOf(%s) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}

func TestOrderChecker(t *testing.T) {
	tests := []struct {
		export string
		sorted bool
	}{
		{"{\"_id\":\"a\"}\n{\"_id\":\"b\"}\n", true},
		{"{\"_id\":\"a\"}\n{\"_id\":\"b\"}", true}, // no final newline
		{"{\"_id\":\"b\"}\n{\"_id\":\"a\"}\n", false},
		{"{\"_id\":\"a\"}\n{\"_id\":\"a\"}\n", false}, // duplicate
		{"{\"_id\":\"a\"}\n{\"x\":1}\n", false},
		{"{\"_id\":\"a\"}\n\n{\"_id\":\"b\"}\n", false}, // a blank line is not a document
	}
	for _, tt := range tests {
		c := NewOrderChecker("_id")
		// Feed in awkward pieces: lines split across writes.
		for i := 0; i < len(tt.export); i += 3 {
			c.Write([]byte(tt.export[i:min(i+3, len(tt.export))]))
		}
		if got, why := c.Sorted(); got != tt.sorted {
			t.Errorf("%q: sorted = %v (%s), want %v", tt.export, got, why, tt.sorted)
		}
	}
}

func TestMerge(t *testing.T) {
	export := "{\"_id\":\"b\",\"v\":0}\n{\"_id\":\"d\",\"v\":0}\n{\"_id\":\"f\",\"v\":0}\n"
	ch := NewChanges()
	for _, e := range []repo.Event{
		{Op: repo.OpPut, Key: []byte("a"), Value: []byte(`{"_id":"a","v":1}`)},
		{Op: repo.OpDelete, Key: []byte("d")},
		{Op: repo.OpPut, Key: []byte("f"), Value: []byte(`{"_id":"f","v":1}`)},
		{Op: repo.OpPut, Key: []byte("e"), Value: []byte(`{"_id":"e","v":1}`)},
		{Op: repo.OpDelete, Key: []byte("e")},  // put then delete: gone
		{Op: repo.OpDelete, Key: []byte("zz")}, // delete of a missing key: nothing
		{Op: repo.OpPut, Key: []byte("g"), Value: []byte(`{"_id":"g","v":1}`)},
	} {
		ch.Apply(&e)
	}
	want := "{\"_id\":\"a\",\"v\":1}\n{\"_id\":\"b\",\"v\":0}\n{\"_id\":\"f\",\"v\":1}\n{\"_id\":\"g\",\"v\":1}\n"
	var sorted, unsorted bytes.Buffer
	if err := Merge(strings.NewReader(export), "_id", ch, &sorted); err != nil {
		t.Fatal(err)
	}
	if sorted.String() != want {
		t.Errorf("Merge:\n%s\nwant\n%s", sorted.String(), want)
	}
	shuffled := "{\"_id\":\"f\",\"v\":0}\n{\"_id\":\"b\",\"v\":0}\n{\"_id\":\"d\",\"v\":0}"
	if err := MergeUnsorted(strings.NewReader(shuffled), "_id", ch, &unsorted); err != nil {
		t.Fatal(err)
	}
	if unsorted.String() != want {
		t.Errorf("MergeUnsorted:\n%s\nwant\n%s", unsorted.String(), want)
	}
	if err := Merge(strings.NewReader(shuffled), "_id", ch, &bytes.Buffer{}); !errors.Is(err, ErrUnsorted) {
		t.Errorf("Merge of an unsorted export: %v, want ErrUnsorted", err)
	}
}
