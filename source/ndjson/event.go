package ndjson

import (
	"errors"
	"fmt"
	"strconv"
	"time"

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
		return ParseTimeText(string(s))
	}
	return parseUnix(string(v))
}

// ParseTimeText reads RFC 3339 (fractions allowed) or unix seconds (fractions
// allowed) and returns unix nanoseconds.
func ParseTimeText(s string) (int64, error) {
	if ns, err := parseUnix(s); err == nil {
		return ns, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q: want RFC 3339 or unix seconds", s)
	}
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<63-1)) {
		return 0, fmt.Errorf("time %q: outside 1970 to 2262", s)
	}
	return t.UnixNano(), nil
}

// parseUnix parses decimal unix seconds with up to nine fraction digits,
// exactly (no float rounding).
func parseUnix(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			break
		}
	}
	bad := fmt.Errorf("time %q: want unix seconds (fractions up to nanoseconds) or RFC 3339", s)
	if intPart == "" || len(frac) > 9 || len(intPart) > 1 && intPart[0] == '0' {
		return 0, bad
	}
	if len(s) > len(intPart) && frac == "" {
		return 0, bad
	}
	sec, err := strconv.ParseUint(intPart, 10, 63)
	if err != nil || sec > (1<<63-1)/1_000_000_000-1 {
		return 0, bad
	}
	var ns uint64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, bad
			}
			ns += uint64(frac[i] - '0')
		}
	}
	return int64(sec)*1e9 + int64(ns), nil
}
