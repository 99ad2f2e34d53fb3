package mongodb

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
)

// TestThroughput measures capture and restore rates against the embedded
// FerretDB. It runs only with STRATA_MONGODB_BENCH=N (documents to write);
// figures are in bench/RESULTS.md.
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_MONGODB_BENCH"))
	if n <= 0 {
		t.Skip("set STRATA_MONGODB_BENCH=N to measure capture and restore of N oplog entries")
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
					docs = append(docs, bson.D{{Key: "_id", Value: int64(j)}, {Key: "v", Value: fmt.Sprintf("%0100d", j)}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Unix(int64(j), 0))}})
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
	start = time.Now()
	entries, err := LoadEntries(t.Context(), r, p)
	if err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)
	tcli, tcfg := connect(t, tgt, "")
	start = time.Now()
	rst, err := Restore(t.Context(), tcli, tcfg, r, p, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("read and decoded %d entries in %s (%.0f entries/s); restored %d entries into FerretDB in %s (%.0f entries/s)",
		len(entries), load.Round(time.Millisecond), float64(len(entries))/load.Seconds(), rst.Entries, el.Round(time.Millisecond), float64(rst.Entries)/el.Seconds())
	if got := dumpState(t, tcli, "bench"); len(got) != writers {
		t.Fatalf("restore: %d collections", len(got))
	}
}
