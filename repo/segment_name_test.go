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
