package mongodb

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// TestThroughput measures capture and restore rates against the embedded
// FerretDB. It runs only with STRATA_MONGODB_BENCH=N (documents to write);
// figures are in bench/RESULTS.md.
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_MONGODB_BENCH"))
	if n <= 0 {
		t.Skip("set STRATA_MONGODB_BENCH=N to measure capture and restore of N oplog entries")
	}
	docBytes := 100
	if b, _ := strconv.Atoi(os.Getenv("STRATA_MONGODB_BENCH_BYTES")); b > 0 {
		docBytes = b
	}
	src := mongotest.Start(t, mongotest.Options{OplogBytes: 1 << 30})
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "bench")
	r := newRepo(t)
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	for deadline := time.Now().Add(20 * time.Second); logs.String() == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no base")
		}
	}
	// Writers insert in batches: FerretDB logs one oplog entry per document.
	const writers, batch = 4, 500
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			c := src.Client.Database("bench").Collection(fmt.Sprintf("c%d", w))
			for i := w * batch; i < n; i += writers * batch {
				var docs []any
				for j := i; j < min(i+batch, n); j++ {
					docs = append(docs, bson.D{{Key: "_id", Value: int64(j)}, {Key: "v", Value: fmt.Sprintf("%0*d", docBytes, j)}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Unix(int64(j), 0))}})
				}
				if _, err := c.InsertMany(t.Context(), docs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	wrote := time.Since(start)
	cat := waitCaptured(t, r, cli, logs)
	caught := time.Since(start)
	st := stop()
	t.Logf("wrote %d documents in %s (%.0f/s); capture stored %d entries %s after the first write (%.0f entries/s; lag at the end %s); %d segments, %d bytes sealed",
		n, wrote.Round(time.Millisecond), float64(n)/wrote.Seconds(), st.Appended, caught.Round(time.Millisecond), float64(st.Appended)/caught.Seconds(),
		(caught - wrote).Round(time.Millisecond), st.Segments, st.StoredBytes)
	_, at, err := LastTimestamp(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan("s", index.Target{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	// Before: the restore held the decoded log (LoadEntries) before its
	// first write. After: it streams the log, twice.
	var entries []LoggedEntry
	var load time.Duration
	heldPeak := peakHeap(func() {
		start = time.Now()
		if entries, err = LoadEntries(t.Context(), r, p); err != nil {
			t.Fatal(err)
		}
		load = time.Since(start)
	})
	nEntries := len(entries)
	entries = nil
	var res StateResult
	var prove time.Duration
	provePeak := peakHeap(func() {
		start = time.Now()
		if res, err = ComputeState(t.Context(), r, p, nil); err != nil {
			t.Fatal(err)
		}
		prove = time.Since(start)
	})
	tcli, tcfg := connect(t, tgt, "")
	var rst RestoreStats
	var el time.Duration
	restorePeak := peakHeap(func() {
		start = time.Now()
		if rst, err = Restore(t.Context(), tcli, tcfg, r, p, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		el = time.Since(start)
	})
	t.Logf("read and decoded %d entries in %s (%.0f entries/s), holding them: peak heap +%s", nEntries, load.Round(time.Millisecond), float64(nEntries)/load.Seconds(), mib(heldPeak))
	t.Logf("computed the state in memory (%d events, %d documents) in %s (%.0f entries/s): peak heap +%s", res.Events, res.Proof.Records, prove.Round(time.Millisecond), float64(res.Events)/prove.Seconds(), mib(provePeak))
	t.Logf("restored %d entries into FerretDB in %s (%.0f entries/s), of which waiting on the server's writes %s, verifying (state computed, target read back) %s of which reading back %s, the rest %s; apply alone %.0f entries/s; peak heap +%s",
		rst.Entries, el.Round(time.Millisecond), float64(rst.Entries)/el.Seconds(), rst.Server.Round(time.Millisecond), rst.Verify.Round(time.Millisecond), rst.ReadBack.Round(time.Millisecond),
		(el - rst.Server - rst.Verify).Round(time.Millisecond), float64(rst.Entries)/(el-rst.Verify).Seconds(), mib(restorePeak))
	var oplogN int64
	if oplogN, err = oplogColl(cli).CountDocuments(t.Context(), bson.D{{Key: "ns", Value: bson.D{{Key: "$regex", Value: "^bench[.]"}}}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the source's oplog holds %d entries of bench", oplogN)
	sameState(t, "restore", dumpState(t, tcli, "bench"), dumpState(t, src.Client, "bench"))
}

// BenchmarkCaptureStore measures Strata's side of the capture: decoding
// oplog entries and storing them as log events (sealed, encrypted,
// erasure-coded segments in memory), without a server.
func BenchmarkCaptureStore(b *testing.B) {
	r, err := repo.Init(b.Context(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	raws := make([][]byte, 1000)
	for i := range raws {
		raw, _ := bson.Marshal(bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "bench.c"}, {Key: "ts", Value: bson.Timestamp{T: 1767225600 + uint32(i/100), I: uint32(i%100 + 1)}},
			{Key: "o", Value: bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: fmt.Sprintf("%0100d", i)}}}, {Key: "wall", Value: bson.NewDateTimeFromTime(time.Unix(1767225600, 0))}})
		raws[i] = raw
	}
	w, err := engine.OpenLog(b.Context(), r, engine.LogOptions{Stream: "s"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := ParseEntry(raws[i%len(raws)])
		if err != nil {
			b.Fatal(err)
		}
		ev, err := OplogEvent(uint64(i+1), e.Time().UnixNano(), e, true)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Append(&ev); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// peakHeap runs f and returns the peak of the Go heap in use while it ran,
// above what was in use before, sampled every 2 ms.
func peakHeap(f func()) uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}
