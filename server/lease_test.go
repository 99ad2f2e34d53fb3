package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// TestLeaseThroughServer: leases through the index server (PROTOCOL.md §4):
// of racing captures exactly one takes the stream, the others are refused
// naming it; only a token that may back up the stream writes its lease;
// the server removes superseded generations itself; and a capture with
// the lease stores segments carrying its epoch, which the server's
// catalog plans from.
func TestLeaseThroughServer(t *testing.T) {
	f := newFixture(t)
	f.start()
	ctx := t.Context()
	o := func(host string) engine.LeaseOptions {
		return engine.LeaseOptions{Stream: "shop/users", Host: host, PID: 1, Interval: 100 * time.Millisecond, Missed: 5}
	}
	const n = 4
	type res struct {
		l   *engine.Lease
		err error
	}
	out := make(chan res, n)
	for i := range n {
		st := f.client("shopBackup").Store()
		go func() {
			l, err := engine.AcquireLease(ctx, st, o("host"+string(rune('a'+i))))
			out <- res{l, err}
		}()
	}
	var holder *engine.Lease
	for range n {
		r := <-out
		switch {
		case r.err == nil && holder != nil:
			t.Fatal("two captures took one stream's lease through the server")
		case r.err == nil:
			holder = r.l
		case !errors.Is(r.err, engine.ErrLeaseHeld) || !strings.Contains(r.err.Error(), "is being captured by host host"):
			t.Fatalf("a racing capture: %v", r.err)
		}
	}
	if holder == nil {
		t.Fatal("no capture took the lease")
	}
	for _, who := range []string{"reader", "shopRestore"} {
		lo := o("x")
		lo.Stream = "shop/other" // free: the write itself is refused
		_, err := engine.AcquireLease(ctx, f.client(who).Store(), lo)
		if status(err) != http.StatusForbidden {
			t.Fatalf("%s took or saw a lease: %v, want 403", who, err)
		}
	}
	time.Sleep(600 * time.Millisecond) // about six renewals
	if err := holder.Check(); err != nil {
		t.Fatalf("holder lost its lease: %v", err)
	}
	var gens []string
	f.st.List(ctx, repo.StreamLeasePrefix("shop/users"), func(oi repo.ObjectInfo) error {
		gens = append(gens, oi.Name)
		return nil
	})
	if len(gens) < 1 || len(gens) > 3 {
		t.Fatalf("the server kept %d lease generations, want at most 3: %v", len(gens), gens)
	}

	// A capture holding the lease: its segments carry its epoch.
	r := f.open("shopBackup")
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "shop/users", Lease: holder})
	if err != nil {
		t.Fatal(err)
	}
	t0 := f.clock.Now().Add(-time.Hour)
	for p := uint64(1); p <= 20; p++ {
		e := repo.Event{Seq: p, Time: t0.Add(time.Duration(p) * time.Second).UnixNano(), Op: repo.OpPut, Key: []byte("k"), Value: []byte("v")}
		if err := w.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadStreamCatalog(ctx, f.open("shopRestore"), "shop/users")
	if err != nil {
		t.Fatal(err)
	}
	l := cat.Logs["shop/users"]
	if l == nil || len(l.Segments) != 1 || l.Segments[0].Epoch != holder.Epoch() {
		t.Fatalf("the server's catalog: %+v, want one segment at epoch %d", l, holder.Epoch())
	}
	// Released: the next capture takes the lease at once, at a higher epoch.
	next, err := engine.AcquireLease(ctx, f.client("backupAll").Store(), o("later"))
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer next.Release(ctx)
	if next.Epoch() <= holder.Epoch() {
		t.Fatalf("epoch %d after %d", next.Epoch(), holder.Epoch())
	}
}
