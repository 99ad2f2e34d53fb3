package server_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/server"
	"github.com/strata-backup/strata/server/auth"
)

// limitedServer is a server with small limits on a loopback listener,
// served as `strata serve` serves it (HTTPServer on Listener).
type limitedServer struct {
	addr, url string
	token     string
	srv       *server.Server
}

func startLimited(t *testing.T, o server.Options) *limitedServer {
	t.Helper()
	st := mem.New()
	if _, err := repo.Init(t.Context(), st, password, repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, DataShards: 2, ParityShards: 1}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens")
	sc, _ := auth.ParseScopes("backup:*,restore:*,read")
	token, err := auth.Create(path, "ci", sc)
	if err != nil {
		t.Fatal(err)
	}
	set, err := auth.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o.Store, o.Tokens = st, func() *auth.Set { return set }
	srv, err := server.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(srv.Listener(ln))
	t.Cleanup(func() { hs.Close(); srv.Close(t.Context()) })
	return &limitedServer{addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), token: token, srv: srv}
}

// upload sends a PUT by hand: a head announcing length bytes, then send
// bytes of junk in chunks of chunk bytes, pause between chunks, then
// nothing more (a stall when send < length). It returns the status the
// server answered, or 0 when it closed the connection without one.
func (ls *limitedServer) upload(name, token string, length, send int64, chunk int, pause time.Duration, extraHeader string) int {
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		return -1
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /v1/objects/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n%s\r\n", name, token, length, extraHeader)
	go func() {
		buf := make([]byte, chunk)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for sent := int64(0); sent < send; sent += int64(chunk) {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(buf[:min(int64(chunk), send-sent)]); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// heapPeak samples the heap (live and not yet collected objects) until
// stop is closed and returns the highest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// TestHostileBodies is the soak test of request bodies (PROTOCOL.md,
// "Limits and memory"): stalled uploads one byte short, large junk
// uploads, a trickling upload, uploads without a token and oversized
// heads, all at once against a server with a 24 MiB memory budget. Every
// one is answered (408, 413, 422, 431, 503, 401) within seconds, the heap
// never passes the baseline plus the budget plus the connections'
// overhead, and the server still works afterwards.
func TestHostileBodies(t *testing.T) {
	o := server.Options{Memory: 24 << 20, MaxConns: 36, MemoryWait: 500 * time.Millisecond,
		BodyIdleTimeout: 300 * time.Millisecond, BodyTimeout: 1500 * time.Millisecond}
	ls := startLimited(t, o)
	stalled, junk := 16, 4
	if testing.Short() {
		stalled, junk = 8, 2
	}
	shard := func(i int) string { return fmt.Sprintf("data/ab/%s%02x.0", strings.Repeat("ab", 31), i) }

	runtime.GC()
	base := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}()
	bound := uint64(o.Memory) + uint64(o.MaxConns)*server.ConnOverhead
	// What `strata serve` does: a soft limit at the bound, so the memory of
	// finished uploads is collected before the heap grows past it.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(base + bound)))
	stop := make(chan struct{})
	peak := heapPeak(stop)

	start := time.Now()
	var wg sync.WaitGroup
	var bad atomic.Int32
	want := func(what string, got int, ok ...int) {
		for _, s := range ok {
			if got == s {
				return
			}
		}
		bad.Add(1)
		t.Errorf("%s: status %d, want one of %v", what, got, ok)
	}
	for i := range stalled {
		wg.Go(func() {
			// 4 MiB announced, one byte short, then silence.
			want("stalled upload", ls.upload(shard(i), ls.token, 4<<20, 4<<20-1, 64<<10, 0, ""), http.StatusRequestTimeout, http.StatusServiceUnavailable)
		})
	}
	for i := range junk {
		wg.Go(func() {
			want("junk upload", ls.upload(shard(100+i), ls.token, 6<<20, 6<<20, 64<<10, 0, ""), http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
		})
	}
	wg.Go(func() {
		// Too big for the budget at all.
		want("upload over the budget", ls.upload(shard(200), ls.token, 20<<20, 20<<20, 64<<10, 0, ""), http.StatusRequestEntityTooLarge)
	})
	wg.Go(func() {
		// A byte every so often, never idle long enough, never done.
		want("trickling upload", ls.upload(shard(201), ls.token, 1<<20, 1<<20, 1024, 50*time.Millisecond, ""), http.StatusRequestTimeout, http.StatusServiceUnavailable)
	})
	for i := range 8 {
		wg.Go(func() {
			want("upload without a token", ls.upload(shard(210+i), "strata_nope", 200<<20, 8<<20, 64<<10, 0, ""), http.StatusUnauthorized, 0)
		})
	}
	wg.Go(func() {
		want("oversized head", ls.upload(shard(220), ls.token, 10, 10, 10, 0, "X-Pad: "+strings.Repeat("p", 17<<10)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge, http.StatusBadRequest)
	})
	wg.Wait()
	took := time.Since(start)
	close(stop)
	got := <-peak
	t.Logf("hostile bodies answered in %s; heap peak %.1f MiB over a baseline of %.1f MiB (bound %.1f MiB)",
		took.Round(time.Millisecond), float64(got-min(got, base))/(1<<20), float64(base)/(1<<20), float64(bound)/(1<<20))
	if got > base+bound {
		t.Errorf("heap peaked at %d bytes over its baseline, over the documented bound %d", got-base, bound)
	}
	if took > 8*time.Second {
		t.Errorf("hostile bodies took %s to be answered", took)
	}

	// The server still serves.
	c, err := client.New(ls.url, ls.token, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), c.Store(), password)
	if err != nil {
		t.Fatalf("after the hostile bodies: %v", err)
	}
	if _, err := c.Snapshots(t.Context(), ""); err != nil || r == nil {
		t.Fatalf("after the hostile bodies: %v", err)
	}
}

// TestHeaderLimit: a request head over the documented 16 KiB is refused
// (431), one just under it is served.
func TestHeaderLimit(t *testing.T) {
	ls := startLimited(t, server.Options{})
	for _, tc := range []struct {
		pad  int
		want int
	}{{15 << 10, http.StatusOK}, {16<<10 + 100, http.StatusRequestHeaderFieldsTooLarge}, {19 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest("GET", ls.url+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+ls.token)
		req.Header.Set("X-Pad", strings.Repeat("p", tc.pad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("head with %d bytes of padding: %d, want %d", tc.pad, resp.StatusCode, tc.want)
		}
	}
}

// TestConnectionCap: with MaxConns connections open, the next request
// waits until one of them closes.
func TestConnectionCap(t *testing.T) {
	ls := startLimited(t, server.Options{MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ls.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	get := func(timeout time.Duration) error {
		hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get(ls.url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	time.Sleep(50 * time.Millisecond) // let the server accept both
	if err := get(300 * time.Millisecond); err == nil {
		t.Fatal("a third connection was served while two were open")
	}
	held[0].Close()
	if err := get(5 * time.Second); err != nil {
		t.Fatalf("after one connection closed: %v", err)
	}
}
