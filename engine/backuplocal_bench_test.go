package engine

import (
	"bytes"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
)

// BenchmarkBackupNDJSONLocal is BenchmarkBackupNDJSON into a local
// directory store, so the time includes writing and syncing the shard
// files. It reports the peak of the live heap objects' bytes (sampled
// every millisecond through runtime/metrics, which does not stop the
// world) as peak-heap-MiB.
func BenchmarkBackupNDJSONLocal(b *testing.B) {
	data := ndjson(100000, 1, nil) // about 30 MB
	b.SetBytes(int64(len(data)))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(sample)
				peak = max(peak, sample[0].Value.Uint64())
			}
		}
	})
	for b.Loop() {
		st, err := local.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		r, err := repo.Init(b.Context(), st, testPassword, repo.InitOptions{KDF: fastKDF})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Backup(b.Context(), r, bytes.NewReader(data), BackupOptions{Stream: "s", Format: FormatNDJSON}); err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
