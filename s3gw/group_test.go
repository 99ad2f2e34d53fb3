package s3gw

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
)

// Concurrent small PUTs are committed in groups: every one is readable with
// its own bytes afterwards, If-None-Match lets exactly one of a race win
// (two PUTs of one key never share a group), and
// the groups wrote far fewer log segments than there were PUTs.
func TestGroupedPuts(t *testing.T) {
	ctx := t.Context()
	r := newTestRepo(t)
	g, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.CreateBucket(ctx, "grp", "tester", nil); err != nil {
		t.Fatal(err)
	}
	const clients, each = 16, 20
	body := func(c, i int) []byte {
		return fmt.Appendf(nil, "client %d object %d %s", c, i, bytes.Repeat([]byte{byte(c)}, i*37))
	}
	var wg sync.WaitGroup
	var wins, refused atomic.Int64
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				if _, err := g.Put(ctx, "grp", fmt.Sprintf("c%02d/%03d", c, i), bytes.NewReader(body(c, i)), PutOptions{}); err != nil {
					t.Errorf("put: %v", err)
				}
			}
			// Every client races for one key.
			_, err := g.Put(ctx, "grp", "race", bytes.NewReader(body(c, 999)), PutOptions{IfNoneMatch: true})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrPreconditionFail):
				refused.Add(1)
			default:
				t.Errorf("race put: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || refused.Load() != clients-1 {
		t.Errorf("If-None-Match race: %d won and %d refused, want 1 and %d", wins.Load(), refused.Load(), clients-1)
	}
	for c := range clients {
		for i := range each {
			if got := readAll(t, g, "grp", fmt.Sprintf("c%02d/%03d", c, i)); !bytes.Equal(got, body(c, i)) {
				t.Fatalf("c%02d/%03d: read %q", c, i, got)
			}
		}
	}
	var names []string
	if err := r.Store().List(ctx, repo.LogsPrefix, func(o repo.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	puts := clients*each + clients
	t.Logf("%d PUTs in %d log segments", puts, len(names))
	if len(names) >= puts/2 {
		t.Errorf("%d PUTs wrote %d log segments: they were not grouped", puts, len(names))
	}
	// What was stored replays to the same table.
	g2, err := Open(ctx, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if got := readAll(t, g2, "grp", "c03/007"); !bytes.Equal(got, body(3, 7)) {
		t.Fatalf("after reopening: read %q", got)
	}
}

// A PUT larger than a group takes still reads back whole.
func TestGroupedPutLargeBodyStreams(t *testing.T) {
	ctx := t.Context()
	g, err := Open(ctx, newTestRepo(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.CreateBucket(ctx, "big", "tester", nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{groupObjectMax, groupObjectMax + 1, 3 * groupObjectMax} {
		b := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		if _, err := g.Put(ctx, "big", fmt.Sprint(n), bytes.NewReader(b), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, g, "big", fmt.Sprint(n)); !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: read %d that differ", n, len(got))
		}
	}
}

// localRepo makes a repository in a local directory (real fsyncs) for the
// PUT benchmarks.
func localRepo(b *testing.B) *repo.Repository {
	st, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(b.Context(), st, testPassword, repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// benchPuts runs put from writers·GOMAXPROCS goroutines, each PUT a new
// 4 KiB object, and reports PUTs a second.
func benchPuts(b *testing.B, writers int, put func(key string, body []byte) error) {
	var n atomic.Int64
	b.SetParallelism(writers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body := make([]byte, 4096)
		for pb.Next() {
			i := n.Add(1)
			body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
			if err := put(fmt.Sprintf("k/%08d", i), body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkGatewaySmallPuts measures 4 KiB PUTs per second from 64
// concurrent writers into a local-directory repository (real fsyncs).
func BenchmarkGatewaySmallPuts(b *testing.B) {
	ctx := b.Context()
	g, err := Open(ctx, localRepo(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if err := g.CreateBucket(ctx, "bench", "tester", nil); err != nil {
		b.Fatal(err)
	}
	benchPuts(b, 32, func(key string, body []byte) error { // 64 writers on 2 cores
		_, err := g.Put(ctx, "bench", key, bytes.NewReader(body), PutOptions{})
		return err
	})
}

// BenchmarkServerSmallPuts is BenchmarkGatewaySmallPuts through the S3
// endpoint: 4 KiB PutObjects with SigV4 from 16 concurrent minio-go
// clients, the measure.
func BenchmarkServerSmallPuts(b *testing.B) {
	ctx := b.Context()
	s := startServer(b, localRepo(b), Options{})
	c := s.client(b, s.access, s.secret)
	if err := c.MakeBucket(ctx, "bench", minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}
	benchPuts(b, 8, func(key string, body []byte) error { // 16 clients on 2 cores
		_, err := c.PutObject(ctx, "bench", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		return err
	})
}

// BenchmarkList1MKeys pages through ListObjectsV2's core over a bucket of
// one million keys (built by applying events, as a replay does) while new
// keys keep arriving, and reports the p99 page time.
func BenchmarkList1MKeys(b *testing.B) {
	const keys = 1_000_000
	st := newBucketState("big", 0, BucketRecord{})
	rec := []byte(`{"version":"null","etag":"00"}`)
	for i := range keys {
		e := &repo.Event{Seq: uint64(i + 1), Time: int64(i), Op: repo.OpPut, Key: fmt.Appendf(nil, "dir%03d/obj%07d", i%500, i), Value: rec}
		if err := st.apply(e); err != nil {
			b.Fatal(err)
		}
	}
	g := &Gateway{buckets: map[string]*bucketState{"big": st}}
	var times []time.Duration
	after, added := "", keys
	runtime.GC() // the build's garbage is not the listing's
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A write between pages, as on a live gateway.
		g.mu.Lock()
		added++
		err := st.apply(&repo.Event{Seq: uint64(added), Time: int64(added), Op: repo.OpPut, Key: fmt.Appendf(nil, "new/%08d", added), Value: rec})
		g.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		res, err := g.List("big", ListOptions{After: after, MaxKeys: 1000})
		times = append(times, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		after = res.Next
		if !res.Truncated {
			after = ""
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}
