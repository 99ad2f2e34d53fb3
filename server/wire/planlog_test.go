package wire_test

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

func planKeys() []repo.SegmentKey {
	id := func(b byte) repo.ID {
		var x repo.ID
		for i := range x {
			x[i] = b + byte(i)
		}
		return x
	}
	const t0 = int64(1_795_000_000_000_000_000)
	return []repo.SegmentKey{
		// The segment holding from starts before it.
		{Stream: "shop/users", First: 90, Last: 199, FirstTime: t0, LastTime: t0 + 10e9, ID: id(1)},
		// A leased writer's segment carries its epoch (FORMAT.md §15).
		{Stream: "shop/users", First: 200, Last: 299, FirstTime: t0 + 11e9, LastTime: t0 + 20e9, Epoch: 7, ID: id(2)},
		// Time-uncertain, times overlapping the previous segment's.
		{Stream: "shop/users", First: 300, Last: 300, FirstTime: t0 + 5e9, LastTime: t0 + 30e9, Uncertain: true, Epoch: math.MaxUint64, ID: id(3)},
		{Stream: "shop/users", First: 301, Last: math.MaxUint64, FirstTime: 0, LastTime: math.MaxInt64, ID: id(4)},
	}
}

// TestPlanLogRoundTrip: what AppendPlanLog encodes, DecodePlanLog returns
// exactly, with the plan's stream, at ~40 bytes a segment (a name is 160).
func TestPlanLogRoundTrip(t *testing.T) {
	keys := planKeys()
	b := wire.AppendPlanLog(nil, 100, keys)
	got, err := wire.DecodePlanLog("shop/users", 100, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("decoded %+v\nwant %+v", got, keys)
	}
	// A segment after the first costs its deltas (10 s of nanoseconds
	// takes 5 bytes), its epoch if any (1 byte for a small one) and its ID.
	if n := len(wire.AppendPlanLog(nil, 100, keys[:2])) - len(wire.AppendPlanLog(nil, 100, keys[:1])); n > 46 {
		t.Fatalf("the second segment takes %d bytes", n)
	}
	empty, err := wire.DecodePlanLog("shop/users", 7, wire.AppendPlanLog(nil, 7, nil))
	if err != nil || len(empty) != 0 {
		t.Fatalf("an empty plan log: %v, %v", empty, err)
	}
}

// TestPlanLogRefuses: every malformed plan log is an ErrBadPlanLog naming
// what is wrong, never a panic or a key no segment name could spell.
func TestPlanLogRefuses(t *testing.T) {
	good := wire.AppendPlanLog(nil, 100, planKeys()[:2])
	seg := func(first int64, span uint64, t0 int64, dt uint64, flags byte) []byte {
		b := binary.AppendVarint(nil, first)
		b = binary.AppendUvarint(b, span)
		b = binary.AppendVarint(b, t0)
		b = binary.AppendUvarint(b, dt)
		return append(append(b, flags), make([]byte, 32)...)
	}
	log := func(segs ...[]byte) []byte {
		b := binary.AppendUvarint([]byte{wire.PlanLogVersion}, uint64(len(segs)))
		return append(b, slices.Concat(segs...)...)
	}
	for _, c := range []struct {
		name string
		from uint64
		b    []byte
		want string
	}{
		{"empty", 1, nil, "empty"},
		{"another version", 1, append([]byte{2}, good[1:]...), "version 2"},
		{"no count", 1, []byte{wire.PlanLogVersion}, "count"},
		{"count over the limit", 1, binary.AppendUvarint([]byte{wire.PlanLogVersion}, wire.MaxPlanSegments+1), "over the limit"},
		{"count past the bytes", 1, binary.AppendUvarint([]byte{wire.PlanLogVersion}, 1000), "1000 segments in 0 bytes"},
		{"truncated", 100, good[:len(good)-1], "truncated"},
		{"trailing byte", 100, append(slices.Clone(good), 0), "after the last segment"},
		{"unknown flag", 1, log(seg(0, 0, 1, 0, 4)), "flags"},
		{"epoch 0", 1, log(seg(0, 0, 1, 0, 2)), "bad epoch"},
		{"position 0", 1, log(seg(-1, 0, 1, 0, 0)), "position 0"},
		{"positions overflow", 1, log(seg(0, math.MaxUint64, 1, 0, 0)), "positions overflow"},
		{"time before 1970", 1, log(seg(0, 0, -1, 0, 0)), "before 1970"},
		{"first time overflows", 1, log(seg(0, 0, math.MaxInt64, 0, 0), seg(0, 0, 1, 0, 0)), "first time overflows"},
		{"last time overflows", 1, log(seg(0, 0, 1, math.MaxInt64, 0)), "last time overflows"},
		{"overlong varint", 1, append([]byte{wire.PlanLogVersion, 1}, slices.Repeat([]byte{0xff}, 40)...), "bad first position"},
	} {
		_, err := wire.DecodePlanLog("shop/users", c.from, c.b)
		if !errors.Is(err, wire.ErrBadPlanLog) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadPlanLog saying %q", c.name, err, c.want)
		}
	}
}

// FuzzPlanLogPage: DecodePlanLogAfter, a page after a segment ending at
// next−1 and prevTime, holds the same promises as FuzzPlanLog's.
func FuzzPlanLogPage(f *testing.F) {
	keys := planKeys()
	f.Add(keys[1].Last+1, keys[1].LastTime, wire.AppendPlanLogAfter(nil, keys[1].Last+1, keys[1].LastTime, keys[2:]))
	f.Add(uint64(1), int64(math.MaxInt64), wire.AppendPlanLogAfter(nil, 1, math.MaxInt64, keys[3:]))
	f.Add(uint64(7), int64(-1), wire.AppendPlanLog(nil, 7, nil))
	f.Fuzz(func(t *testing.T, next uint64, prevTime int64, b []byte) {
		keys, err := wire.DecodePlanLogAfter("s", next, prevTime, b)
		if err != nil {
			if !errors.Is(err, wire.ErrBadPlanLog) {
				t.Fatalf("error %v is not ErrBadPlanLog", err)
			}
			return
		}
		namesReadBack(t, keys)
		again, err := wire.DecodePlanLogAfter("s", next, prevTime, wire.AppendPlanLogAfter(nil, next, prevTime, keys))
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("encoded again: %v, %v; want %+v", again, err, keys)
		}
	})
}

// FuzzPlanLog: DecodePlanLog never panics, and every plan log it accepts
// holds keys a segment name can spell (ParseSegmentName reads each key's
// name back to the same key) and encodes again to the same keys.
func FuzzPlanLog(f *testing.F) {
	f.Add(uint64(100), wire.AppendPlanLog(nil, 100, planKeys()))
	f.Add(uint64(1), wire.AppendPlanLog(nil, 1, nil))
	f.Add(uint64(math.MaxUint64), []byte{wire.PlanLogVersion, 1, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, from uint64, b []byte) {
		keys, err := wire.DecodePlanLog("s", from, b)
		if err != nil {
			if !errors.Is(err, wire.ErrBadPlanLog) {
				t.Fatalf("error %v is not ErrBadPlanLog", err)
			}
			return
		}
		namesReadBack(t, keys)
		again, err := wire.DecodePlanLog("s", from, wire.AppendPlanLog(nil, from, keys))
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("encoded again: %v, %v; want %+v", again, err, keys)
		}
	})
}

// namesReadBack fails t unless every key's segment name reads back
// (ParseSegmentName) as the same key.
func namesReadBack(t *testing.T, keys []repo.SegmentKey) {
	t.Helper()
	for _, k := range keys {
		back, err := repo.ParseSegmentName(k.Name())
		if err != nil || back != k {
			t.Fatalf("key %+v: its name reads back as %+v, %v", k, back, err)
		}
	}
}
