package s3gw

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// Prune keeps every blob an object event references, overwritten and
// deleted versions included (a point-in-time view reads them). (An
// aborted upload's parts stay while its events are in the log:
// TestBaseForgetPrune and TestUploadSurvivesRestart cover what forget
// frees.)
func TestPruneKeepsGatewayContent(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := Open(ctx, r, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "keep", "", nil); err != nil {
		t.Fatal(err)
	}
	v1 := make([]byte, 3<<20)
	rand.Read(v1)
	if _, err := g.Put(ctx, "keep", "obj", bytes.NewReader(v1), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before := clock()
	v2 := make([]byte, 3<<20)
	rand.Read(v2)
	if _, err := g.Put(ctx, "keep", "obj", bytes.NewReader(v2), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := g.CreateUpload("keep", "abandoned", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 2<<20)
	rand.Read(junk)
	if _, err := g.UploadPart(ctx, "keep", "abandoned", id, 1, bytes.NewReader(junk), nil); err != nil {
		t.Fatal(err)
	}
	if err := g.AbortUpload("keep", "abandoned", id); err != nil {
		t.Fatal(err)
	}
	g.Close()

	now := time.Now()
	for range 2 { // mark, then sweep
		res, err := engine.Prune(ctx, r, engine.PruneOptions{Grace: time.Nanosecond, Now: func() time.Time { now = now.Add(time.Hour); return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("prune: %+v", res.Deleted)
	}
	g2, err := Open(ctx, r, Options{At: before})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := g2.Stat("keep", "obj", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(g2.Read(ctx, oi.Record, 0, -1))
	if err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("overwritten version after prune: %v", err)
	}
	g3, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g3, "keep", "obj"); !bytes.Equal(got, v2) {
		t.Fatal("current version differs after prune")
	}
}

// check walks the trees of object events: a missing blob is a problem.
func TestCheckWalksGatewayTrees(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	g, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "chk", "", nil); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2<<20)
	rand.Read(b)
	if _, err := g.Put(ctx, "chk", "obj", bytes.NewReader(b), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	g.Close()
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check of a healthy gateway repository: %v %v", rep.Problems, err)
	}
	// Remove every index file: the object's blobs are then unindexed.
	ids, err := r.ListIDs(ctx, repo.IndexPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := r.Store().Delete(ctx, repo.IndexPrefix+id.String()); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = engine.Check(ctx, r, engine.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		if strings.Contains(p, `key "obj"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("check did not name the object's missing blobs: %v", rep.Problems)
	}
}
