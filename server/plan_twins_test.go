package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// TestPlanTwins: an index server plans from names, so a segment manifest
// stored beside its replacement (a re-encryption cut short, FORMAT.md
// §4.1) reaches the client as both, adjacent in the plan log
// (PROTOCOL.md §5); the client keeps the replacement and restores. Two
// manifests of the same name but unrelated are refused as an overlap.
func TestPlanTwins(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	admin := f.open("admin")
	t0 := f.clock.Now().Add(-2 * time.Hour)
	if _, err := f.backup(admin, "shop/users", t0, 0, []byte("state at position 0")); err != nil {
		t.Fatal(err)
	}
	if err := f.log(admin, "shop/users", 1, 100, t0); err != nil {
		t.Fatal(err)
	}
	logs, err := index.ListLogs(ctx, admin.Store(), "shop/users")
	if err != nil {
		t.Fatal(err)
	}
	k := logs["shop/users"].Segments[0]
	s, err := admin.LoadSegment(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	twin := func(replaces bool) repo.SegmentKey {
		t.Helper()
		n := *s
		n.Created = n.Created.Add(time.Second)
		if replaces {
			n.Replaces = &k.ID
		}
		nk, err := admin.SaveSegment(ctx, &n)
		if err != nil {
			t.Fatal(err)
		}
		return nk
	}
	c := f.client("admin")
	at := index.Target{Position: 50, ByPos: true}
	restoreAt := func() (int, error) {
		p, err := c.PlanFor(ctx, admin, "shop/users", at)
		if err != nil {
			return 0, err
		}
		segs, err := engine.LoadPlanSegments(ctx, admin, p)
		if err != nil {
			return 0, err
		}
		n := 0
		err = engine.EachPlanEvent(ctx, admin, p, segs, func(_ repo.SegmentKey, e *repo.Event) error { n++; return nil })
		return n, err
	}
	nk := twin(true)
	wp, err := c.Plan(ctx, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := wire.DecodePlanLog("shop/users", wp.From, wp.Log)
	if err != nil || len(keys) != 2 || !index.SameName(keys[0], keys[1]) {
		t.Fatalf("the server's plan lists %v (%v), want both twins", keys, err)
	}
	if n, err := restoreAt(); err != nil || n != 50 {
		t.Fatalf("restore beside a replaced manifest: %d events, %v", n, err)
	}
	// Another writer's manifest of the same name, replacing nothing.
	if err := admin.Store().Delete(ctx, nk.Name()); err != nil {
		t.Fatal(err)
	}
	twin(false)
	if _, err := restoreAt(); !errors.Is(err, index.ErrNotRestorable) || !strings.Contains(err.Error(), "overlapping") {
		t.Fatalf("restore across two writers' same-name segments: %v", err)
	}
}
