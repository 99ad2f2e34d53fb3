package limit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/storetest"
)

func TestReadsConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store { return limit.Reads(mem.New(), 1<<30) })
}

// Reads hold what Get and GetRange return to the rate, after the first
// second's burst; writes are not held.
func TestReadsRate(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	st := limit.Reads(inner, 1e6) // 1 MB/s, a burst of one second
	obj := make([]byte, 400_000)
	start := time.Now()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if err := st.Put(ctx, n, obj); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("writes were held: %v", d)
	}
	start = time.Now()
	for _, n := range []string{"a", "b", "c", "d"} {
		if _, err := st.Get(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.GetRange(ctx, "e", 0, 200_000); err != nil {
		t.Fatal(err)
	}
	// 1.8 MB read: the burst covers 1 MB, the rest takes 0.8 s.
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Fatalf("1.8 MB at 1 MB/s took %v, want about 0.8s", d)
	}
	// A read that waits past its context's end fails with the cause.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := st.Get(cctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held read past its deadline: %v", err)
	}
}
