package ndjson

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ParseEvent parses one change event line:
//
//	{"seq":N,"ts":T,"op":"put"|"delete","key":K,"doc":{...}}
//
// seq is a positive integer; ts is unix seconds (fractions allowed, to the
// nanosecond) or an RFC 3339 string; key is a string or a number; doc, for a
// put, is the whole new document (any JSON value, stored byte for byte).
// Other fields are ignored. The event's Key and Value alias line.
func ParseEvent(line []byte) (repo.Event, error) {
	var e repo.Event
	var seen struct{ seq, ts, op, key, doc bool }
	var ferr error
	err := fields(line, func(name, v []byte) bool {
		switch {
		case nameIs(name, "seq"):
			seen.seq = true
			e.Seq, ferr = strconv.ParseUint(string(v), 10, 64)
			if ferr != nil || e.Seq == 0 {
				ferr = fmt.Errorf("seq %s: want a positive integer", v)
			}
		case nameIs(name, "ts"):
			seen.ts = true
			e.Time, ferr = ParseTime(v)
		case nameIs(name, "op"):
			seen.op = true
			switch string(v) {
			case `"put"`:
				e.Op = repo.OpPut
			case `"delete"`:
				e.Op = repo.OpDelete
			default:
				ferr = fmt.Errorf("op %.40s: want \"put\" or \"delete\"", v)
			}
		case nameIs(name, "key"):
			seen.key = true
			e.Key, ferr = keyValue(v)
		case nameIs(name, "doc"):
			seen.doc = true
			e.Value = v
		}
		return ferr == nil
	})
	switch {
	case ferr != nil:
		return e, ferr
	case err != nil:
		return e, err
	case !seen.seq || !seen.ts || !seen.op || !seen.key:
		return e, errors.New(`an event needs "seq", "ts", "op" and "key"`)
	case e.Op == repo.OpPut && !seen.doc:
		return e, errors.New(`a put needs "doc"`)
	case e.Op == repo.OpDelete:
		e.Value = nil // a delete's doc, if any, is not state
	case len(e.Key) > repo.MaxEventKey:
		return e, fmt.Errorf("key of %d bytes, over the limit %d", len(e.Key), repo.MaxEventKey)
	case len(e.Value) > repo.MaxEventValue:
		return e, fmt.Errorf("doc of %d bytes, over the limit %d", len(e.Value), repo.MaxEventValue)
	}
	return e, nil
}

// ParseTime reads an instant as a JSON number of unix seconds (fractions to
// the nanosecond, no exponent) or a JSON string in RFC 3339 (or the same
// unix-seconds text), and returns unix nanoseconds. Instants before 1970
// are refused.
func ParseTime(v []byte) (int64, error) {
	if len(v) > 0 && v[0] == '"' {
		s, err := stringValue(v)
		if err != nil {
			return 0, err
		}
		return index.ParseTimeNanos(string(s))
	}
	return index.ParseUnixNanos(string(v))
}

// ErrBadEvent is returned (wrapped) by CheckEvent for an event whose
// document a point-in-time restore could not merge under its key.
var ErrBadEvent = errors.New("invalid change event")

// CheckEvent checks what ParseEvent cannot know without the stream's key
// field: a put's doc is a JSON object whose field (DefaultKeyField unless
// the stream's snapshots name another) holds a string or number equal to
// the event's key. A restore puts the doc where its key sorts, so a doc
// whose own key differs would make a wrong export with exit 0, and its key
// would read as two documents. A delete has no document to check.
func CheckEvent(e *repo.Event, field string) error {
	if e.Op != repo.OpPut {
		return nil
	}
	if !utf8.Valid(e.Value) {
		return fmt.Errorf("%w: doc is not UTF-8 text", ErrBadEvent)
	}
	var key []byte
	var kerr error
	found := false
	err := fields(e.Value, func(name, v []byte) bool {
		if nameIs(name, field) {
			if found {
				kerr = fmt.Errorf("%q appears twice in the doc", field)
				return false
			}
			found = true
			key, kerr = keyValue(v)
		}
		return kerr == nil
	})
	switch {
	case kerr != nil:
		return fmt.Errorf("%w: doc field %q: %v", ErrBadEvent, field, kerr)
	case err != nil:
		return fmt.Errorf("%w: doc: %v", ErrBadEvent, err)
	case !found:
		return fmt.Errorf("%w: doc has no %q field (the stream's key field; see --key-field)", ErrBadEvent, field)
	case !bytes.Equal(key, e.Key):
		return fmt.Errorf("%w: key %.60q differs from the doc's %q, %.60q", ErrBadEvent, e.Key, field, key)
	}
	return nil
}

// CheckEvents returns an admission function for a capture: it refuses what
// CheckEvent refuses, then asks next, if any.
func CheckEvents(field string, next func(*repo.Event) error) func(*repo.Event) error {
	return func(e *repo.Event) error {
		if err := CheckEvent(e, field); err != nil {
			return err
		}
		if next != nil {
			return next(e)
		}
		return nil
	}
}
