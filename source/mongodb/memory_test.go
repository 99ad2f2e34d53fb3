package mongodb

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
)

// TestRestoreMemory measures the memory a restore needs for a long log:
// N inserts of ~1 KiB documents after an empty base, stored straight into
// the log (no capture, whose server is slow to feed), restored into
// FerretDB. It runs only with STRATA_MONGODB_MEM=N; figures are in
// bench/RESULTS.md.
func TestRestoreMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_MONGODB_MEM"))
	if n <= 0 {
		t.Skip("set STRATA_MONGODB_MEM=N to restore a log of N entries and report the memory it takes")
	}
	if os.Getenv("STRATA_MONGODB_ORDERED") != "" {
		orderedBulk = true // the restore's bulk writes as they were, to compare
		t.Cleanup(func() { orderedBulk = false })
	}
	ctx := t.Context()
	r := newRepo(t)
	var base bytes.Buffer
	bw := NewBaseWriter(&base)
	bw.Collection(&Collection{NS: "bench.c", Options: emptyDoc})
	t0 := Timestamp{1767225600, 1}
	if _, err := bw.Close(t0, t0, false); err != nil {
		t.Fatal(err)
	}
	var zero uint64
	if _, _, err := engine.Backup(ctx, r, &base, engine.BackupOptions{Stream: "s", Format: engine.FormatNDJSON, Position: &zero, Time: time.Unix(1767225600, 0)}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	for i := 1; i <= n; i++ {
		ts := Timestamp{1767225601 + uint32(i/1000), uint32(i%1000 + 1)}
		raw, _ := bson.Marshal(bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "bench.c"}, {Key: "ts", Value: ts.bson()},
			{Key: "o", Value: bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: pad}}},
			{Key: "wall", Value: bson.NewDateTimeFromTime(time.Unix(int64(ts.T), int64(ts.I)*1000))}})
		e, err := ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := OplogEvent(uint64(i), e.Time().UnixNano(), e, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan("s", index.Target{Position: uint64(n), ByPos: true})
	if err != nil {
		t.Fatal(err)
	}
	// STRATA_MONGODB_MEM_PHASE=held or restore runs one phase alone, so
	// the process's peak RSS is that phase's.
	phase := os.Getenv("STRATA_MONGODB_MEM_PHASE")
	var held int
	var heldPeak, heldRSS uint64
	if phase != "restore" {
		heldPeak, heldRSS = peakRSS(t, func() {
			es, err := LoadEntries(ctx, r, p)
			if err != nil {
				t.Fatal(err)
			}
			held = len(es)
		})
		t.Logf("%d entries of ~1 KiB: holding the decoded log (the restore before): peak heap +%s, peak RSS %s", held, mib(heldPeak), mib(heldRSS))
	}
	if phase == "held" {
		return
	}
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, tgt, "")
	var st RestoreStats
	start := time.Now()
	restorePeak, restoreRSS := peakRSS(t, func() {
		if st, err = Restore(ctx, cli, cfg, r, p, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	el := time.Since(start)
	t.Logf("streaming restore with verification: %d entries in %s (%.0f/s; waiting on the server's writes %s, verify %s of which reading the target back %s, the rest %s): peak heap +%s, peak RSS %s",
		st.Entries, el.Round(time.Millisecond), float64(st.Entries)/el.Seconds(), st.Server.Round(time.Millisecond), st.Verify.Round(time.Millisecond), st.ReadBack.Round(time.Millisecond),
		(el - st.Server - st.Verify).Round(time.Millisecond), mib(restorePeak), mib(restoreRSS))
	if !st.Checked || st.Proof.Records != uint64(n) {
		t.Fatalf("restore not verified: %+v", st)
	}
}

// peakRSS runs f and returns the peak Go heap above the start (peakHeap)
// and the process's peak resident set while f ran (VmHWM, reset through
// /proc/self/clear_refs first).
func peakRSS(t *testing.T, f func()) (heap, rss uint64) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS: %v", err)
	}
	heap = peakHeap(f)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			rss = kb << 10
		}
	}
	return heap, rss
}
