package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/repo/s3"
)

func leaseOpts(host string, pid int) LeaseOptions {
	return LeaseOptions{Stream: "s", Host: host, PID: pid, Interval: 40 * time.Millisecond, Missed: 3}
}

// abandon stops renewing without releasing: what a killed holder leaves.
func (l *Lease) abandon() {
	close(l.stop)
	<-l.done
}

// TestLeaseRefusesAndReleases: a second writer is refused, naming the
// holder; once the holder releases, the next takes the lease at once with
// a higher epoch.
func TestLeaseRefusesAndReleases(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	a, err := AcquireLease(ctx, s, leaseOpts("db1", 100))
	if err != nil {
		t.Fatal(err)
	}
	if a.Epoch() != 1 {
		t.Fatalf("first epoch %d, want 1", a.Epoch())
	}
	_, err = AcquireLease(ctx, s, leaseOpts("db2", 200))
	var held *LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second writer: %v, want a LeaseHeldError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "host db1 pid 100 since ") {
		t.Fatalf("refusal does not name the holder: %s", msg)
	}
	time.Sleep(100 * time.Millisecond) // renewals go on
	if err := a.Check(); err != nil {
		t.Fatalf("holder lost its lease while renewing: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := AcquireLease(ctx, s, leaseOpts("db2", 200))
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer b.Release(ctx)
	if b.Epoch() <= a.Epoch() {
		t.Fatalf("epoch after release %d, not above %d", b.Epoch(), a.Epoch())
	}
}

// TestLeaseStandbyTakesOver: a standby takes over within Missed intervals
// (plus a poll) of the holder's last renewal, by its own clock, and the
// old holder, on its next renewal, learns it is deposed.
func TestLeaseStandbyTakesOver(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	a, err := AcquireLease(ctx, s, leaseOpts("db1", 100))
	if err != nil {
		t.Fatal(err)
	}
	o := leaseOpts("db2", 200)
	o.Standby = true
	got := make(chan *Lease, 1)
	go func() {
		b, err := AcquireLease(ctx, s, o)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("the standby took a lease that is being renewed")
	case <-time.After(300 * time.Millisecond):
	}
	a.abandon()
	stopped := time.Now()
	b := <-got
	took := time.Since(stopped)
	if bound := 3*40*time.Millisecond + 40*time.Millisecond + 200*time.Millisecond; took > bound {
		t.Fatalf("standby took over %s after the last renewal, over the bound %s", took, bound)
	}
	t.Logf("standby took over %s after the holder stopped renewing", took)
	if b.Epoch() <= a.Epoch() {
		t.Fatalf("standby epoch %d, not above %d", b.Epoch(), a.Epoch())
	}
	// The old holder stopped renewing more than Missed-1 intervals ago.
	if err := a.Check(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("deposed holder's Check: %v, want ErrLeaseLost", err)
	}
	b.Release(ctx)
}

// TestLeaseDeposedRenewal: a holder that was paused (not dead) and comes
// back finds its next generation taken and is deposed.
func TestLeaseDeposedRenewal(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	o := leaseOpts("db1", 100)
	o.Interval, o.Missed = time.Hour, 2 // renews only when the test says
	a, err := AcquireLease(ctx, s, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.abandon()
	// Another writer takes generation 2 (as a standby would).
	b := &Lease{s: s, o: leaseOpts("db2", 200), id: strings.Repeat("ab", 16), epoch: 2, since: time.Now()}
	if err := b.o.validate(); err != nil {
		t.Fatal(err)
	}
	if err := b.write(ctx, 2, false); err != nil {
		t.Fatal(err)
	}
	if err := a.write(ctx, 2, false); !errors.Is(err, repo.ErrObjectExists) {
		t.Fatalf("renewal over a taken generation: %v", err)
	}
}

// TestLeaseDeadLocalHolder: a holder on this host whose process is gone
// is taken over at once.
func TestLeaseDeadLocalHolder(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	a, err := AcquireLease(ctx, s, leaseOpts("db1", 100))
	if err != nil {
		t.Fatal(err)
	}
	a.abandon()
	o := leaseOpts("db1", 101)
	o.Alive = func(pid int) bool { return pid != 100 }
	start := time.Now()
	b, err := AcquireLease(ctx, s, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(ctx)
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Fatalf("took %s to take a dead local holder's lease", d)
	}
}

// TestLeaseConcurrentTakes: writers racing for a free lease on a local
// directory, and on MinIO through the decorated S3 store (conditional
// PUT): exactly one holds it.
func TestLeaseConcurrentTakes(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		s, err := local.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		concurrentTakes(t, s)
	})
	t.Run("s3", func(t *testing.T) {
		o := miniotest.Bucket(t, true) // versioned, with Object Lock
		o.Retention, o.Mode, o.Verify = time.Hour, s3.Governance, repo.VerifyObject
		s, err := s3.Open(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		concurrentTakes(t, retry.New(limit.New(s, 4), retry.Policy{}))
	})
}

func concurrentTakes(t *testing.T, s repo.Store) {
	ctx := t.Context()
	const n = 6
	type res struct {
		l   *Lease
		err error
	}
	out := make(chan res, n)
	for i := range n {
		go func() {
			l, err := AcquireLease(ctx, s, leaseOpts("db", 1000+i))
			out <- res{l, err}
		}()
	}
	var won []*Lease
	for range n {
		r := <-out
		switch {
		case r.err == nil:
			won = append(won, r.l)
		case !errors.Is(r.err, ErrLeaseHeld):
			t.Fatalf("a racing writer: %v", r.err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d writers hold the lease at once", len(won))
	}
	won[0].Release(ctx)
}

// TestDeposedWriterFenced: a writer that still believes it holds the lease
// (paused past its deposition, its check not yet failing) writes after a
// standby took over. Its segments that overlap the new writer's are
// fenced out: every restore reads the new writer's history, and check
// names the fenced segments.
func TestDeposedWriterFenced(t *testing.T) {
	ctx := t.Context()
	r := newRepo(t, mem.New(), repo.InitOptions{})
	evs := testEvents(60)
	zombie := func(epoch uint64) *Lease {
		return &Lease{o: LeaseOptions{Interval: time.Hour, Missed: 3}, epoch: epoch, start: time.Now(), lostCh: make(chan struct{})}
	}
	appendAll := func(w *LogWriter, evs []repo.Event) {
		t.Helper()
		for i := range evs {
			if err := w.Append(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	old, err := OpenLog(ctx, r, LogOptions{Stream: "s", Lease: zombie(1)})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(old, evs[:20])
	// The new writer (epoch 2) lists the log and continues at 21.
	nw, err := OpenLog(ctx, r, LogOptions{Stream: "s", Lease: zombie(2)})
	if err != nil {
		t.Fatal(err)
	}
	// The deposed writer seals 21-30 with other content at those positions
	// (a different input), then the new one seals 21-40.
	bad := append([]repo.Event(nil), evs[20:30]...)
	for i := range bad {
		bad[i].Value = []byte(`{"_id":"zombie"}`)
		bad[i].Key = []byte("zombie")
		bad[i].Op = repo.OpPut
	}
	appendAll(old, bad)
	appendAll(nw, evs[20:40])
	appendAll(old, evs[30:45]) // and goes on past the new writer
	if _, err := old.Close(); err != nil {
		t.Fatal(err)
	}
	appendAll(nw, evs[40:60])
	if _, err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	logs, err := index.ListLogs(ctx, r.Store(), "s")
	if err != nil {
		t.Fatal(err)
	}
	l := logs["s"]
	if len(l.Conflicts) != 0 || len(l.Fenced) != 2 {
		t.Fatalf("log: conflicts %v, fenced %d, want none and 2", l.Conflicts, len(l.Fenced))
	}
	sameEvents(t, readLog(t, r, "s"), evs)
	rep, err := Check(ctx, r, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("check found problems: %v", rep.Problems)
	}
	fenced := 0
	for _, n := range rep.Notes {
		if strings.Contains(n, "fenced") {
			fenced++
		}
	}
	if fenced != 2 {
		t.Fatalf("check notes %v, want the 2 fenced segments named", rep.Notes)
	}
}
