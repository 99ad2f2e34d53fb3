package s3_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/internal/tcpproxy"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/repo/s3"
)

// proxied returns a store on a fresh bucket of the shared server, reached
// through a proxy the test can cut.
func proxied(t *testing.T, lock bool) (*s3.Store, *tcpproxy.Proxy) {
	t.Helper()
	o := miniotest.Bucket(t, lock)
	p, err := tcpproxy.Start(o.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	o.Endpoint = p.Addr()
	return open(t, o), p
}

// within fails t if fn takes longer than d: a cut connection must fail a
// call, not hang it.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if took := time.Since(start); took > d {
		t.Fatalf("%s took %v, want under %v", what, took, d)
	}
}

func TestCutPut(t *testing.T) {
	for _, size := range []int{4 << 20, 70 << 20} { // one request; multipart
		if size > 64<<20 && testing.Short() {
			continue
		}
		s, p := proxied(t, false)
		data := random(3, size)
		p.CutAfter(1 << 20)
		p.CutAll() // the idle connection Open left would carry on uncut
		within(t, 30*time.Second, "Put over a cut connection", func() {
			err := s.Put(t.Context(), "data/aa/cut.0", data)
			if err == nil {
				t.Fatalf("Put of %d bytes over a connection cut after 1 MiB succeeded", size)
			}
			if !retry.IsTransient(err) {
				t.Fatalf("Put over a cut connection: %v, want a transient error", err)
			}
		})
		p.CutAfter(-1)
		if _, err := s.Stat(t.Context(), "data/aa/cut.0"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat after the cut Put: %v, want not found (no partial object)", err)
		}
		var listed []string
		if err := s.List(t.Context(), "", func(info repo.ObjectInfo) error {
			listed = append(listed, info.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(listed) != 0 {
			t.Fatalf("List after the cut Put = %q", listed)
		}
	}
}

func TestCutGet(t *testing.T) {
	s, p := proxied(t, true) // versioned: a failed read must not look like a missing one
	data := random(4, 4<<20)
	if err := s.Put(t.Context(), "data/bb/cut.0", data); err != nil {
		t.Fatal(err)
	}
	p.CutAfter(1 << 20)
	p.CutAll()
	within(t, 30*time.Second, "Get over a cut connection", func() {
		b, err := s.Get(t.Context(), "data/bb/cut.0")
		if err == nil {
			t.Fatalf("Get over a connection cut after 1 MiB returned %d bytes", len(b))
		}
		if !retry.IsTransient(err) || errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Get over a cut connection: %v, want a transient error", err)
		}
		b, err = s.GetRange(t.Context(), "data/bb/cut.0", 1000, 3<<20)
		if err == nil {
			t.Fatalf("GetRange over a connection cut after 1 MiB returned %d bytes", len(b))
		}
		if !retry.IsTransient(err) {
			t.Fatalf("GetRange over a cut connection: %v, want a transient error", err)
		}
	})
	p.CutAfter(-1)
	if b, err := s.Get(t.Context(), "data/bb/cut.0"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("Get after the cuts: %d bytes, %v", len(b), err)
	}
	if got := s.TamperedObjects(); len(got) != 0 {
		t.Fatalf("a cut connection counted as tampering: %q", got)
	}
}

func TestRefusedIsTransient(t *testing.T) {
	s, p := proxied(t, false)
	if err := s.Put(t.Context(), "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	p.Refuse(true)
	p.CutAll() // idle keep-alive connections too
	if _, err := s.Stat(t.Context(), "x"); err == nil || !retry.IsTransient(err) {
		t.Fatalf("Stat through a refusing proxy: %v, want a transient error", err)
	}
	// The retry decorator rides it out.
	rs := retry.New(s, retry.Policy{Attempts: 20, Base: 20 * time.Millisecond, Max: 200 * time.Millisecond})
	time.AfterFunc(300*time.Millisecond, func() { p.Refuse(false) })
	if b, err := rs.Get(t.Context(), "x"); err != nil || string(b) != "x" {
		t.Fatalf("Get with retries while the proxy refuses for a while = %q, %v", b, err)
	}
}

// TestServerRestart kills a private MinIO while a retried Put waits for it.
func TestServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a MinIO server")
	}
	srv := miniotest.StartServer(t)
	o := miniotest.NewBucket(t, srv.Options(), false)
	s := open(t, o)
	rs := retry.New(s, retry.Policy{Attempts: 30, Base: 50 * time.Millisecond, Max: 500 * time.Millisecond})
	if err := rs.Put(t.Context(), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := s.Put(t.Context(), "down", []byte("2")); err == nil || !retry.IsTransient(err) {
		t.Fatalf("Put to a stopped server: %v, want a transient error", err)
	}
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(500 * time.Millisecond)
		srv.Start()
	}()
	err := rs.Put(t.Context(), "after", []byte("3"))
	<-restarted
	if err != nil {
		t.Fatalf("retried Put across a restart: %v", err)
	}
	for name, want := range map[string]string{"before": "1", "after": "3"} {
		if b, err := rs.Get(t.Context(), name); err != nil || string(b) != want {
			t.Fatalf("Get(%s) after the restart = %q, %v", name, b, err)
		}
	}
}
