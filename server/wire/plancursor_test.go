package wire_test

import (
	"encoding/base64"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// TestPlanLogPages: a plan log cut into pages at every boundary, each page
// encoded after the segment before it, decodes to the whole plan's keys,
// twins (a negative first − next) and time-uncertain spans (times going
// back) included.
func TestPlanLogPages(t *testing.T) {
	keys := planKeys()
	twin := keys[1]
	twin.ID[0] ^= 0xff
	keys = slices.Insert(keys, 2, twin)
	const from = 100
	for size := 1; size <= len(keys)+1; size++ {
		var got []repo.SegmentKey
		next, prev := uint64(from), int64(0)
		for i := 0; i < len(keys); i += size {
			page := keys[i:min(i+size, len(keys))]
			b := wire.AppendPlanLogAfter(nil, next, prev, page)
			dec, err := wire.DecodePlanLogAfter("shop/users", next, prev, b)
			if err != nil {
				t.Fatalf("pages of %d, page at %d: %v", size, i, err)
			}
			got = append(got, dec...)
			last := page[len(page)-1]
			next, prev = last.Last+1, last.LastTime
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("pages of %d: %+v\nwant %+v", size, got, keys)
		}
	}
	if _, err := wire.DecodePlanLogAfter("s", 1, -1, wire.AppendPlanLog(nil, 1, nil)); !errors.Is(err, wire.ErrBadPlanLog) {
		t.Fatalf("a page after a time before 1970: %v", err)
	}
}

// TestPlanCursor: a cursor reads back as written; every altered byte,
// length or version is an ErrBadPlanCursor or changes what the check
// binds; the check depends on every input.
func TestPlanCursor(t *testing.T) {
	at := index.Target{Time: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	var base, prev repo.ID
	base[0], prev[0] = 1, 2
	c := wire.PlanCursor{Index: 1024, Check: wire.PlanCursorCheck("shop/users", at, base, 100, 1024, prev)}
	s := c.String()
	if len(s) > wire.MaxPlanCursor {
		t.Fatalf("cursor %q over %d characters", s, wire.MaxPlanCursor)
	}
	back, err := wire.ParsePlanCursor(s)
	if err != nil || back != c {
		t.Fatalf("read back %+v, %v; want %+v", back, err, c)
	}
	// Every bit flipped: refused, or another index or check.
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	for i := range raw {
		for bit := range 8 {
			b := slices.Clone(raw)
			b[i] ^= 1 << bit
			got, err := wire.ParsePlanCursor(base64.RawURLEncoding.EncodeToString(b))
			if err == nil && got == c {
				t.Fatalf("byte %d bit %d flipped reads as the same cursor", i, bit)
			}
			if err != nil && !errors.Is(err, wire.ErrBadPlanCursor) {
				t.Fatalf("byte %d bit %d: %v is not ErrBadPlanCursor", i, bit, err)
			}
		}
	}
	for _, bad := range []struct{ name, s, want string }{
		{"empty", "", "version"},
		{"padded", s + "=", "base64url"},
		{"standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(base64.RawURLEncoding.EncodeToString(append([]byte{1, 0xfb, 0xff, 0x03}, make([]byte, 16)...))), "base64url"},
		{"too long", strings.Repeat("A", wire.MaxPlanCursor+1), "over the limit"},
		{"version 2", base64.RawURLEncoding.EncodeToString(append([]byte{2}, raw[1:]...)), "version"},
		{"index 0", base64.RawURLEncoding.EncodeToString(append([]byte{1, 0}, make([]byte, 16)...)), "index"},
		{"index over the limit", base64.RawURLEncoding.EncodeToString(append([]byte{1, 0x81, 0x80, 0x80, 0x04}, make([]byte, 16)...)), "index"},
		{"short check", s[:len(s)-2], "check bytes"},
		{"long check", base64.RawURLEncoding.EncodeToString(append(slices.Clone(raw), 0)), "check bytes"},
	} {
		if _, err := wire.ParsePlanCursor(bad.s); !errors.Is(err, wire.ErrBadPlanCursor) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want ErrBadPlanCursor saying %q", bad.name, err, bad.want)
		}
	}
	// The check binds each input.
	other := prev
	other[31] = 9
	for name, alt := range map[string][16]byte{
		"stream":   wire.PlanCursorCheck("shop/user", at, base, 100, 1024, prev),
		"time":     wire.PlanCursorCheck("shop/users", index.Target{Time: at.Time.Add(1)}, base, 100, 1024, prev),
		"position": wire.PlanCursorCheck("shop/users", index.Target{Position: uint64(at.Time.UnixNano()), ByPos: true}, base, 100, 1024, prev),
		"base":     wire.PlanCursorCheck("shop/users", at, prev, 100, 1024, prev),
		"from":     wire.PlanCursorCheck("shop/users", at, base, 101, 1024, prev),
		"index":    wire.PlanCursorCheck("shop/users", at, base, 100, 1023, prev),
		"prev":     wire.PlanCursorCheck("shop/users", at, base, 100, 1024, other),
	} {
		if alt == c.Check {
			t.Errorf("the check does not depend on the %s", name)
		}
	}
}

// FuzzPlanCursor: ParsePlanCursor never panics, refuses with
// ErrBadPlanCursor, and every cursor it accepts writes back to the same
// string (one spelling per cursor).
func FuzzPlanCursor(f *testing.F) {
	f.Add(wire.PlanCursor{Index: 1024}.String())
	f.Add(wire.PlanCursor{Index: math.MaxUint32}.String())
	f.Add("AQ")
	f.Add(strings.Repeat("_", 40))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := wire.ParsePlanCursor(s)
		if err != nil {
			if !errors.Is(err, wire.ErrBadPlanCursor) {
				t.Fatalf("error %v is not ErrBadPlanCursor", err)
			}
			return
		}
		if c.Index == 0 || c.Index > wire.MaxPlanSegments {
			t.Fatalf("accepted index %d", c.Index)
		}
		if back := c.String(); back != s {
			t.Fatalf("%q reads as %+v, which writes %q", s, c, back)
		}
	})
}
