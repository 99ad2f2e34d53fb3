package repo

import (
	"fmt"
	"math"
	"testing"
)

// TestSegmentNameSpelling: the hand-made formatting spells exactly the
// name the format defines, at the extremes of every field.
func TestSegmentNameSpelling(t *testing.T) {
	for _, k := range []SegmentKey{
		{Stream: "a", First: 1, Last: 1, FirstTime: 0, LastTime: 0},
		{Stream: "shop/users", First: 1, Last: 12345, FirstTime: 1767225600000000000, LastTime: 1767225600999999999, ID: ID{1, 2, 3}},
		{Stream: "x", First: math.MaxUint64, Last: math.MaxUint64, FirstTime: math.MaxInt64, LastTime: math.MaxInt64, ID: ID{255}},
	} {
		want := fmt.Sprintf("%s%020d-%020d.%019d-%019d.%s", StreamLogPrefix(k.Stream), k.First, k.Last, k.FirstTime, k.LastTime, k.ID)
		if got := k.Name(); got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
		if back, err := ParseSegmentName(k.Name()); err != nil || back != k {
			t.Errorf("round trip of %q: %+v %v", k.Name(), back, err)
		}
	}
}

// TestSegmentNameEpoch: a segment with an epoch spells it, 20 digits,
// before the hex; epoch 0 keeps the name without one, and a name that
// spells epoch 0, or a malformed epoch, is refused (one name per segment).
func TestSegmentNameEpoch(t *testing.T) {
	k := SegmentKey{Stream: "shop/users", First: 5, Last: 9, FirstTime: 10, LastTime: 20, Epoch: 7, ID: ID{9}}
	want := fmt.Sprintf("%s%020d-%020d.%019d-%019d.%020d.%s", StreamLogPrefix(k.Stream), k.First, k.Last, k.FirstTime, k.LastTime, k.Epoch, k.ID)
	if got := k.Name(); got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
	back, err := ParseSegmentName(want)
	if err != nil || back != k {
		t.Fatalf("round trip of %q: %+v %v", want, back, err)
	}
	k.Uncertain = true
	if back, err := ParseSegmentName(k.Name()); err != nil || back != k {
		t.Fatalf("round trip of %q: %+v %v", k.Name(), back, err)
	}
	k.Epoch = math.MaxUint64
	if back, err := ParseSegmentName(k.Name()); err != nil || back != k {
		t.Fatalf("round trip of %q: %+v %v", k.Name(), back, err)
	}
	zero := fmt.Sprintf("%s%020d-%020d.%019d-%019d.%020d.%s", StreamLogPrefix(k.Stream), 5, 9, 10, 20, 0, k.ID)
	bad := fmt.Sprintf("%s%020d-%020d.%019d-%019d.%019dx.%s", StreamLogPrefix(k.Stream), 5, 9, 10, 20, 1, k.ID)
	over := fmt.Sprintf("%s%020d-%020d.%019d-%019d.99999999999999999999.%s", StreamLogPrefix(k.Stream), 5, 9, 10, 20, k.ID)
	for _, n := range []string{zero, bad, over} {
		if _, err := ParseSegmentName(n); err == nil {
			t.Errorf("ParseSegmentName(%q) accepted it", n)
		}
	}
}
