package ndjson

import (
	"errors"
	"fmt"
	"strconv"

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
