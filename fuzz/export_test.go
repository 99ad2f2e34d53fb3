package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/ndjson"
)

// FuzzExportChecker: the ndjson export validator never panics, and every
// non-blank line of an export it accepts is a UTF-8 JSON object whose key
// the restore's reader (KeyOf) finds; without duplicates allowed, no key
// repeats.
func FuzzExportChecker(f *testing.F) {
	f.Add([]byte("{\"_id\":\"a\"}\n{\"_id\":2,\"v\":[1,{}]}\r\n\n"), false)
	f.Add([]byte("{\"_id\":\"b\"}\n{\"_id\":\"a\"}\n{\"_id\":\"b\"}\n"), true)
	f.Add([]byte("\x00\xff{\"_id\":1}"), false)
	f.Fuzz(func(t *testing.T, export []byte, allowDup bool) {
		c := ndjson.NewExportChecker("_id", allowDup)
		_, err := io.Copy(io.Discard, c.Reader(bytes.NewReader(export)))
		if err != nil {
			if !errors.Is(err, ndjson.ErrBadExport) {
				t.Fatalf("error without ErrBadExport: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, line := range bytes.Split(export, []byte("\n")) {
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if !utf8.Valid(line) || !json.Valid(line) {
				t.Fatalf("accepted %q", line)
			}
			k, err := ndjson.KeyOf(line, "_id")
			if err != nil {
				t.Fatalf("accepted %q: %v", line, err)
			}
			if seen[string(k)] && !allowDup {
				t.Fatalf("accepted a repeated key %q", k)
			}
			seen[string(k)] = true
		}
	})
}

// FuzzCheckEvent: an event the parser and CheckEvent accept is a delete, or
// a put whose doc holds its key in the key field.
func FuzzCheckEvent(f *testing.F) {
	f.Add([]byte(`{"seq":1,"ts":1,"op":"put","key":"k","doc":{"_id":"k","v":1}}`))
	f.Add([]byte(`{"seq":1,"ts":1,"op":"put","key":"k","doc":{"_id":"j"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ndjson.ParseEvent(line)
		if err != nil || ndjson.CheckEvent(&e, "_id") != nil {
			return
		}
		if e.Op == repo.OpPut {
			k, err := ndjson.KeyOf(e.Value, "_id")
			if err != nil || !bytes.Equal(k, e.Key) {
				t.Fatalf("accepted %q: doc key %q, %v", line, k, err)
			}
		}
	})
}
