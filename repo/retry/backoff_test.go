package retry

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n      int
		lo, hi time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := p.backoff(tt.n); d < tt.lo || d > tt.hi {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.n, d, tt.lo, tt.hi)
			}
		}
	}
	huge := Policy{Base: time.Second, Max: 1<<63 - 1}
	if err := huge.validate(); err != nil {
		t.Fatal(err)
	}
	if d := huge.backoff(200); d <= 0 {
		t.Fatalf("backoff(200) with an unbounded Max = %v, want positive", d)
	}
}

func TestPolicyDefaults(t *testing.T) {
	var got Policy
	if err := got.validate(); err != nil {
		t.Fatal(err)
	}
	if want := (Policy{Attempts: DefaultAttempts, Base: DefaultBase, Max: DefaultMax}); got != want {
		t.Fatalf("zero Policy = %+v, want %+v", got, want)
	}
	if err := (&Policy{Attempts: -1}).validate(); err == nil {
		t.Fatal("negative Attempts accepted")
	}
}

func TestBackoffLoop(t *testing.T) {
	b := Backoff{Policy: Policy{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond}}
	for i, hi := range []time.Duration{100, 200, 400, 400} {
		if d := b.Next(); d < hi*time.Millisecond/2 || d > hi*time.Millisecond {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i+1, d, hi*time.Millisecond/2, hi*time.Millisecond)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: %v, want at most 100ms", d)
	}
}
