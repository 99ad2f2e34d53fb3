package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/internal/tcpproxy"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// syncLog collects a capture's status lines.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func connect(t *testing.T, s *etcdtest.Server) (*clientv3.Client, Config) {
	t.Helper()
	cfg := Config{Endpoints: []string{"http://" + s.Addr}}
	cli, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, cfg
}

// runCapture runs Capture until the returned stop is called.
func runCapture(t *testing.T, cli *clientv3.Client, cfg Config, r *repo.Repository, logs *syncLog) (stop func() CaptureStats) {
	ctx, cancel := context.WithCancel(t.Context())
	var st CaptureStats
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err = Capture(ctx, cli, cfg, r, CaptureOptions{Stream: "s", Interval: 100 * time.Millisecond,
			Logf: func(f string, a ...any) { logs.add(fmt.Sprintf(f, a...)) }})
	}()
	return func() CaptureStats {
		cancel()
		<-done
		if err != nil {
			t.Fatalf("capture: %v\n%s", err, logs)
		}
		return st
	}
}

func waitLog(t *testing.T, r *repo.Repository, rev int64, logs fmt.Stringer) *index.Catalog {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		cat, err := index.LoadCatalog(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := cat.Log("s").Newest(); ok && int64(n.Last) >= rev {
			return cat
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d not stored within 20 s\n%s", rev, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func restoreAt(t *testing.T, cat *index.Catalog, r *repo.Repository, rev int64, force bool) (map[string]string, RestoreStats) {
	t.Helper()
	p, err := cat.Plan("s", index.Target{Position: uint64(rev), ByPos: true})
	if err != nil {
		t.Fatal(err)
	}
	tgt := etcdtest.Start(t)
	cli, cfg := connect(t, tgt)
	st, err := Restore(t.Context(), cli, cfg, r, p, RestoreOptions{Force: force})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tgt.Dump(t)
	return got, st
}

// TestLargeRevisions: a prefix delete of 300 keys is one revision, restored
// in several transactions (over etcd's 128-operation limit) to the exact
// state; a revision larger than a log event ends in a gap and a new base,
// after which restores are exact again.
func TestLargeRevisions(t *testing.T) {
	src := etcdtest.Start(t, "--max-request-bytes", "33554432")
	sc := src.Client(t)
	cli, cfg := connect(t, src)
	r := newRepo(t)
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	ctx := t.Context()
	for i := range 300 {
		if _, err := sc.Put(ctx, fmt.Sprintf("p/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Put(ctx, "q", "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Delete(ctx, "p/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	rev1 := src.Revision(t)
	cat := waitLog(t, r, rev1, logs)
	want1, _ := src.Dump(t)
	got, st := restoreAt(t, cat, r, rev1, false)
	if !maps.Equal(got, want1) || st.SplitRevisions != 1 || st.LastRevision != rev1 || st.Revisions != rev1-st.BaseRevision {
		t.Fatalf("restore after a 300-key prefix delete: %d keys (want %v), stats %+v", len(got), want1, st)
	}

	// One transaction of 17 MiB: more than a log event holds.
	var ops []clientv3.Op
	for i := range 17 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("big/%02d", i), strings.Repeat("x", 1<<20)))
	}
	if _, err := sc.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	big := src.Revision(t)
	for deadline := time.Now().Add(20 * time.Second); strings.Count(logs.String(), "new base snapshot") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("no new base after a revision too large:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := sc.Put(ctx, "after", "1"); err != nil {
		t.Fatal(err)
	}
	rev2 := src.Revision(t)
	cat = waitLog(t, r, rev2, logs)
	st2 := stop()
	if st2.Gaps != 1 || st2.Bases != 2 {
		t.Fatalf("capture stats %+v, want 1 gap and 2 bases\n%s", st2, logs)
	}
	want2, _ := src.Dump(t)
	got, _ = restoreAt(t, cat, r, rev2, false)
	if !maps.Equal(got, want2) {
		t.Fatalf("restore after the new base: %d keys, want %d", len(got), len(want2))
	}
	// The log misses the big revision; the new base (at it, or after it)
	// covers it.
	if g := cat.Coverage("s").Gaps; len(g) != 1 || g[0].FromPos != uint64(big) {
		t.Fatalf("gaps %+v, want one from revision %d", g, big)
	}
	if w := cat.Coverage("s").Windows; len(w) != 2 || w[0].ToPos != uint64(big-1) || w[1].FromPos < uint64(big) {
		t.Fatalf("windows %+v: want one through revision %d and one from the new base", w, big-1)
	}
}

// TestConnectErrors: an unreachable endpoint fails within the dial timeout.
func TestConnectErrors(t *testing.T) {
	start := time.Now()
	_, err := Connect(t.Context(), Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second})
	if !errors.Is(err, ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s, want ErrUnreachable within the timeout", err, time.Since(start))
	}
}

// TestCaptureOutage: the connection is cut and new ones refused for longer
// than the stall limit; the capture notices, watches again once etcd is
// reachable, and the log is complete.
func TestCaptureOutage(t *testing.T) {
	src := etcdtest.Start(t)
	sc := src.Client(t)
	px, err := tcpproxy.Start(src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	cfg := Config{Endpoints: []string{"http://" + px.Addr()}}
	cli, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	r := newRepo(t)
	logs := &syncLog{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Capture(ctx, cli, cfg, r, CaptureOptions{Stream: "s", Interval: 100 * time.Millisecond, Stall: 1500 * time.Millisecond,
			Logf: func(f string, a ...any) { logs.add(fmt.Sprintf(f, a...)) }})
		done <- err
	}()
	put := func(k string) {
		t.Helper()
		if _, err := sc.Put(t.Context(), k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "new base snapshot"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no base:\n%s", logs)
		}
	}
	put("before")
	waitLog(t, r, src.Revision(t), logs)
	px.Refuse(true)
	px.CutAll()
	for i := range 10 {
		put(fmt.Sprintf("during/%d", i))
		time.Sleep(300 * time.Millisecond)
	}
	px.Refuse(false)
	put("after")
	cat := waitLog(t, r, src.Revision(t), logs)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "nothing heard") {
		t.Fatalf("the stall was not noticed:\n%s", logs)
	}
	if g := cat.Coverage("s").Gaps; len(g) != 0 {
		t.Fatalf("gaps after an outage: %+v", g)
	}
	want, _ := src.Dump(t)
	got, _ := restoreAt(t, cat, r, src.Revision(t), false)
	if !maps.Equal(got, want) {
		t.Fatalf("restore after an outage: %v, want %v", got, want)
	}
}
