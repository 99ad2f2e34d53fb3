package server

// Benchmarks for the index server's performance targets (issue 5): plan
// latency over a catalog of 1M log segments, lookups per second over
// loopback, and catalog memory per segment. Results are in bench/RESULTS.md.
//
//	go test -run '^$' -bench 'Plan1M|Handler1M$|Coverage1M' -benchtime 20000x ./server/
//	go test -run '^$' -bench HandlerNewest1M -benchtime 50x ./server/
//	go test -run '^$' -bench Loopback -benchtime 1x -timeout 30m ./server/
//	go test -run '^$' -bench CatalogMemory -benchtime 1x ./server/
//
// The catalog is loaded by server.New from a store whose logs/ listing is
// synthesized (segmentStore), so 1M segments cost no stored objects; labels
// and snapshot names are real objects in a memory store.

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/server/auth"
)

// benchLayout is a synthetic repository: streams of contiguous log
// segments (one every span, events positions each) broken by a few
// position gaps, with a labelled snapshot at the start of every snapEvery-th
// segment, as periodic backups of a captured database would leave.
type benchLayout struct {
	streams   []string
	segments  int // per stream
	events    uint64
	span      time.Duration
	gaps      int
	gapLen    uint64 // positions lost at each gap
	snapEvery int
}

// layout1M is 1M segments of 10 s (strata log's default --segment-interval),
// about 116 days of one stream, with four gaps; snapEvery sets how many
// segments a plan has to return (half of it on average).
func layout1M(snapEvery int) benchLayout {
	return benchLayout{streams: []string{"bench/db"}, segments: 1_000_000, events: 100,
		span: 10 * time.Second, gaps: 4, gapLen: 1000, snapEvery: snapEvery}
}

var benchT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// gapsBefore returns how many gaps precede segment i.
func (l benchLayout) gapsBefore(i int) uint64 {
	// Gap j (1-based) sits just before segment j*segments/(gaps+1).
	return uint64(i * (l.gaps + 1) / l.segments)
}

// key returns segment i of stream s.
func (l benchLayout) key(s, i int) repo.SegmentKey {
	first := 1 + uint64(i)*l.events + l.gapsBefore(i)*l.gapLen
	t := benchT0 + int64(i)*int64(l.span)
	k := repo.SegmentKey{Stream: l.streams[s], First: first, Last: first + l.events - 1,
		FirstTime: t, LastTime: t + int64(l.span) - int64(time.Millisecond)}
	binary.BigEndian.PutUint32(k.ID[0:], uint32(s))
	binary.BigEndian.PutUint64(k.ID[4:], uint64(i))
	k.ID[31] = 1
	return k
}

// segmentStore is a memory store whose listing of logs/ is l's segment
// names, generated while listing (in name order) rather than stored. Every
// other prefix, and Get, Put and the rest, are the memory store's; objects
// put under logs/ are not listed.
type segmentStore struct {
	*mem.Store
	l benchLayout
}

var _ repo.Store = (*segmentStore)(nil)

func (s *segmentStore) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if !strings.HasPrefix(prefix, repo.LogsPrefix) && !strings.HasPrefix(repo.LogsPrefix, prefix) {
		return s.Store.List(ctx, prefix, fn)
	}
	order := make([]int, len(s.l.streams))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(repo.StreamLogPrefix(s.l.streams[a]), repo.StreamLogPrefix(s.l.streams[b]))
	})
	for _, si := range order {
		if !strings.HasPrefix(repo.StreamLogPrefix(s.l.streams[si]), prefix) {
			continue
		}
		for i := range s.l.segments {
			if i%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(repo.ObjectInfo{Name: s.l.key(si, i).Name(), Size: 512}); err != nil {
				return err
			}
		}
	}
	return nil
}

// newBenchStore stores the labels and snapshot names of l's snapshots.
func newBenchStore(tb testing.TB, l benchLayout) *segmentStore {
	tb.Helper()
	ctx := context.Background()
	st := &segmentStore{Store: mem.New(), l: l}
	for si, stream := range l.streams {
		for i := 0; i < l.segments; i += l.snapEvery {
			k := l.key(si, i)
			pos := k.First - 1
			received := time.Unix(0, k.FirstTime).UTC()
			lb := &repo.Label{Version: 1, Stream: stream, Time: time.Unix(0, k.FirstTime-int64(time.Millisecond)).UTC(),
				Position: &pos, Format: "ndjson", Size: 1 << 30, NewBlobs: 1000, StoredBytes: 1 << 20, Received: &received, By: "bench"}
			b, err := lb.Encode()
			if err != nil {
				tb.Fatal(err)
			}
			var id repo.ID
			binary.BigEndian.PutUint32(id[0:], uint32(si))
			binary.BigEndian.PutUint64(id[4:], uint64(i))
			id[31] = 2
			if err := st.Put(ctx, repo.LabelName(id), b); err != nil {
				tb.Fatal(err)
			}
			if err := st.Put(ctx, repo.SnapshotsPrefix+id.String(), []byte("sealed")); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return st
}

// benchServer is a server over a synthetic catalog and a read token.
type benchServer struct {
	l     benchLayout
	srv   *Server
	token string
	load  time.Duration
}

var (
	benchMu      sync.Mutex
	benchServers = map[int]*benchServer{}
)

// serverFor returns the (cached) server over layout1M(snapEvery): loading
// 1M segments takes seconds, and every benchmark run calls its function
// more than once.
func serverFor(b *testing.B, snapEvery int) *benchServer {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if bs := benchServers[snapEvery]; bs != nil {
		return bs
	}
	l := layout1M(snapEvery)
	st := newBenchStore(b, l)
	bs := &benchServer{l: l}
	start := time.Now()
	bs.srv, bs.token = newBenchServer(b, st)
	bs.load = time.Since(start)
	benchServers[snapEvery] = bs
	return bs
}

func newBenchServer(tb testing.TB, st repo.Store) (*Server, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tokens")
	scopes, err := auth.ParseScopes("read")
	if err != nil {
		tb.Fatal(err)
	}
	token, err := auth.Create(path, "bench", scopes)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := auth.LoadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// The audit trail flushes rarely: lookups write no records anyway.
	srv, err := New(context.Background(), Options{Store: st, Tokens: func() *auth.Set { return set }, AuditFlush: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, token
}

// randomTarget is a time or a position, equally likely, uniform over the
// stream's whole log.
func (l benchLayout) randomTarget(r *rand.Rand) index.Target {
	last := l.key(0, l.segments-1)
	if r.IntN(2) == 0 {
		return index.Target{Position: 1 + r.Uint64N(last.Last), ByPos: true}
	}
	return index.Target{Time: time.Unix(0, benchT0+r.Int64N(last.LastTime-benchT0+1)).UTC()}
}

// benchPlanLimit, when set (-plan-limit N), asks every benchmarked plan
// for its first page of at most N segments (PROTOCOL.md §5, "Pages"); a
// server before paging ignores the parameter and answers the whole plan,
// so one benchmark compares both.
var benchPlanLimit = flag.Int("plan-limit", 0, "ask benchmarked plans for a first page of at most this many segments (0: the whole plan)")

func planQuery(stream string, t index.Target) string {
	q := url.Values{"stream": {stream}}
	if *benchPlanLimit > 0 {
		q.Set("limit", strconv.Itoa(*benchPlanLimit))
	}
	if t.ByPos {
		q.Set("position", strconv.FormatUint(t.Position, 10))
	} else {
		q.Set("at", t.Time.Format(time.RFC3339Nano))
	}
	return "/v1/plan?" + q.Encode()
}

// latencies collects one duration per operation and reports percentiles.
type latencies []time.Duration

func (d latencies) report(b *testing.B, unit string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(at(0.50), "p50-µs"+unit)
	b.ReportMetric(at(0.99), "p99-µs"+unit)
	b.ReportMetric(float64(d[len(d)-1])/float64(time.Microsecond), "max-µs"+unit)
}

// snapDensities are the snapshot spacings measured: a snapshot every 100
// segments (17 min), hourly (360) and daily (8640) with 10 s segments.
var snapDensities = []int{100, 360, 8640}

// BenchmarkPlan1M measures the catalog's part of a plan lookup (what the
// handler does under the read lock) over 1M segments, random targets.
func BenchmarkPlan1M(b *testing.B) {
	for _, every := range snapDensities {
		b.Run(fmt.Sprintf("snapEvery=%d", every), func(b *testing.B) {
			bs := serverFor(b, every)
			r := rand.New(rand.NewPCG(1, uint64(every)))
			var lat latencies
			var segs, refused int
			for b.Loop() {
				t := bs.l.randomTarget(r)
				start := time.Now()
				var p *index.Plan
				var err error
				bs.srv.cat.read(func(c *index.Catalog) { p, err = c.Plan("bench/db", t) })
				lat = append(lat, time.Since(start))
				if err != nil {
					refused++
					continue
				}
				segs += len(p.Segments)
			}
			lat.report(b, "")
			b.ReportMetric(float64(segs)/float64(len(lat)-refused), "segs/plan")
			b.ReportMetric(float64(refused)/float64(len(lat))*100, "%refused")
		})
	}
}

// BenchmarkHandler1M measures GET /v1/plan through srv.Handler() with an
// httptest recorder: authentication, routing, the plan, formatting its
// segment names and encoding the JSON response.
func BenchmarkHandler1M(b *testing.B) {
	for _, every := range snapDensities {
		b.Run(fmt.Sprintf("snapEvery=%d", every), func(b *testing.B) {
			bs := serverFor(b, every)
			h := bs.srv.Handler()
			r := rand.New(rand.NewPCG(2, uint64(every)))
			var lat latencies
			var bytes, refused int
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, planQuery("bench/db", bs.l.randomTarget(r)), nil)
				req.Header.Set("Authorization", "Bearer "+bs.token)
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				switch rec.Code {
				case http.StatusOK:
				case http.StatusUnprocessableEntity:
					refused++
				default:
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				bytes += rec.Body.Len()
			}
			lat.report(b, "")
			b.ReportMetric(float64(bytes)/float64(len(lat)), "resp-B")
			b.ReportMetric(float64(refused)/float64(len(lat))*100, "%refused")
		})
	}
}

// BenchmarkHandlerNewest1M asks for a plan at the newest captured event
// and one second after it ("restore to now" when the log lags), by time:
// the request that tries every older snapshot before refusing.
func BenchmarkHandlerNewest1M(b *testing.B) {
	for _, every := range snapDensities {
		bs := serverFor(b, every)
		last := bs.l.key(0, bs.l.segments-1)
		for _, c := range []struct {
			name string
			at   int64
		}{{"newest", last.LastTime}, {"after-newest", last.LastTime + int64(time.Second)}} {
			b.Run(fmt.Sprintf("snapEvery=%d/%s", every, c.name), func(b *testing.B) {
				h := bs.srv.Handler()
				target := planQuery("bench/db", index.Target{Time: time.Unix(0, c.at).UTC()})
				var lat latencies
				for b.Loop() {
					req := httptest.NewRequest(http.MethodGet, target, nil)
					req.Header.Set("Authorization", "Bearer "+bs.token)
					rec := httptest.NewRecorder()
					start := time.Now()
					h.ServeHTTP(rec, req)
					lat = append(lat, time.Since(start))
				}
				lat.report(b, "")
			})
		}
	}
}

// BenchmarkCoverage1M measures GET /v1/coverage through the handler.
func BenchmarkCoverage1M(b *testing.B) {
	for _, every := range snapDensities {
		b.Run(fmt.Sprintf("snapEvery=%d", every), func(b *testing.B) {
			bs := serverFor(b, every)
			h := bs.srv.Handler()
			var lat latencies
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/v1/coverage?stream=bench/db", nil)
				req.Header.Set("Authorization", "Bearer "+bs.token)
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			lat.report(b, "")
		})
	}
}

// Load generator bounds: at most loadRequests requests and loadTimeLimit
// of wall time per run, from loadClients goroutines, to loopback only.
const (
	loadClients   = 64
	loadRequests  = 200_000
	loadTimeLimit = 60 * time.Second
)

// BenchmarkLoopback serves srv.Handler() from a real http.Server on
// 127.0.0.1 and has 64 goroutines sharing one http.Client send a fixed
// number of lookups: /v1/plan for random targets and /v1/coverage,
// alternately. Client and server share the machine's cores. Each
// iteration is one whole run; use -benchtime 1x. The floor run sends
// /v1/whoami (authentication, routing, metrics and a tiny JSON body, no
// catalog): the most lookups this machine's HTTP stack serves.
func BenchmarkLoopback(b *testing.B) {
	lookups := func(bs *benchServer) func(*rand.Rand, int64) string {
		return func(r *rand.Rand, n int64) string {
			if n%2 == 0 {
				return planQuery("bench/db", bs.l.randomTarget(r))
			}
			return "/v1/coverage?stream=bench/db"
		}
	}
	for _, every := range snapDensities {
		b.Run(fmt.Sprintf("snapEvery=%d", every), func(b *testing.B) {
			bs := serverFor(b, every)
			loopback(b, bs, lookups(bs))
		})
	}
	b.Run("floor=whoami", func(b *testing.B) {
		bs := serverFor(b, snapDensities[len(snapDensities)-1])
		loopback(b, bs, func(*rand.Rand, int64) string { return "/v1/whoami" })
	})
}

func loopback(b *testing.B, bs *benchServer, pick func(r *rand.Rand, n int64) string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: bs.srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	tr := &http.Transport{MaxIdleConns: 2 * loadClients, MaxIdleConnsPerHost: 2 * loadClients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for b.Loop() {
		runLoad(b, hc, base, bs.token, pick)
	}
}

// runLoad sends at most loadRequests requests, for at most loadTimeLimit.
func runLoad(b *testing.B, hc *http.Client, base, token string, pick func(r *rand.Rand, n int64) string) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeLimit)
	defer cancel()
	var next, failed, bytes atomic.Int64
	lats := make([]latencies, loadClients)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range loadClients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(3, uint64(g)))
			for ctx.Err() == nil {
				n := next.Add(1)
				if n > loadRequests {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+pick(r, n), nil)
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				m, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if ctx.Err() != nil {
					return // cut by the time limit: not a whole request
				}
				lats[g] = append(lats[g], time.Since(t0))
				bytes.Add(m)
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	all := slices.Concat(lats...)
	b.ReportMetric(float64(len(all))/took.Seconds(), "req/s")
	b.ReportMetric(float64(len(all)), "requests")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.ReportMetric(float64(bytes.Load())/float64(max(1, len(all))), "resp-B")
	latencies(all).report(b, "")
}

// BenchmarkCatalogMemory loads a catalog of 1M segments through New and
// reports the live heap it added per segment (snapshots and labels
// included: one snapshot every 360 segments).
func BenchmarkCatalogMemory(b *testing.B) {
	l := layout1M(360)
	st := newBenchStore(b, l)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		srv, _ := newBenchServer(b, st)
		load := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := l.segments * len(l.streams)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "B/segment")
		b.ReportMetric(load.Seconds(), "load-s")
		runtime.KeepAlive(srv)
		srv.Close(context.Background())
	}
}
