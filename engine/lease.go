package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Lease defaults (FORMAT.md §15, "One writer per stream").
const (
	DefaultLeaseInterval = 10 * time.Second
	DefaultLeaseMissed   = 3
)

// ErrLeaseHeld is wrapped by the *LeaseHeldError of a capture refused
// because another writer holds the stream's lease.
var ErrLeaseHeld = errors.New("another writer holds the stream's lease")

// ErrLeaseLost is wrapped by Lease.Check once the holder has lost its
// lease: another writer took it over, or renewals failed for long enough
// that a standby may have.
var ErrLeaseLost = errors.New("lease lost")

// LeaseHeldError names the holder of a lease a writer was refused.
type LeaseHeldError struct {
	Stream string
	Lease  *repo.Lease // nil when the newest generation is unreadable
	Gen    uint64
	Err    error // why the newest generation is unreadable
}

func (e *LeaseHeldError) Error() string {
	if e.Lease == nil {
		return fmt.Sprintf("stream %s: its lease's newest generation %d is unreadable (%v); with --standby a capture takes over once no new generation appears for %d intervals of %s",
			e.Stream, e.Gen, e.Err, DefaultLeaseMissed, DefaultLeaseInterval)
	}
	l := e.Lease
	return fmt.Sprintf("stream %s is being captured by %s; one writer per stream: run with --standby to take over once it stops renewing (after %d missed renewals, %s)",
		e.Stream, l.Describe(), l.Missed, time.Duration(l.Missed)*l.Interval())
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// LeaseOptions describe a writer taking a stream's lease. Stream, Host and
// PID are required; the caller gives Host and PID (and Alive) so that the
// engine reads no process state of its own.
type LeaseOptions struct {
	Stream string
	Host   string
	PID    int
	// Interval is how often the holder renews (default
	// DefaultLeaseInterval); Missed how many intervals without a renewal a
	// standby waits before it takes over (default DefaultLeaseMissed, at
	// least 2). The holder stops writing after Missed-1 intervals without a
	// successful renewal, one interval before any standby takes over.
	Interval time.Duration
	Missed   int
	// Standby waits for the holder to stop, instead of refusing with a
	// *LeaseHeldError.
	Standby bool
	// Alive reports whether process pid on this host runs. A lease held by
	// a process of this host that does not run is taken at once; nil
	// treats every holder as running.
	Alive func(pid int) bool
	// Logf reports waiting and taking over; nil for silence.
	Logf func(format string, args ...any)
	// Now is the wall clock stamped into leases for people; default
	// time.Now. Decisions never compare it with another host's.
	Now func() time.Time
}

func (o *LeaseOptions) validate() error {
	if err := repo.ValidStream(o.Stream); err != nil {
		return err
	}
	if o.Interval == 0 {
		o.Interval = DefaultLeaseInterval
	}
	if o.Missed == 0 {
		o.Missed = DefaultLeaseMissed
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	switch {
	case o.Interval < time.Millisecond || o.Interval > repo.MaxLeaseInterval:
		return fmt.Errorf("lease interval %s: want 1ms to %s", o.Interval, repo.MaxLeaseInterval)
	case o.Missed < 2 || o.Missed > repo.MaxLeaseMissed:
		return fmt.Errorf("lease missed renewals %d: want 2 to %d", o.Missed, repo.MaxLeaseMissed)
	case o.Host == "":
		return errors.New("lease: no host name")
	}
	return nil
}

// Lease is a stream's lease while this writer holds it: a goroutine renews
// it every interval until Release. Its methods are safe for concurrent use.
type Lease struct {
	s     repo.Store
	o     LeaseOptions
	id    string
	epoch uint64
	since time.Time
	// start is the monotonic origin of this process's lease clock; all
	// durations are measured as time.Since(start), which Go computes from
	// the monotonic clock, so a wall clock step changes nothing.
	start time.Time

	mu     sync.Mutex
	gen    uint64        // newest generation this writer wrote
	lastOK time.Duration // lease clock when the newest successful renewal began
	lost   error
	lostCh chan struct{}

	stop chan struct{}
	done chan struct{}
}

// AcquireLease takes the stream's lease (FORMAT.md §15): at once when the
// stream has none, when its holder released it, or when the holder is a
// process of this host that no longer runs (o.Alive); otherwise it
// refuses with a *LeaseHeldError naming the holder, or with o.Standby
// watches the lease and takes it once no new generation has appeared for
// Missed of the holder's intervals, measured on this process's monotonic
// clock. Every take is a conditional create of the next generation, so of
// several writers exactly one wins it; the others go on waiting (standby)
// or are refused. The writer's epoch is the generation it took.
func AcquireLease(ctx context.Context, s repo.Store, o LeaseOptions) (*Lease, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	var idb [16]byte
	rand.Read(idb[:])
	l := &Lease{s: s, o: o, id: hex.EncodeToString(idb[:]), start: time.Now(), lostCh: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	waited := false
	for {
		cur, gen, err := repo.NewestLease(ctx, s, o.Stream)
		if err != nil && gen == 0 {
			return nil, err // the listing failed
		}
		if cur == nil && gen > 0 && !o.Standby {
			return nil, &LeaseHeldError{Stream: o.Stream, Gen: gen, Err: err}
		}
		if cur != nil && !l.free(cur) {
			if !o.Standby {
				return nil, &LeaseHeldError{Stream: o.Stream, Lease: cur, Gen: gen}
			}
			if !waited {
				o.Logf("standby: %s is captured by %s; waiting for it to stop", o.Stream, cur.Describe())
				waited = true
			}
		}
		if gen > 0 && (cur == nil || !l.free(cur)) {
			if gen, err = l.watch(ctx, gen, cur); err != nil {
				return nil, err
			}
		}
		next := gen + 1
		l.epoch, l.since = next, o.Now().UTC()
		took := l.lastOKNow()
		err = l.write(ctx, next, false)
		if errors.Is(err, repo.ErrObjectExists) {
			continue // another writer took this generation first: look again
		}
		if err != nil {
			return nil, fmt.Errorf("take the lease of %s: %w", o.Stream, err)
		}
		l.gen, l.lastOK = next, took
		if cur != nil && !cur.Released {
			o.Logf("took over %s from %s at epoch %d", o.Stream, cur.Holder, next)
		}
		go l.renew()
		return l, nil
	}
}

// free reports whether cur may be taken at once.
func (l *Lease) free(cur *repo.Lease) bool {
	return cur.Released || cur.Holder.Host == l.o.Host && cur.Holder.PID != l.o.PID && l.o.Alive != nil && !l.o.Alive(cur.Holder.PID)
}

func (l *Lease) lastOKNow() time.Duration { return time.Since(l.start) }

// watch polls the lease until it may be taken: released, held by a dead
// process of this host, or no new generation seen for Missed intervals by
// this process's monotonic clock (the holder's declared interval; this
// writer's own when the newest generation is unreadable). It returns the
// newest generation seen. Listing failures are waited through: a take is
// a conditional create, so acting on a stale view is never unsafe.
func (l *Lease) watch(ctx context.Context, gen uint64, cur *repo.Lease) (uint64, error) {
	interval, missed := l.o.Interval, l.o.Missed
	if cur != nil {
		interval, missed = cur.Interval(), cur.Missed
	}
	lastChange := l.lastOKNow()
	for {
		poll := min(max(interval/4, 10*time.Millisecond), time.Second)
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, context.Cause(ctx)
		case <-t.C:
		}
		c, g, err := repo.NewestLease(ctx, l.s, l.o.Stream)
		if err != nil && g == 0 {
			if ctx.Err() != nil {
				return 0, context.Cause(ctx)
			}
		} else if g != gen {
			gen, lastChange = g, l.lastOKNow()
			if c != nil {
				cur, interval, missed = c, c.Interval(), c.Missed
			}
		}
		if c != nil && g == gen && l.free(c) {
			return gen, nil
		}
		if stale := l.lastOKNow() - lastChange; stale >= time.Duration(missed)*interval {
			l.o.Logf("standby: no renewal of %s's lease for %s (%d intervals of %s by this host's clock): taking over", l.o.Stream, stale.Round(time.Millisecond), missed, interval)
			return gen, nil
		}
	}
}

// write creates generation gen of the lease with this writer as holder.
func (l *Lease) write(ctx context.Context, gen uint64, released bool) error {
	now := l.o.Now().UTC()
	ls := &repo.Lease{Stream: l.o.Stream, Generation: gen, Epoch: l.epoch,
		Holder: repo.LeaseHolder{ID: l.id, Host: l.o.Host, PID: l.o.PID},
		Since:  l.since, Renewed: now, IntervalMS: l.o.Interval.Milliseconds(), Missed: l.o.Missed, Released: released}
	if ls.IntervalMS == 0 {
		ls.IntervalMS = 1
	}
	b, err := ls.Encode()
	if err != nil {
		return err
	}
	return repo.CreateObject(ctx, l.s, repo.LeaseName(l.o.Stream, gen), b)
}

// renew writes a new generation every interval until Release or loss.
func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		next := l.gen + 1
		lost := l.lost != nil
		l.mu.Unlock()
		if lost {
			return
		}
		began := l.lastOKNow()
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Interval*time.Duration(l.o.Missed-1))
		err := l.write(ctx, next, false)
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.gen, l.lastOK = next, began
			l.mu.Unlock()
			if _, server := repo.StoreAs[index.Cataloger](l.s); next > 2 && !server {
				// Superseded generations hold nothing anyone needs; a store
				// under retention keeps them. An index server removes them
				// itself (its backup tokens may not delete).
				_ = l.s.Delete(context.Background(), repo.LeaseName(l.o.Stream, next-2))
			}
		case errors.Is(err, repo.ErrObjectExists):
			who := "another writer"
			if b, gerr := l.s.Get(context.Background(), repo.LeaseName(l.o.Stream, next)); gerr == nil {
				if nl, derr := repo.DecodeLease(repo.LeaseName(l.o.Stream, next), b); derr == nil {
					who = nl.Holder.String()
				}
			}
			l.lose(fmt.Errorf("%w: %s took over stream %s at generation %d", ErrLeaseLost, who, l.o.Stream, next))
			return
		default:
			if l.Check() != nil {
				return
			}
			l.o.Logf("renewing the lease of %s failed (will retry): %v", l.o.Stream, err)
		}
	}
}

func (l *Lease) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
		close(l.lostCh)
	}
}

// Epoch returns the writer's fencing token: the generation it took the
// lease at. Every segment it writes carries it.
func (l *Lease) Epoch() uint64 { return l.epoch }

// Check returns nil while the lease is held, and an error wrapping
// ErrLeaseLost once another writer took it or no renewal has succeeded
// for Missed-1 intervals (a standby may take it one interval later). A
// writer checks before every write of the stream: what a deposed writer
// stores anyway is fenced out by its lower epoch.
func (l *Lease) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if since := l.lastOKNow() - l.lastOK; since >= time.Duration(l.o.Missed-1)*l.o.Interval {
		l.lost = fmt.Errorf("%w: stream %s: no renewal succeeded for %s (%d intervals of %s); a standby may have taken over", ErrLeaseLost, l.o.Stream, since.Round(time.Millisecond), l.o.Missed-1, l.o.Interval)
		close(l.lostCh)
		return l.lost
	}
	return nil
}

// Lost is closed when the lease is known to be lost (Check then fails).
func (l *Lease) Lost() <-chan struct{} { return l.lostCh }

// Release stops renewing and, unless the lease was lost, writes a released
// generation, so the next writer takes the lease at once. Call it after
// the writer's last write.
func (l *Lease) Release(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil
	default:
		close(l.stop)
	}
	<-l.done
	if l.Check() != nil {
		return nil
	}
	l.mu.Lock()
	next := l.gen + 1
	l.mu.Unlock()
	err := l.write(ctx, next, true)
	if errors.Is(err, repo.ErrObjectExists) {
		return nil // taken over meanwhile: nothing to give up
	}
	if err != nil {
		return fmt.Errorf("release the lease of %s: %w", l.o.Stream, err)
	}
	return nil
}
