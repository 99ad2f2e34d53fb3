package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/internal/tcpproxy"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/redis"
)

const stream = "cache/main"

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func opts(s *redistest.Server) redis.Options {
	return redis.Options{Addr: s.Addr, Name: "redis://" + s.Addr}
}

// capture runs redis.Capture in the background until stop is called.
type capture struct {
	cancel context.CancelFunc
	done   chan error
	st     redis.CaptureStats
}

func startCapture(t *testing.T, r *repo.Repository, o redis.Options) *capture {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &capture{cancel: cancel, done: make(chan error, 1)}
	go func() {
		var err error
		c.st, err = redis.Capture(ctx, r, o, redis.CaptureOptions{
			Stream: stream, SegmentBytes: 8 << 10, Interval: 300 * time.Millisecond, AckEvery: 50 * time.Millisecond,
			MaxBackoff: 200 * time.Millisecond, Logf: func(f string, a ...any) { t.Logf("capture: "+f, a...) },
		})
		c.done <- err
	}()
	return c
}

func (c *capture) stop(t *testing.T) redis.CaptureStats {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("capture did not stop")
	}
	return c.st
}

// waitOnline waits until the master has a replica streaming.
func waitOnline(t *testing.T, c *redistest.Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.Info("replication")["slave0"], "state=online") {
		if time.Now().After(deadline) {
			t.Fatalf("no replica came online: %v", c.Info("replication"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// instant is a recorded ground truth.
type instant struct {
	name  string
	at    time.Time
	state string
}

// mark waits until the capture has everything written so far, then
// records the time and the exact state.
func mark(t *testing.T, c *redistest.Client, name string) instant {
	t.Helper()
	c.WaitReplicas(20 * time.Second)
	time.Sleep(2 * time.Millisecond)
	in := instant{name: name, at: time.Now(), state: c.State()}
	time.Sleep(2 * time.Millisecond)
	return in
}

// restoreInto restores the stream at target into a fresh server and
// returns its state.
func restoreAt(t *testing.T, r *repo.Repository, target index.Target) (string, redis.RestoreStats) {
	t.Helper()
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan(stream, target)
	if err != nil {
		t.Fatalf("plan %s: %v", target, err)
	}
	dst := redistest.Start(t, redistest.Options{})
	st, err := redis.Restore(t.Context(), r, p, opts(dst), redis.RestoreOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("restore at %s: %v\ntarget log: %s", target, err, dst.Log())
	}
	c := dst.Client(t)
	if role := c.Info("replication")["role"]; role != "master" {
		t.Fatalf("the target is left a %s", role)
	}
	return c.State(), st
}

// far is an expiry far enough ahead that nothing expires during the test.
var far = time.Now().Add(1000 * time.Hour)

func workload(t *testing.T, c *redistest.Client, phase int) {
	t.Helper()
	p := fmt.Sprintf("p%d:", phase)
	for i := range 40 {
		c.Must("SET", fmt.Sprintf("%sk%d", p, i), strings.Repeat("v", i*7))
	}
	c.Must("INCR", p+"counter")
	c.Must("INCRBY", p+"counter", 41)
	c.Must("EXPIRE", p+"k1", 3600000)
	c.Must("PEXPIREAT", p+"k2", far.UnixMilli())
	c.Must("SET", p+"k3", "with-ttl", "EX", 3600000)
	c.Must("DEL", p+"k4", p+"k5")
	c.Must("HSET", p+"h", "f1", "a", "f2", "b", "f3", "c")
	c.Must("HDEL", p+"h", "f2")
	c.Must("HINCRBY", p+"h", "n", 5)
	c.Must("RPUSH", p+"l", "a", "b", "c", "d")
	c.Must("LPOP", p+"l")
	c.Must("LPUSH", p+"l", "z")
	c.Must("SADD", p+"s", "x", "y", "z")
	c.Must("SREM", p+"s", "y")
	c.Must("ZADD", p+"z", 1, "one", 2, "two", 3.5, "three")
	c.Must("ZINCRBY", p+"z", 10, "one")
	c.Must("RENAME", p+"k6", p+"renamed")
	c.Must("SELECT", 1)
	c.Must("SET", p+"db1", phase)
	c.Must("HSET", p+"db1h", "f", phase)
	c.Must("SELECT", 0)
	c.Must("MULTI")
	c.Must("SET", p+"tx1", "a")
	c.Must("INCR", p+"counter")
	c.Must("SELECT", 1)
	c.Must("SADD", p+"txset", "m")
	c.Must("SELECT", 0)
	c.Must("EXEC")
	c.Must("SET", p+"big", strings.Repeat("B", 150<<10))
}

// TestCaptureRestoreAtInstants runs a workload of every data type across
// two databases while capturing, and restores at several instants into
// fresh servers: each equals the ground truth recorded at that instant.
func TestCaptureRestoreAtInstants(t *testing.T) {
	src := redistest.Start(t, redistest.Options{Diskless: true})
	c := src.Client(t)
	c.Must("SET", "before-capture", "in the base")
	c.Must("HSET", "base-hash", "a", 1)
	c.Must("PEXPIREAT", "base-hash", far.UnixMilli())
	r := newRepo(t)
	cp := startCapture(t, r, opts(src))
	waitOnline(t, c)
	var ins []instant
	for phase := range 3 {
		workload(t, c, phase)
		ins = append(ins, mark(t, c, fmt.Sprintf("after phase %d", phase)))
	}
	// A transaction right after a mark: a restore by position inside it
	// must stop before its MULTI, at the marked state.
	beforeTx := mark(t, c, "before the transaction")
	c.Must("MULTI")
	c.Must("SET", "tx:a", 1)
	c.Must("SET", "tx:b", 2)
	c.Must("EXEC")
	c.Must("FLUSHALL")
	c.Must("SELECT", 1)
	c.Must("SET", "after-flush", "db1")
	c.Must("SELECT", 0)
	ins = append(ins, mark(t, c, "after FLUSHALL"))
	c.Must("SET", "tail", "so the log reaches past the last instant")
	c.WaitReplicas(20 * time.Second)
	st := cp.stop(t)
	if st.Bases != 1 || st.Gaps != 0 || st.Appended == 0 {
		t.Fatalf("capture stats %+v", st)
	}

	for _, in := range ins {
		got, _ := restoreAt(t, r, index.Target{Time: in.at})
		if got != in.state {
			t.Fatalf("restore %s differs:\n got %s\nwant %s", in.name, got, in.state)
		}
	}

	// Find the transaction's MULTI and restore at a position inside it.
	cat, _ := index.LoadCatalog(t.Context(), r)
	multi := findCommand(t, r, cat, "multi", beforeTx.at)
	got, rst := restoreAt(t, r, index.Target{Position: multi + 2, ByPos: true})
	if !rst.CutMulti || rst.Through != multi-1 || got != beforeTx.state {
		t.Fatalf("restore inside MULTI/EXEC at %d: cut %v through %d\n got %s\nwant %s", multi+2, rst.CutMulti, rst.Through, got, beforeTx.state)
	}

	// A target with keys is refused without Force and replaced with it.
	dst := redistest.Start(t, redistest.Options{})
	dc := dst.Client(t)
	dc.Must("SELECT", 3)
	dc.Must("SET", "stray", "x")
	p, err := cat.Plan(stream, index.Target{Time: ins[1].at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redis.Restore(t.Context(), r, p, opts(dst), redis.RestoreOptions{}); !errors.Is(err, redis.ErrNotEmpty) || !strings.Contains(err.Error(), "db3: 1 keys") {
		t.Fatalf("non-empty target: %v", err)
	}
	if _, err := redis.Restore(t.Context(), r, p, opts(dst), redis.RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := dc.State(); got != ins[1].state {
		t.Fatalf("forced restore differs:\n got %s\nwant %s", got, ins[1].state)
	}
}

// findCommand returns the position of the first stored command named name
// arriving after t.
func findCommand(t *testing.T, r *repo.Repository, cat *index.Catalog, name string, after time.Time) uint64 {
	t.Helper()
	var pos uint64
	for _, k := range cat.Log(stream).Segments {
		seg, err := r.LoadSegment(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		err = engine.ReadSegment(t.Context(), r, k, seg, func(e *repo.Event) error {
			if pos == 0 && string(e.Key) == name && e.Time > after.UnixNano() {
				pos = e.Seq
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if pos == 0 {
		t.Fatalf("no %s stored after %s", name, after)
	}
	return pos
}

// TestReconnectAndBacklogOverrun: a cut connection and a restart within
// the backlog continue the log without a gap; a restart after the backlog
// was overrun records a gap and takes a new base. Restores on both sides
// of the gap are exact, and a restore inside it is refused.
func TestReconnectAndBacklogOverrun(t *testing.T) {
	src := redistest.Start(t, redistest.Options{BacklogSize: "16kb"})
	c := src.Client(t)
	proxy, err := tcpproxy.Start(src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	via := redis.Options{Addr: proxy.Addr(), Name: "redis://" + proxy.Addr()}
	r := newRepo(t)

	cp := startCapture(t, r, via)
	waitOnline(t, c)
	workload(t, c, 0)
	c.WaitReplicas(20 * time.Second)
	proxy.CutAll() // mid-stream: the capture reconnects and continues
	c.Must("SET", "while-cut", 1)
	waitOnline(t, c)
	workload(t, c, 1)
	in1 := mark(t, c, "after a reconnect")
	if st := cp.stop(t); st.Reconnects == 0 || st.Bases != 1 {
		t.Fatalf("stats after a cut: %+v", st)
	}

	c.Must("SET", "while-stopped", "small: inside the backlog")
	cp = startCapture(t, r, via)
	waitOnline(t, c)
	c.Must("INCR", "resumed")
	in2 := mark(t, c, "after a restart")
	// Without a command after it, in2 would lie between the run's last
	// command and the gap: unprovable, so refused.
	c.Must("SET", "tail", 0)
	c.WaitReplicas(20 * time.Second)
	if st := cp.stop(t); st.Bases != 0 || st.Gaps != 0 {
		t.Fatalf("a restart inside the backlog: %+v", st)
	}

	lost := time.Now()
	for i := range 200 {
		c.Must("SET", fmt.Sprintf("overrun:%d", i), strings.Repeat("o", 500))
	}
	lostEnd := time.Now()
	cp = startCapture(t, r, via)
	waitOnline(t, c)
	c.Must("DEL", "overrun:7")
	workload(t, c, 2)
	in3 := mark(t, c, "after the new base")
	c.Must("SET", "tail", 1)
	c.WaitReplicas(20 * time.Second)
	if st := cp.stop(t); st.Bases != 1 || st.Gaps != 1 {
		t.Fatalf("a restart after the backlog was overrun: %+v", st)
	}

	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	cov := cat.Coverage(stream)
	if len(cov.Gaps) != 1 || cov.Gaps[0].FromPos != cov.Gaps[0].ToPos || len(cov.Windows) != 2 {
		t.Fatalf("coverage %+v", cov)
	}
	// in1 lies between the last command stored before the restart and the
	// restart: "while-stopped", resent by the master after the restart, may
	// have happened before it as far as the capture can know, so a restore
	// by time is refused, naming the span; by position it is exact.
	var span *index.Uncertain
	for _, u := range cov.Uncertain {
		if u.After.Before(in1.at) && in1.at.Before(u.Before) {
			span = &u
		}
	}
	if span == nil {
		t.Fatalf("no time-uncertain span holds %s: %+v", index.FormatTime(in1.at), cov.Uncertain)
	}
	if _, err := cat.Plan(stream, index.Target{Time: in1.at}); !errors.Is(err, index.ErrTimeUncertain) || !strings.Contains(err.Error(), fmt.Sprintf("--at-position %d..%d", span.FromPos-1, span.ToPos)) {
		t.Fatalf("a restore inside the span: %v", err)
	}
	if got, _ := restoreAt(t, r, index.Target{Position: span.FromPos - 1, ByPos: true}); got != in1.state {
		t.Fatalf("restore %s by position differs:\n got %s\nwant %s", in1.name, got, in1.state)
	}
	for _, in := range []instant{in2, in3} {
		t.Logf("restoring %s at %s", in.name, index.FormatTime(in.at))
		if got, _ := restoreAt(t, r, index.Target{Time: in.at}); got != in.state {
			t.Fatalf("restore %s differs:\n got %s\nwant %s", in.name, got, in.state)
		}
	}
	for _, at := range []time.Time{lost, lostEnd} {
		if _, err := cat.Plan(stream, index.Target{Time: at}); !errors.Is(err, index.ErrNotRestorable) || !strings.Contains(err.Error(), "gap") {
			t.Fatalf("a restore inside the gap: %v", err)
		}
	}
}

// TestOversizedCommand: a command over the 16 MiB a log event holds is
// recorded as a gap, and a full resync takes a new base; nothing is
// silently dropped.
func TestOversizedCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 17 MiB values around")
	}
	src := redistest.Start(t, redistest.Options{Args: []string{"--client-output-buffer-limit", "replica 0 0 0"}})
	c := src.Client(t)
	r := newRepo(t)
	cp := startCapture(t, r, opts(src))
	waitOnline(t, c)
	c.Must("SET", "small", 1)
	c.WaitReplicas(20 * time.Second)
	c.Must("SET", "huge", strings.Repeat("h", repo.MaxEventValue+1))
	c.Must("SET", "after", 2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.WaitReplicas(20 * time.Second)
		cat, _ := index.LoadCatalog(t.Context(), r)
		if len(cat.Stream(stream)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second base after an oversized command")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Must("DEL", "huge")
	in := mark(t, c, "after the oversized command")
	c.Must("SET", "tail", 1)
	c.WaitReplicas(20 * time.Second)
	if st := cp.stop(t); st.Bases != 2 || st.Gaps != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got, _ := restoreAt(t, r, index.Target{Time: in.at}); got != in.state {
		t.Fatalf("restore differs:\n got %s\nwant %s", got, in.state)
	}
}

// TestStandaloneBackupPosition: a one-off backup while a capture runs gets
// the log position of its offset, and the log applies to it.
func TestStandaloneBackupPosition(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	c := src.Client(t)
	r := newRepo(t)
	if res, err := redis.Backup(t.Context(), r, opts(src), redis.BackupOptions{Stream: stream}); err != nil || res.Positioned {
		t.Fatalf("a backup with no log: %+v %v", res, err)
	}
	cp := startCapture(t, r, opts(src))
	waitOnline(t, c)
	workload(t, c, 0)
	c.WaitReplicas(20 * time.Second)
	// A client of its own: the test's goes on while this one may still be
	// reading its reply, and one connection's replies must not interleave.
	writer := src.Client(t)
	go func() {
		time.Sleep(500 * time.Millisecond)
		writer.Do("SET", "after-backup", 1) // the command that proves the position
	}()
	res, err := redis.Backup(t.Context(), r, opts(src), redis.BackupOptions{Stream: stream, Wait: 20 * time.Second})
	if err != nil || !res.Positioned {
		t.Fatalf("a backup beside a capture: %+v %v", res, err)
	}
	c.Must("INCR", "later")
	in := mark(t, c, "after the backup")
	c.Must("SET", "tail", 1)
	c.WaitReplicas(20 * time.Second)
	cp.stop(t)
	cat, _ := index.LoadCatalog(t.Context(), r)
	p, err := cat.Plan(stream, index.Target{Time: in.at})
	if err != nil || p.Base.ID != res.ID {
		t.Fatalf("plan from the standalone backup: %v (base %v, want %s)", err, p, res.ID.Short())
	}
	if got, _ := restoreAt(t, r, index.Target{Time: in.at}); got != in.state {
		t.Fatalf("restore differs:\n got %s\nwant %s", got, in.state)
	}
}

// TestBadSources: clear errors, no snapshot stored, never a password in a
// message.
func TestBadSources(t *testing.T) {
	r := newRepo(t)
	ctx := t.Context()
	dead := redistest.Start(t, redistest.Options{})
	dead.Stop()
	if _, err := redis.Backup(ctx, r, opts(dead), redis.BackupOptions{Stream: stream}); err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("unreachable: %v", err)
	}
	if _, err := redis.Capture(ctx, r, opts(dead), redis.CaptureOptions{Stream: stream}); err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("unreachable capture: %v", err)
	}

	locked := redistest.Start(t, redistest.Options{Password: "right-pass"})
	for _, pw := range []string{"", "Wrong-Pass-123"} {
		o := opts(locked)
		o.Password = pw
		_, err := redis.Backup(ctx, r, o, redis.BackupOptions{Stream: stream})
		if !errors.Is(err, redis.ErrAuth) || pw != "" && strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), locked.Addr) {
			t.Fatalf("password %q: %v", pw, err)
		}
		t.Logf("password %q: %v", pw, err)
	}
	o := opts(locked)
	o.Password = "right-pass"
	if _, err := redis.Backup(ctx, r, o, redis.BackupOptions{Stream: stream, Wait: time.Millisecond}); err != nil {
		t.Fatalf("right password: %v", err)
	}

	// A replica whose master is unreachable refuses to serve a replica.
	orphan := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", "1"}})
	if _, err := redis.Backup(ctx, r, opts(orphan), redis.BackupOptions{Stream: "other"}); !errors.Is(err, redis.ErrRefused) {
		t.Fatalf("refused replication: %v", err)
	} else {
		t.Logf("refused: %v", err)
	}

	// A connection cut in the middle of the RDB stores nothing.
	big := redistest.Start(t, redistest.Options{})
	bc := big.Client(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		v := make([]byte, 1000)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26)) // incompressible enough for LZF
		}
		bc.Must("SET", fmt.Sprintf("k%d", i), string(v))
	}
	proxy, err := tcpproxy.Start(big.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.CutAfter(100 << 10)
	_, err = redis.Backup(ctx, r, redis.Options{Addr: proxy.Addr()}, redis.BackupOptions{Stream: "cut"})
	if err == nil {
		t.Fatal("a backup cut mid-RDB succeeded")
	}
	t.Logf("cut mid-RDB: %v", err)
	cat, _ := index.LoadCatalog(ctx, r)
	if n := len(cat.Stream("cut")); n != 0 {
		t.Fatalf("a cut backup stored %d snapshots (%v)", n, err)
	}
}
