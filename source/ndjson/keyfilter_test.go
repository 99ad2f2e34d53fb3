package ndjson_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/source/ndjson"
)

// TestGetSkipsSegments: with segment key filters (FORMAT.md §15.1) a get
// reads only the segments that may touch its key, and still answers as
// the generator does for keys that changed and keys that did not.
func TestGetSkipsSegments(t *testing.T) {
	const docs = 4000
	g, err := sample.New(sample.Options{Docs: docs, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, cs, _ := keyMapRepo(t, g, ndjson.KeyMapSource("_id"), 64)
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "km", SegmentBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	at := g.DayTime(1).Add(-time.Hour)
	touched := map[string]bool{} // by an event the plan at at applies
	err = g.Events(1, 1, func(se *sample.Event) error {
		e, err := ndjson.ParseEvent(se.AppendJSON(nil))
		if err != nil {
			return err
		}
		if e.Time <= at.UnixNano() {
			touched[string(e.Key)] = true
		}
		return w.Append(&e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan("km", index.Target{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 5 {
		t.Fatalf("%d segments: the test wants several", len(segs))
	}
	packs := map[string]bool{}
	for _, s := range segs {
		if s.KeyFilter == nil {
			t.Fatal("a segment without a key filter")
		}
		packs[s.Pack.ID.String()] = true
	}
	var changed, unchanged, falseReads int
	for i := 0; i < docs; i += 7 {
		key := sample.Key(uint64(i))
		cs.reset()
		cs.trace, cs.reads = true, nil
		got, err := ndjson.Get(ctx, r, p, []byte(key))
		cs.trace = false
		if err != nil {
			t.Fatal(err)
		}
		want, _ := g.Lookup(key, at)
		if got.Found != (want != nil) || string(got.Doc) != string(want) {
			t.Fatalf("get %s: found %v %.60s, want %.60s", key, got.Found, got.Doc, want)
		}
		read := map[string]bool{}
		for _, name := range cs.reads {
			for id := range packs {
				if strings.Contains(name, id[:20]) {
					read[id] = true
				}
			}
		}
		if touched[key] {
			changed++
			if len(read) == 0 {
				t.Fatalf("get %s read no segment, but events touch it", key)
			}
		} else {
			unchanged++
			falseReads += len(read)
		}
	}
	if changed == 0 || unchanged == 0 {
		t.Fatalf("%d changed and %d unchanged keys tried", changed, unchanged)
	}
	// About 0.8% of a filter's answers are false positives.
	if rate := float64(falseReads) / float64(unchanged*len(segs)); rate > 0.03 {
		t.Errorf("gets of untouched keys read %.1f%% of the segments", 100*rate)
	}
	t.Logf("%d keys touched, %d not; the untouched ones read %d segments of %d×%d", changed, unchanged, falseReads, unchanged, len(segs))
}
