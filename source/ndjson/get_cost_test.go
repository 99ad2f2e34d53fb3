package ndjson_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/ndjson"
)

// countingStore counts the bytes Get and GetRange return: what a reader
// fetched from storage.
type countingStore struct {
	repo.Store
	read, calls atomic.Int64
	mu          sync.Mutex
	byKind      map[string]int64 // bytes by the name's first segment
	reads       []string         // each read's name and size, when tracing
	trace       bool
}

func (c *countingStore) count(name string, n int) {
	c.read.Add(int64(n))
	c.calls.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKind == nil {
		c.byKind = map[string]int64{}
	}
	kind, _, _ := strings.Cut(name, "/")
	c.byKind[kind] += int64(n)
	if c.trace {
		c.reads = append(c.reads, fmt.Sprintf("%.30s…:%d", name, n))
	}
}

func (c *countingStore) reset() map[string]int64 {
	c.read.Store(0)
	c.calls.Store(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byKind
	c.byKind = nil
	return m
}

func (c *countingStore) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := c.Store.Get(ctx, name)
	c.count(name, len(b))
	return b, err
}

func (c *countingStore) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	b, err := c.Store.GetRange(ctx, name, off, n)
	c.count(name, len(b))
	return b, err
}

// TestGetReadCost measures what one get reads on a large stream: the
// generator's day 0 (STRATA_GET_COST_DOCS documents, 1,200,000 for the
// bench/RESULTS.md figure) backed up sorted, plus day 1's log. It only runs
// when the variable is set: it holds the stream in memory.
func TestGetReadCost(t *testing.T) {
	docs, _ := strconv.Atoi(os.Getenv("STRATA_GET_COST_DOCS"))
	if docs <= 0 {
		t.Skip("set STRATA_GET_COST_DOCS=1200000 to measure (bench/RESULTS.md)")
	}
	ctx := context.Background()
	g, err := sample.New(sample.Options{Docs: docs})
	if err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if err := g.Export(&export, 0); err != nil {
		t.Fatal(err)
	}
	size := int64(export.Len())
	cs := &countingStore{Store: mem.New()}
	r, err := repo.Init(ctx, cs, []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	oc := ndjson.NewOrderChecker("_id")
	oc.Write(export.Bytes())
	pos := uint64(0)
	_, snap, err := engine.Backup(ctx, r, bytes.NewReader(export.Bytes()), engine.BackupOptions{
		Stream: "big", Format: engine.FormatNDJSON, Time: g.DayTime(0), Position: &pos,
		Describe: func(s *repo.Snapshot) { s.KeyField = "_id"; s.Sorted, _ = oc.Sorted() },
		KeyMap:   ndjson.KeyMapSource("_id"), // default leaves, as 'strata backup' writes them
	})
	if err != nil {
		t.Fatal(err)
	}
	if snap.KeyMap == nil {
		t.Fatal("no key map")
	}
	t.Logf("key map: pack of %d bytes (before parity); snapshot stored %d bytes", snap.KeyMap.PackLength, snap.StoredBytes)
	export = bytes.Buffer{}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "big"})
	if err != nil {
		t.Fatal(err)
	}
	var touched string // a key an early day-1 event changes: its get reads the segment
	if err := g.Events(1, 1, func(se *sample.Event) error {
		e, err := ndjson.ParseEvent(se.AppendJSON(nil))
		if err != nil {
			return err
		}
		if touched == "" && e.Op == repo.OpPut && e.Seq > 100 {
			touched = string(e.Key)
		}
		return w.Append(&e)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var stored int64
	cs.List(ctx, "", func(oi repo.ObjectInfo) error { stored += oi.Size; return nil })
	cs.read.Store(0)
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	catBytes := cs.read.Load()
	at := g.DayTime(1).Add(-time.Hour)
	p, err := cat.Plan("big", index.Target{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream: %d documents, export %d bytes, repository %d bytes stored (with parity); catalog load read %d bytes", docs, size, stored, catBytes)
	var worst int64
	// The same plan with the base's key map hidden: how a get searches a
	// snapshot written before key maps, or one whose map is unusable.
	noMap := *p
	base := *p.Base.Snapshot
	base.KeyMap = nil
	noMap.Base.Snapshot = &base
	keys := []string{touched}
	for _, id := range []uint64{0, 1, uint64(docs) / 3, uint64(docs) / 2, uint64(docs) - 2} {
		keys = append(keys, sample.Key(id))
	}
	for _, key := range keys {
		cs.reset()
		if _, err := ndjson.Get(ctx, r, &noMap, []byte(key)); err != nil {
			t.Fatal(err)
		}
		t.Logf("get %s without the key map: read %d bytes in %d calls = %.3f%% of the export; by object kind %v", key, cs.read.Load(), cs.calls.Load(), 100*float64(cs.read.Load())/float64(size), cs.reset())
		start := time.Now()
		cs.trace, cs.reads = true, nil
		res, err := ndjson.Get(ctx, r, p, []byte(key))
		cs.trace = false
		if err != nil {
			t.Fatal(err)
		}
		want, _ := g.Lookup(key, at)
		if string(res.Doc) != string(want) {
			t.Fatalf("get %s: wrong document", key)
		}
		n := cs.read.Load()
		worst = max(worst, n)
		t.Logf("reads: %v", cs.reads)
		t.Logf("get %s (%s): read %d bytes in %d calls = %.3f%% of the export, %.3f%% of the stored bytes, in %s; by object kind %v",
			key, res.Version.Op, n, cs.calls.Load(), 100*float64(n)/float64(size), 100*float64(n)/float64(stored), time.Since(start).Round(time.Millisecond), cs.reset())
	}
	if worst*100 > size {
		t.Errorf("a get read %d bytes, over 1%% of the %d-byte export", worst, size)
	}
}
