package s3gw

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// dumpTables is every bucket's table in the canonical base encoding, so
// two tables are equal exactly when their dumps are.
func dumpTables(t *testing.T, g *Gateway) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	var out strings.Builder
	for _, name := range slices.Sorted(maps.Keys(g.buckets)) {
		if err := encodeBase(&out, g.buckets[name].view()); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

// fullReplay rebuilds every bucket from its whole log, ignoring bases, as
// the gateway did before it had any: through time at (zero: everything)
// and, when pos > 0, through position pos.
func fullReplay(t *testing.T, r *repo.Repository, at time.Time, pos uint64) *Gateway {
	t.Helper()
	ctx := t.Context()
	logs, err := index.ListLogs(ctx, r.Store(), "")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{r: r, buckets: map[string]*bucketState{}}
	for stream, l := range logs {
		name, _ := strings.CutPrefix(stream, StreamPrefix)
		if l.Segments[0].First != 1 {
			t.Fatalf("bucket %s: the log starts at %d", name, l.Segments[0].First)
		}
		err := g.replaySegments(ctx, name, l.Segments, func(e *repo.Event) bool {
			return (at.IsZero() || e.Time <= at.UnixNano()) && (pos == 0 || e.Seq <= pos)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// randomOps runs n random changes on bucket: puts (some overwriting),
// deletes, removals of versions, versioning switched on.
func randomOps(t *testing.T, g *Gateway, rng *mrand.Rand, bucket string, n int) {
	t.Helper()
	ctx := t.Context()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k/%02d", rng.IntN(12))
		switch op := rng.IntN(10); {
		case op < 6:
			body := fmt.Sprintf("%s body %d %d\n", key, i, rng.Int())
			if _, err := g.Put(ctx, bucket, key, strings.NewReader(body), PutOptions{Meta: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		case op < 8:
			if _, _, err := g.Delete(ctx, bucket, key, "", false); err != nil {
				t.Fatal(err)
			}
		case op < 9:
			vl, err := g.ListVersions(bucket, VersionListOptions{Prefix: key})
			if err != nil {
				t.Fatal(err)
			}
			if len(vl.Versions) > 0 {
				v := vl.Versions[rng.IntN(len(vl.Versions))]
				if _, _, err := g.Delete(ctx, bucket, key, v.VersionID, false); err != nil {
					t.Fatal(err)
				}
			}
		default:
			if err := g.SetBucketConfig(ctx, bucket, func(b *BucketRecord) error { b.Versioning = "Enabled"; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A gateway opened from bases and the log after them shows exactly what
// one replaying the whole log shows, now and at instants before, at and
// after each base.
func TestBaseReopenEqualsFullLog(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := Open(ctx, r, Options{Now: clock, BaseEvery: -1, BaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, b := range []string{"alpha", "beta"} {
		if err := g.CreateBucket(ctx, b, "AK", nil); err != nil {
			t.Fatal(err)
		}
	}
	type instant struct {
		at   time.Time
		dump string
	}
	var instants []instant
	for round := range 4 {
		randomOps(t, g, rng, "alpha", 40)
		randomOps(t, g, rng, "beta", 15)
		instants = append(instants, instant{clock(), dumpTables(t, g)})
		if round < 3 {
			if _, written, err := g.WriteBase(ctx, "alpha"); err != nil || !written {
				t.Fatalf("base of alpha: %v %v", written, err)
			}
			instants = append(instants, instant{clock(), dumpTables(t, g)})
			if _, written, err := g.WriteBase(ctx, "alpha"); err != nil || written {
				t.Fatalf("a second base at the same position: written %v, %v", written, err)
			}
		}
		if round == 1 {
			if _, _, err := g.WriteBase(ctx, "beta"); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := dumpTables(t, g)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cat.Stream("s3/alpha")); n != 3 {
		t.Fatalf("%d bases of alpha, want 3", n)
	}

	g2, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if got := dumpTables(t, g2); got != live {
		t.Fatalf("reopened from bases:\n%s\nlive:\n%s", got, live)
	}
	if got := dumpTables(t, fullReplay(t, r, time.Time{}, 0)); got != live {
		t.Fatal("the full log replays to another table than the live one")
	}
	for i, in := range instants {
		v, err := Open(ctx, r, Options{At: in.at})
		if err != nil {
			t.Fatal(err)
		}
		if got := dumpTables(t, v); got != in.dump {
			t.Fatalf("instant %d (%s): the view differs from the table then:\n%s\nwant:\n%s", i, in.at, got, in.dump)
		}
		if got := dumpTables(t, fullReplay(t, r, in.at, 0)); got != in.dump {
			t.Fatalf("instant %d: the full log replays to another table", i)
		}
		if len(v.Unavailable()) != 0 {
			t.Fatalf("instant %d: unavailable %v", i, v.Unavailable())
		}
	}
	// Content reads back through a base's records.
	l, err := g2.List("alpha", ListOptions{})
	if err != nil || len(l.Objects) == 0 {
		t.Fatalf("list after reopen: %+v %v", l, err)
	}
	for _, o := range l.Objects {
		if got := readAll(t, g2, "alpha", o.Key); !strings.HasPrefix(string(got), o.Key+" body") || int64(len(got)) != o.Record.Size {
			t.Fatalf("content of %s after reopen: %q", o.Key, got)
		}
	}
}

// Bases written while PUTs continue each hold exactly the log through
// their position, and the background writer writes them as they fall due.
func TestBaseWhilePutsContinue(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	g, err := Open(ctx, r, Options{BaseEvery: 25, BaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "busy", "", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 60 {
				key := fmt.Sprintf("w%d/%d", w, i%17)
				if _, err := g.Put(ctx, "busy", key, strings.NewReader(fmt.Sprintf("%d-%d\n", w, i)), PutOptions{}); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if _, _, err := g.Delete(ctx, "busy", key, "", false); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() { // explicit bases on top of the background writer's
		for range 5 {
			if _, _, err := g.WriteBase(ctx, "busy"); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	if err := g.baseError(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	bases := cat.Stream("s3/busy")
	if len(bases) < 3 {
		t.Fatalf("%d bases, want several (every 25 events of ~280)", len(bases))
	}
	for _, s := range bases {
		b, err := (&Gateway{r: r}).loadBase(ctx, "busy", s)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		if err := encodeBase(&got, b.view()); err != nil {
			t.Fatal(err)
		}
		if want := dumpTables(t, fullReplay(t, r, time.Time{}, *s.Position)); got.String() != want {
			t.Fatalf("base at position %d differs from the log through it", *s.Position)
		}
	}
}

// prune runs a mark and a sweep past the grace period.
func prune(t *testing.T, r *repo.Repository) {
	t.Helper()
	now := time.Now()
	for range 2 {
		if _, err := engine.Prune(t.Context(), r, engine.PruneOptions{Grace: time.Nanosecond, Now: func() time.Time { now = now.Add(time.Hour); return now }}); err != nil {
			t.Fatal(err)
		}
	}
}

// Forget with a keep policy works on a bucket stream: prune then frees
// what neither a kept base nor a kept segment names (an overwritten or
// removed version of an unversioned bucket), and keeps every current
// object, the noncurrent versions a kept base holds, and the PITR window
// readable.
func TestBaseForgetPrune(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := Open(ctx, r, Options{Now: clock, BaseEvery: -1, BaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	blob := func() []byte { b := make([]byte, 3<<20); rand.Read(b); return b }
	put := func(bucket, key string, b []byte) ObjectInfo {
		t.Helper()
		oi, err := g.Put(ctx, bucket, key, bytes.NewReader(b), PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return oi
	}
	bases := func() {
		t.Helper()
		for _, b := range []string{"plain", "ver"} {
			if _, written, err := g.WriteBase(ctx, b); err != nil || !written {
				t.Fatalf("base of %s: %v %v", b, written, err)
			}
		}
	}
	if err := g.CreateBucket(ctx, "plain", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "ver", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := g.SetBucketConfig(ctx, "ver", func(b *BucketRecord) error { b.Versioning = "Enabled"; return nil }); err != nil {
		t.Fatal(err)
	}
	old, cur, gone := blob(), blob(), blob()
	oldRec := put("plain", "obj", old).Record // overwritten below: freed
	goneRec := put("plain", "gone", gone).Record
	if _, _, err := g.Delete(ctx, "plain", "gone", "", false); err != nil {
		t.Fatal(err)
	}
	vOld, vCur := blob(), blob()
	noncurrent := put("ver", "doc", vOld) // noncurrent, held by the bases
	put("ver", "doc", vCur)
	put("plain", "obj", cur)
	bases()
	inWindow := clock()
	later := blob()
	put("plain", "later", later)
	put("ver", "other", []byte("other"))
	bases()
	after := blob()
	put("plain", "after", after)
	end := clock()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// Keep the last base and a window from inWindow: the first base is
	// the window's base, so the log before it goes.
	for _, b := range []string{"plain", "ver"} {
		cat, err := index.LoadCatalog(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: StreamPrefix + b,
			Policy: engine.ForgetPolicy{KeepLast: 1, KeepWithinPITR: end.Sub(inWindow)}, Now: end})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Keep) != 2 || len(res.Remove) != 0 || len(res.RemoveSegments) == 0 {
			t.Fatalf("%s: keep %d, remove %d bases and %d segments", b, len(res.Keep), len(res.Remove), len(res.RemoveSegments))
		}
	}
	prune(t, r)
	// The window's start is still readable, and shows what it showed.
	v, err := Open(ctx, r, Options{At: inWindow})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, v, "plain", "obj"); !bytes.Equal(got, cur) {
		t.Fatal("obj at the window's start")
	}
	if _, err := v.Stat("plain", "later", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("later at the window's start: %v", err)
	}
	// Before the window: the log that showed it is gone, and the view says so.
	early, err := Open(ctx, r, Options{At: time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if u := early.Unavailable(); len(u) != 2 || !errors.Is(u["plain"], index.ErrNotRestorable) {
		t.Fatalf("before the window: unavailable %v", u)
	}
	if len(early.Buckets()) != 0 {
		t.Fatalf("before the window: buckets %v", early.Buckets())
	}
	// Every blob of the overwritten and the removed version is gone: no
	// kept base holds them, and their events' segments are removed.
	checkFreed := func(rec *ObjectRecord, wantFreed bool) {
		t.Helper()
		ix, _, err := index.Load(ctx, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range rec.Parts[0].Tree.Root {
			if _, _, ok := ix.Lookup(id); ok == wantFreed {
				t.Fatalf("blob %s indexed %v, want %v", id.Short(), ok, !wantFreed)
			}
		}
	}
	checkFreed(oldRec, true)
	checkFreed(goneRec, true)
	checkFreed(noncurrent.Record, false)

	// Now keep only the last base: the first one and the log up to the
	// second go, and the window's start with them.
	for _, b := range []string{"plain", "ver"} {
		cat, err := index.LoadCatalog(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: StreamPrefix + b,
			Policy: engine.ForgetPolicy{KeepLast: 1}, Now: end})
		if err != nil || len(res.Remove) != 1 {
			t.Fatalf("%s: %v, removed %v", b, err, res)
		}
	}
	prune(t, r)
	checkFreed(noncurrent.Record, false)
	if v, err = Open(ctx, r, Options{At: inWindow}); err != nil {
		t.Fatal(err)
	}
	if len(v.Unavailable()) != 2 {
		t.Fatalf("the forgotten window's start: unavailable %v", v.Unavailable())
	}

	g2, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	for key, want := range map[string][]byte{"obj": cur, "later": later, "after": after} {
		if got := readAll(t, g2, "plain", key); !bytes.Equal(got, want) {
			t.Fatalf("plain/%s after forget and prune", key)
		}
	}
	if got := readAll(t, g2, "ver", "doc"); !bytes.Equal(got, vCur) {
		t.Fatal("ver/doc after forget and prune")
	}
	// The noncurrent version's event went with its segment: only the base
	// keeps its blobs, and they are all there.
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if segs := cat.Log("s3/ver").Segments; len(segs) > 0 {
		t.Fatalf("the log of ver still holds positions %d-%d", segs[0].First, segs[len(segs)-1].Last)
	}
	nc, err := g2.Stat("ver", "doc", noncurrent.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(g2.Read(ctx, nc.Record, 0, -1))
	if err != nil || !bytes.Equal(got, vOld) {
		t.Fatalf("noncurrent version after forget and prune: %v", err)
	}
	// A bucket whose whole log is forgotten continues after its base.
	if _, err := g2.Put(ctx, "ver", "next", strings.NewReader("next"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	g2.Close()
	g3, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g3.Close()
	if got := readAll(t, g3, "ver", "next"); string(got) != "next" {
		t.Fatalf("a write after the log was forgotten: %q", got)
	}
	if got := readAll(t, g3, "ver", "doc"); !bytes.Equal(got, vCur) {
		t.Fatal("ver/doc after a write past the forgotten log")
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after forget and prune: %v %v", rep.Problems, err)
	}
}

// Bases decode only in their canonical structure, and BaseTrees finds
// every tree a base names.
func TestBaseDecode(t *testing.T) {
	var trees []repo.Tree
	base := "{\"base\":1,\"bucket\":\"b\",\"position\":3,\"time\":3,\"created\":1,\"record\":{}}\n" +
		"{\"key\":\"a\",\"time\":2,\"seq\":2,\"record\":{\"version\":\"null\",\"size\":1,\"parts\":[{\"size\":1,\"tree\":{\"height\":0,\"root\":[\"" + strings.Repeat("ab", 32) + "\"]}}]}}\n"
	if err := BaseTrees(strings.NewReader(base), func(tr repo.Tree) error { trees = append(trees, tr); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(trees) != 1 || trees[0].Root[0].String() != strings.Repeat("ab", 32) {
		t.Fatalf("trees %+v", trees)
	}
	if _, err := decodeBase(strings.NewReader(base), "b"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"{\"base\":2,\"bucket\":\"b\",\"position\":3,\"time\":3,\"created\":1,\"record\":{}}\n",
		strings.Replace(base, "\"bucket\":\"b\"", "\"bucket\":\"c\"", 1),
		strings.Replace(base, "\"seq\":2", "\"seq\":4", 1),
		strings.Replace(base, "\"key\":\"a\"", "\"key\":\"\"", 1),
		base + strings.SplitAfter(base, "\n")[1],
		strings.Replace(base, "\"version\":\"null\"", "\"version\":\"null\",\"x\":1", 1),
	} {
		if _, err := decodeBase(strings.NewReader(bad), "b"); err == nil {
			t.Fatalf("accepted bad base %q", bad)
		}
	}
	const id = "0123456789abcdef0123456789abcdef"
	start := "{\"upload\":\"" + id + "\",\"key\":\"big\",\"started\":3}\n"
	part := "{\"upload\":\"" + id + "\",\"part\":1,\"size\":1,\"etag\":\"" + id + "\",\"tree\":{\"height\":0,\"root\":[\"" + strings.Repeat("cd", 32) + "\"]}}\n"
	withUpload := base + start + part
	got, err := CanonicalBase(strings.NewReader(withUpload), "b")
	if err != nil || string(got) != withUpload {
		t.Fatalf("a base with an upload: %v\n%s", err, got)
	}
	trees = nil
	if err := BaseTrees(strings.NewReader(withUpload), func(tr repo.Tree) error { trees = append(trees, tr); return nil }); err != nil || len(trees) != 2 {
		t.Fatalf("trees of a base with an upload: %+v %v", trees, err)
	}
	for _, bad := range []string{
		base + part + start,
		base + start + part + part,
		base + start + strings.SplitAfter(base, "\n")[1],
		base + start + "{\"upload\":\"" + id + "\",\"end\":true}\n",
		base + "{\"upload\":\"" + id + "\",\"key\":\"big\",\"started\":3,\"part\":1}\n",
	} {
		if _, err := decodeBase(strings.NewReader(bad), "b"); err == nil {
			t.Fatalf("accepted bad base %q", bad)
		}
	}
	if err := BaseTrees(strings.NewReader(strings.Replace(base, "\"size\":1,\"parts\"", "\"size\":2,\"parts\"", 1)), func(repo.Tree) error { return nil }); err == nil {
		t.Fatal("BaseTrees accepted a record whose parts do not add up")
	}
}

// After forget and prune free a bucket's old content, a running gateway
// that rebuilt its deduplication set stores that content again when a
// client puts it back, instead of referencing the deleted blobs.
func TestKnownRefreshAfterPrune(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	g, err := Open(ctx, r, Options{BaseEvery: -1, BaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.CreateBucket(ctx, "redo", "", nil); err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 3<<20), make([]byte, 3<<20)
	rand.Read(a)
	rand.Read(b)
	for _, body := range [][]byte{a, b} {
		if _, err := g.Put(ctx, "redo", "obj", bytes.NewReader(body), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := g.WriteBase(ctx, "redo"); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: "s3/redo", Policy: engine.ForgetPolicy{KeepLast: 1}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	prune(t, r)
	if err := g.refreshKnown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Put(ctx, "redo", "again", bytes.NewReader(a), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g2, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if got := readAll(t, g2, "redo", "again"); !bytes.Equal(got, a) {
		t.Fatal("content put back after prune differs")
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %v", rep.Problems, err)
	}
}

// A multipart upload in progress survives restarts, a base and a forget
// and prune of the log that recorded its start and first part, and
// completes byte-exact.
func TestUploadSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	open := func() *Gateway {
		t.Helper()
		g, err := Open(ctx, r, Options{BaseEvery: -1, BaseInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := open()
	if err := g.CreateBucket(ctx, "parts", "", nil); err != nil {
		t.Fatal(err)
	}
	p1, p2 := make([]byte, MinPartSize), make([]byte, 1234)
	rand.Read(p1)
	rand.Read(p2)
	id, err := g.CreateUpload("parts", "big.bin", PutOptions{ContentType: "application/octet-stream", Meta: map[string]string{"m": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := g.UploadPart(ctx, "parts", "big.bin", id, 1, bytes.NewReader(p1), nil)
	if err != nil {
		t.Fatal(err)
	}
	abandoned, err := g.CreateUpload("parts", "other", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()

	g = open()
	ul, err := g.ListUploads("parts", "")
	if err != nil || len(ul) != 2 {
		t.Fatalf("uploads after a restart: %+v %v", ul, err)
	}
	pl, err := g.ListParts("parts", "big.bin", id)
	if err != nil || len(pl) != 1 || pl[0].ETag != e1 || pl[0].Size != MinPartSize {
		t.Fatalf("parts after a restart: %+v %v", pl, err)
	}
	e2, err := g.UploadPart(ctx, "parts", "big.bin", id, 2, bytes.NewReader(p2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AbortUpload("parts", "other", abandoned); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.WriteBase(ctx, "parts"); err != nil {
		t.Fatal(err)
	}
	g.Close()
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := engine.Forget(ctx, r.Store(), cat, engine.ForgetOptions{Stream: "s3/parts", Policy: engine.ForgetPolicy{KeepLast: 1}, Now: time.Now()})
	if err != nil || len(res.RemoveSegments) == 0 {
		t.Fatalf("forget: %v", err)
	}
	prune(t, r)

	g = open()
	defer g.Close()
	if ul, err := g.ListUploads("parts", ""); err != nil || len(ul) != 1 || ul[0].ID != id {
		t.Fatalf("uploads from the base: %+v %v", ul, err)
	}
	if err := g.AbortUpload("parts", "other", abandoned); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("an aborted upload after a restart: %v", err)
	}
	oi, err := g.CompleteUpload(ctx, "parts", "big.bin", id, []CompletePart{{1, e1}, {2, e2}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g, "parts", "big.bin"); !bytes.Equal(got, append(append([]byte{}, p1...), p2...)) {
		t.Fatal("the completed upload differs")
	}
	if oi.Record.ContentType != "application/octet-stream" || oi.Record.Meta["m"] != "1" || !strings.HasSuffix(oi.Record.ETag, "-2") {
		t.Fatalf("completed record %+v", oi.Record)
	}
	if _, err := g.CompleteUpload(ctx, "parts", "big.bin", id, []CompletePart{{1, e1}, {2, e2}}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("completing twice: %v", err)
	}
	g.Close()
	g2 := open()
	defer g2.Close()
	if ul, _ := g2.ListUploads("parts", ""); len(ul) != 0 {
		t.Fatalf("uploads after completion and a restart: %+v", ul)
	}
	if got := readAll(t, g2, "parts", "big.bin"); !bytes.Equal(got, append(append([]byte{}, p1...), p2...)) {
		t.Fatal("the completed upload differs after a restart")
	}
}

// An upload abandoned for longer than UploadGrace is gone: listings leave
// it out, and the next base does not carry it.
func TestUploadExpiresFromBase(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := Open(ctx, r, Options{Now: func() time.Time { now = now.Add(time.Millisecond); return now }, BaseEvery: -1, BaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.CreateBucket(ctx, "old", "", nil); err != nil {
		t.Fatal(err)
	}
	id, err := g.CreateUpload("old", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.UploadPart(ctx, "old", "k", id, 1, strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	kept, err := g.CreateUpload("old", "k2", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(UploadGrace - time.Minute)
	if _, err := g.CreateUpload("old", "k3", PutOptions{}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // the first two are past the grace now
	if ul, _ := g.ListUploads("old", ""); len(ul) != 1 || ul[0].Key != "k3" {
		t.Fatalf("uploads past the grace: %+v", ul)
	}
	sid, _, err := g.WriteBase(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cat.Find("s3/old", sid.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.loadBase(ctx, "old", s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.uploads) != 1 || b.uploads[id] != nil || b.uploads[kept] != nil {
		t.Fatalf("the base holds uploads %v", slices.Collect(maps.Keys(b.uploads)))
	}
}
