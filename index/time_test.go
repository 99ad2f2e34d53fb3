package index

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-01-01T00:00:00Z", time.Unix(1767225600, 0), true},
		{"2026-01-01T01:00:00.123456789+01:00", time.Unix(1767225600, 123456789), true},
		{"1767225600", time.Unix(1767225600, 0), true},
		{"1767225600.5", time.Unix(1767225600, 5e8), true},
		{"1767225600.000000001", time.Unix(1767225600, 1), true},
		{"1767225600.0000000001", time.Time{}, false},
		{"17672e5", time.Time{}, false},
		{"", time.Time{}, false},
		{"now", time.Time{}, false},
		{"+5", time.Time{}, false},
	}
	for _, tc := range cases {
		got, err := ParseTime(tc.in)
		if (err == nil) != tc.ok || tc.ok && !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
