package index

import (
	"fmt"
	"strconv"
	"time"
)

// Times and restore targets have one spelling everywhere: the CLI's flags,
// the server's query parameters and NDJSON event times.

// FormatTime prints a time as RFC 3339 with the fractions it has, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseTime reads RFC 3339 or unix seconds, fractions allowed in both, and
// returns the instant in UTC.
func ParseTime(s string) (time.Time, error) {
	ns, err := ParseTimeNanos(s)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns).UTC(), nil
}

// ParseTarget reads a restore target given as a time (ParseTime) or a log
// position (a non-negative integer). With neither it returns nil; with both
// it is an error.
func ParseTarget(at, position string) (*Target, error) {
	switch {
	case at != "" && position != "":
		return nil, fmt.Errorf("give a time or a position, not both")
	case at != "":
		t, err := ParseTime(at)
		if err != nil {
			return nil, err
		}
		return &Target{Time: t}, nil
	case position != "":
		p, err := strconv.ParseUint(position, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("position %q: want a non-negative integer", position)
		}
		return &Target{Position: p, ByPos: true}, nil
	}
	return nil, nil
}

// ParseTimeNanos reads RFC 3339 (fractions allowed) or unix seconds (fractions
// allowed) and returns unix nanoseconds. Instants before 1970 or after 2262
// are refused.
func ParseTimeNanos(s string) (int64, error) {
	if ns, err := ParseUnixNanos(s); err == nil {
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

// ParseUnixNanos parses decimal unix seconds with up to nine fraction
// digits, exactly (no float rounding), and returns unix nanoseconds.
func ParseUnixNanos(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			break
		}
	}
	// Built only on failure: a change log parses a time per event.
	bad := func() error {
		return fmt.Errorf("time %q: want unix seconds (fractions up to nanoseconds) or RFC 3339", s)
	}
	if intPart == "" || len(frac) > 9 || len(intPart) > 1 && intPart[0] == '0' {
		return 0, bad()
	}
	if len(s) > len(intPart) && frac == "" {
		return 0, bad()
	}
	sec, err := strconv.ParseUint(intPart, 10, 63)
	if err != nil || sec > (1<<63-1)/1_000_000_000-1 {
		return 0, bad()
	}
	var ns uint64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, bad()
			}
			ns += uint64(frac[i] - '0')
		}
	}
	return int64(sec)*1e9 + int64(ns), nil
}
