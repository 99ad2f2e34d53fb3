package etcd

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/etcdtest"
)

// TestThroughput measures capture and restore rates against a real etcd.
// It runs only with STRATA_ETCD_BENCH=N (revisions to write); figures are
// in bench/RESULTS.md.
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_ETCD_BENCH"))
	if n <= 0 {
		t.Skip("set STRATA_ETCD_BENCH=N to measure capture and restore of N revisions")
	}
	src := etcdtest.Start(t)
	cli, cfg := connect(t, src)
	r := newRepo(t)
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	for deadline := time.Now().Add(20 * time.Second); logs.String() == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no base")
		}
	}
	const writers = 16
	wc := src.Client(t)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if _, err := wc.Put(t.Context(), fmt.Sprintf("k/%06d", i%5000), fmt.Sprintf("%0100d", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	wrote := time.Since(start)
	rev := src.Revision(t)
	cat := waitLog(t, r, rev, logs)
	caught := time.Since(start)
	st := stop()
	t.Logf("wrote %d revisions in %s (%.0f/s); capture stored all %s after the first write (lag at the end %s); %d segments, %d bytes sealed",
		n, wrote.Round(time.Millisecond), float64(n)/wrote.Seconds(), caught.Round(time.Millisecond), (caught - wrote).Round(time.Millisecond), st.Segments, st.StoredBytes)
	start = time.Now()
	got, rst := restoreAt(t, cat, r, rev, false)
	el := time.Since(start)
	want, _ := src.Dump(t)
	if len(got) != len(want) {
		t.Fatalf("restore: %d keys, want %d", len(got), len(want))
	}
	t.Logf("restored %d revisions in %s (%.0f revisions/s, %d transactions)", rst.Revisions, el.Round(time.Millisecond), float64(rst.Revisions)/el.Seconds(), rst.Transactions)
}
