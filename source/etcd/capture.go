package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/retry"
	"github.com/strata-backup/strata/source"
)

// CaptureOptions describe a continuous capture. Stream is required.
type CaptureOptions struct {
	Stream       string
	SegmentBytes int           // seal a segment at this size; default 16 MiB
	Interval     time.Duration // seal a segment when its first event is this old; default 10 s
	Host         string
	// Stall is how long the watch may stay silent, despite progress
	// requests, before it is torn down and opened again; default 30 s.
	Stall time.Duration
	// Log receives status lines (reconnects, gaps, new bases); may be nil.
	Logf func(format string, a ...any)
	Now  func() time.Time
	// Lease is the stream's lease the capture holds (engine.AcquireLease);
	// nil for none. Its segments carry its epoch, and it stops writing
	// once the lease is lost.
	Lease *engine.Lease
}

// validate checks the stream and fills the defaults of zero fields, as
// every options struct of the project does (STYLE.md: "zero value is a
// valid default, checked by validate()").
func (o *CaptureOptions) validate() error {
	if err := repo.ValidStream(o.Stream); err != nil {
		return err
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Stall <= 0 {
		o.Stall = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// CaptureStats say what a capture did.
type CaptureStats struct {
	engine.LogStats
	Bases      int   // base snapshots taken
	Reconnects int   // watches opened again after an error
	Last       int64 // the newest revision stored
}

// errResync asks the capture loop for a new base: the start revision was
// compacted, or a revision is too large for a log event.
type errResync struct{ reason string }

func (e *errResync) Error() string { return e.reason }

// Capture watches the whole keyspace and stores every revision in the
// stream's log, one event per revision, until ctx ends; then it seals what
// arrived and returns nil. It continues where the stream's log ends (a
// restarted capture stores nothing twice), and takes a base snapshot first
// when the stream has none to continue from. When its start revision has
// been compacted it records a gap and takes a new base at the current
// revision. Connection errors are retried with backoff; it gives up on
// refused credentials and on a failing repository.
func Capture(ctx context.Context, cli *clientv3.Client, cfg Config, r *repo.Repository, o CaptureOptions) (CaptureStats, error) {
	var st CaptureStats
	if err := o.validate(); err != nil {
		return st, err
	}
	// Sealed segments must be stored even when ctx ends the capture.
	w, err := engine.OpenLog(context.WithoutCancel(ctx), r, engine.LogOptions{
		Lease: o.Lease, Stream: o.Stream, SegmentBytes: o.SegmentBytes,
		OnGap: func(from, to uint64) {
			o.Logf("GAP in %s: revisions %d-%d are not in the log (recorded; restores across it are refused)", o.Stream, from, to)
		},
	})
	if err != nil {
		return st, err
	}
	c := &capture{cli: cli, cfg: cfg, r: r, o: o, w: w, st: &st}
	err = c.run(ctx)
	ls, cerr := w.Close()
	st.LogStats = ls
	if err == nil || ctx.Err() != nil && !errors.Is(err, errFatal) {
		err = cerr
	}
	return st, err
}

var errFatal = errors.New("capture cannot go on")

type capture struct {
	cli   *clientv3.Client
	cfg   Config
	r     *repo.Repository
	o     CaptureOptions
	w     *engine.LogWriter
	st    *CaptureStats
	lastT int64 // newest event time stored, so times never go back
	// Revisions up to lateThrough were committed before lateAt, when the
	// watch was opened, and are replayed late (after a restart, a reconnect
	// or a new base): when each happened is unknown, so they are stored
	// time-uncertain (FORMAT.md §15), after lateAfter (0: the log's
	// previous event; a new base's time after takeBase).
	lateThrough, lateAt, lateAfter int64
}

func (c *capture) run(ctx context.Context) error {
	logs, err := index.ListLogs(ctx, c.r.Store(), c.o.Stream)
	if err != nil {
		return err
	}
	if l := logs[c.o.Stream]; l != nil {
		if head, ok := l.Newest(); ok {
			c.lastT = head.LastTime
		}
	}
	start := int64(c.w.Next())
	if start > 0 {
		c.o.Logf("%s continues at revision %d", c.o.Stream, start)
	} else {
		base, ok, err := c.newestBase(ctx)
		if err != nil {
			return err
		}
		if ok {
			start = base + 1
			c.o.Logf("%s has no log yet: watching from revision %d, after its newest snapshot", c.o.Stream, start)
		} else if start, err = c.takeBase(ctx, "the stream has no snapshot yet"); err != nil {
			return err
		}
	}
	backoff := source.ReconnectBackoff()
	for {
		next, err := c.watch(ctx, start)
		if next > start {
			backoff.Reset() // progress was made: the next failure starts over
		}
		start = next
		if ctx.Err() != nil {
			return nil
		}
		var rs *errResync
		switch {
		case errors.As(err, &rs):
			c.o.Logf("%s: %s", c.o.Stream, rs.reason)
			if start, err = c.takeBase(ctx, rs.reason); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		case errors.Is(err, errFatal):
			return err
		}
		c.st.Reconnects++
		wait := backoff.Next()
		c.o.Logf("%s: watch from revision %d interrupted: %v; watching again in %s", c.o.Stream, start, err, wait.Round(time.Millisecond))
		if !retry.Sleep(ctx, wait) {
			return nil
		}
	}
}

// newestBase returns the highest revision of the stream's snapshots.
func (c *capture) newestBase(ctx context.Context) (int64, bool, error) {
	cat, err := index.LoadCatalog(ctx, c.r)
	if cat == nil {
		return 0, false, err
	}
	if err != nil {
		c.o.Logf("warning: %v", err)
	}
	var best int64
	found := false
	for _, s := range cat.Stream(c.o.Stream) {
		if s.Position != nil && (!found || int64(*s.Position) > best) {
			best, found = int64(*s.Position), true
		}
	}
	return best, found, nil
}

// takeBase stores a snapshot at the current revision and returns the
// revision to watch from, the one after it. Connection errors are retried
// until ctx ends.
func (c *capture) takeBase(ctx context.Context, why string) (int64, error) {
	backoff := source.ReconnectBackoff()
	for {
		// A damaged manifest only loses a parent candidate (engine.Parent).
		parent, _ := engine.Parent(ctx, c.r, c.o.Stream)
		res, err := Backup(ctx, c.cli, c.cfg, c.r, BackupOptions{Stream: c.o.Stream, Parent: parent, Host: c.o.Host, Now: c.o.Now})
		if err == nil {
			c.st.Bases++
			c.o.Logf("%s: new base snapshot %s at revision %d (%d keys): %s", c.o.Stream, res.ID.Short(), res.Revision, res.Keys, why)
			// The base's time bounds the times of the events after it.
			c.lastT = max(c.lastT, res.Snapshot.Time.UnixNano())
			c.lateAfter = c.lastT
			return res.Revision + 1, nil
		}
		if errors.Is(err, ErrAuth) || ctx.Err() != nil {
			return 0, fmt.Errorf("%w: base snapshot: %w", errFatal, err)
		}
		wait := backoff.Next()
		c.o.Logf("%s: base snapshot failed: %v; trying again in %s", c.o.Stream, err, wait.Round(time.Millisecond))
		if !retry.Sleep(ctx, wait) {
			return 0, ctx.Err()
		}
	}
}

// watch runs one watch from revision start and returns the revision to
// watch from next, with why the watch ended.
func (c *capture) watch(ctx context.Context, start int64) (int64, error) {
	// WithRequireLeader ends the watch when its member loses the leader,
	// instead of it waiting on a partitioned member forever.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	if err := c.markLate(wctx, start, true); err != nil {
		return start, err
	}
	wch := stamped(wctx, c.cli.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify()), c.o.Now)
	tick := time.NewTicker(min(c.o.Interval/4, time.Second))
	defer tick.Stop()
	heard := c.o.Now()
	asked := time.Time{}
	next := start
	for {
		select {
		case <-ctx.Done():
			return next, ctx.Err()
		case <-tick.C:
			if err := c.w.SealOlder(c.o.Interval); err != nil {
				return next, fmt.Errorf("%w: %w", errFatal, err)
			}
			now := c.o.Now()
			silent := now.Sub(heard)
			if silent >= c.o.Stall {
				return next, fmt.Errorf("nothing heard from etcd for %s, not even a progress notification", silent.Round(time.Second))
			}
			// Ask for a progress notification when the watch is quiet, so a
			// dead connection is told apart from an idle cluster.
			if silent >= c.o.Stall/3 && now.Sub(asked) >= c.o.Stall/3 {
				asked = now
				c.cli.RequestProgress(wctx)
			}
		case sr, ok := <-wch:
			if !ok {
				return next, errors.New("watch closed")
			}
			resp := sr.WatchResponse
			heard = c.o.Now()
			if sr.afterStall && len(resp.Events) > 0 {
				// The responses before this one were not taken as they
				// came (sealing was slow): its arrival time says nothing.
				if err := c.markLate(wctx, next, false); err != nil {
					return next, err
				}
			}
			if resp.CompactRevision != 0 {
				return next, &errResync{fmt.Sprintf("revision %d was compacted away (the cluster keeps revisions from %d on): a gap, and a new base", next, resp.CompactRevision)}
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrGRPCPermissionDenied) {
					return next, fmt.Errorf("%w: %w", errFatal, rpcErr(c.cfg, err))
				}
				return next, err
			}
			n, err := c.store(wctx, resp.Events, next, sr.at)
			next = n
			if err != nil {
				return next, err
			}
			if resp.IsProgressNotify() && resp.Header.Revision >= next {
				// Every revision up to the header's has been sent.
				c.st.Last = max(c.st.Last, next-1)
			}
		}
	}
}

// markLate reads the cluster's current revision before the watch opens:
// every revision from start up to it was committed before now, perhaps long
// before (while the capture was down or disconnected), so the time the
// watch delivers it says nothing of when it happened.
//
// Once the capture has stored everything up to that revision it asks again
// (catchUp), since what was committed while it replayed arrives late too;
// only when an answer shows nothing new is the watch live.
func (c *capture) markLate(ctx context.Context, start int64, report bool) error {
	qctx, cancel := context.WithTimeout(ctx, c.o.Stall)
	defer cancel()
	resp, err := c.cli.Get(qctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		if errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrGRPCPermissionDenied) {
			return fmt.Errorf("%w: %w", errFatal, rpcErr(c.cfg, err))
		}
		return fmt.Errorf("reading the current revision: %w", err)
	}
	c.lateThrough, c.lateAt = resp.Header.Revision, max(c.o.Now().UnixNano(), c.lastT)
	if c.lateThrough >= start && report {
		c.o.Logf("%s: revisions %d-%d were committed before this watch and arrive late: stored as time-uncertain (revisions exact, times bounded)", c.o.Stream, start, c.lateThrough)
	} else if c.lateThrough < start {
		c.lateAfter = 0
	}
	return nil
}

// store appends the events of one watch response, one log event per
// revision, and returns the revision expected next. A watch response never
// splits a revision (without WithFragment), so each revision is complete.
func (c *capture) store(ctx context.Context, evs []*clientv3.Event, next int64, arrived time.Time) (int64, error) {
	for i := 0; i < len(evs); {
		rev := &Revision{Revision: evs[i].Kv.ModRevision}
		j := i
		for ; j < len(evs) && evs[j].Kv.ModRevision == rev.Revision; j++ {
			kv := evs[j].Kv
			ch := Change{Op: ChangeDelete, Key: kv.Key}
			if evs[j].Type == mvccpb.PUT {
				ch = Change{Op: ChangePut, Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, Version: kv.Version, Lease: kv.Lease}
			}
			rev.Changes = append(rev.Changes, ch)
		}
		i = j
		if rev.Revision < next {
			continue // already stored by an earlier watch
		}
		late := rev.Revision <= c.lateThrough
		now := max(arrived.UnixNano(), c.lastT)
		if late {
			now = max(c.lateAt, c.lastT)
		}
		e, err := RevisionEvent(rev, now)
		if err != nil {
			return next, &errResync{fmt.Sprintf("%v: a gap, and a new base", err)}
		}
		if late {
			err = c.w.AppendUncertain(&e, c.lateAfter)
		} else {
			c.lateAfter = 0
			err = c.w.Append(&e)
		}
		if err != nil {
			return next, fmt.Errorf("%w: %w", errFatal, err)
		}
		c.lastT = now
		next = rev.Revision + 1
		c.st.Last = rev.Revision
		if late && rev.Revision == c.lateThrough {
			// Caught up with the last answer: what was committed since
			// arrives late as well, until an answer shows nothing new.
			if err := c.markLate(ctx, next, false); err != nil {
				return next, err
			}
		}
	}
	return next, nil
}

// stampedResponse is a watch response with the time it arrived.
type stampedResponse struct {
	clientv3.WatchResponse
	at time.Time
	// afterStall: the queue was full before it, so it may have waited for
	// the capture instead of being stamped as it arrived.
	afterStall bool
}

// stamped takes watch responses as they arrive and stamps each with its
// arrival time, so the time a revision is stored under does not grow while
// the capture waits on a seal. A queue of a few thousand responses absorbs
// slow seals; once it has been full, the next response is marked afterStall.
func stamped(ctx context.Context, in clientv3.WatchChan, now func() time.Time) <-chan stampedResponse {
	out := make(chan stampedResponse, 4096)
	go func() {
		defer close(out)
		blocked := false
		for resp := range in {
			// After a blocked send, this response may have waited in the
			// client's queue: its arrival time is not known.
			sr := stampedResponse{WatchResponse: resp, at: now(), afterStall: blocked}
			select {
			case out <- sr:
				blocked = false
				continue
			default:
			}
			select {
			case out <- sr:
				blocked = true
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
