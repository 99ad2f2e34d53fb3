package fuzz

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/ndjson"
)

// FuzzEvent: the change-event parser never panics, accepts only valid JSON
// objects, and what it accepts survives the segment encoding unchanged.
func FuzzEvent(f *testing.F) {
	f.Add([]byte(`{"seq":1,"ts":1767225601,"op":"put","key":"k","doc":{"_id":"k","v":[1,2,{"a":null}]}}`))
	f.Add([]byte(`{"seq":2,"ts":"2026-01-01T00:00:00.25Z","op":"delete","key":"\u00e9"}`))
	f.Add([]byte(`{"seq":3,"ts":1.5,"op":"put","key":17,"doc":"x"}`))
	f.Add([]byte(`{"seq":1,"ts":1,"op":"put","key":"k","doc":{"a":[[[[[[[[]]]]]]]]}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ndjson.ParseEvent(line)
		if err != nil {
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		if e.Seq == 0 || e.Time < 0 || (e.Op != repo.OpPut && e.Op != repo.OpDelete) {
			t.Fatalf("accepted out-of-range event %+v", e)
		}
		if e.Op == repo.OpPut && !json.Valid(e.Value) {
			t.Fatalf("accepted a put whose doc is not JSON: %q", e.Value)
		}
		enc := repo.AppendEvent(nil, &e)
		n := 0
		err = repo.DecodeEvents("fuzz", enc, func(d *repo.Event) error {
			n++
			if d.Seq != e.Seq || d.Time != e.Time || d.Op != e.Op || !bytes.Equal(d.Key, e.Key) || !bytes.Equal(d.Value, e.Value) {
				t.Fatalf("round trip changed the event: %+v -> %+v", e, d)
			}
			return nil
		})
		if err != nil || n != 1 {
			t.Fatalf("round trip: %d events, %v", n, err)
		}
	})
}

// FuzzDecodeEvents: stored event records never panic the decoder or make it
// allocate; what it accepts re-encodes to the same bytes.
func FuzzDecodeEvents(f *testing.F) {
	var seed []byte
	seed = repo.AppendEvent(seed, &repo.Event{Seq: 1, Time: 5, Op: repo.OpPut, Key: []byte("a"), Value: []byte(`{}`)})
	seed = repo.AppendEvent(seed, &repo.Event{Seq: 2, Time: 5, Op: repo.OpDelete, Key: []byte("a")})
	f.Add(seed)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var re []byte
		err := repo.DecodeEvents("fuzz", b, func(e *repo.Event) error {
			if len(e.Key) > repo.MaxEventKey || len(e.Value) > repo.MaxEventValue {
				t.Fatalf("accepted an event over the limits")
			}
			re = repo.AppendEvent(re, e)
			return nil
		})
		if err == nil && !bytes.Equal(re, b) && !(len(b) == 0 && len(re) == 0) {
			// Varints have one canonical form only if the encoder wrote
			// them; a decoder accepting a non-minimal varint would re-encode
			// shorter, which is harmless but must not change the content.
			var again []byte
			repo.DecodeEvents("fuzz", re, func(e *repo.Event) error { again = repo.AppendEvent(again, e); return nil })
			if !bytes.Equal(again, re) {
				t.Fatalf("decode is not stable")
			}
		}
	})
}

// FuzzSegment: segment manifests and names never panic their decoders, and
// what they accept is internally consistent.
func FuzzSegment(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"db","first":1,"last":3,"first_time":"2026-01-01T00:00:01Z","last_time":"2026-01-01T00:00:02Z","encoding":"events-v1","pack":{"id":"`+string(bytes.Repeat([]byte("ab"), 32))+`","length":100,"k":4,"m":2},"created":"2026-01-01T00:00:03Z","frames":[{"first":1,"events":2},{"first":3,"events":1}]}`),
		"logs/db/@00000000000000000001-00000000000000000003.1767225601000000000-1767225602000000000."+string(bytes.Repeat([]byte("cd"), 32)))
	f.Add([]byte(`{"version":2}`), "logs/a/b/@x")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		if s, err := repo.DecodeSegment("fuzz", b); err == nil {
			if s.First == 0 || s.Last < s.First || s.LastTime.Before(s.FirstTime) || len(s.Frames) == 0 {
				t.Fatalf("accepted an inconsistent manifest %+v", s)
			}
			var n uint64
			for _, fr := range s.Frames {
				n += uint64(fr.Events)
			}
			if n != s.Last-s.First+1 {
				t.Fatalf("frames hold %d events for %d-%d", n, s.First, s.Last)
			}
		}
		if k, err := repo.ParseSegmentName(name); err == nil {
			if k.Name() != name {
				t.Fatalf("name %q parses to %+v which names %q", name, k, k.Name())
			}
			if k.First == 0 || k.Last < k.First || k.LastTime < k.FirstTime || repo.ValidStream(k.Stream) != nil {
				t.Fatalf("accepted an inconsistent name %+v", k)
			}
		}
	})
}
