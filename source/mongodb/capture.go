package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	// Log receives status lines (reconnects, gaps, new bases); may be nil.
	Logf func(format string, a ...any)
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
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// CaptureStats say what a capture did.
type CaptureStats struct {
	engine.LogStats
	Bases      int       // base snapshots taken
	Reconnects int       // cursors opened again after an error
	Last       Timestamp // the newest oplog entry read
}

// errResync asks the capture loop for a new base: the oplog rolled over
// past the resume point, or an entry is too large for a log event.
type errResync struct{ reason string }

func (e *errResync) Error() string { return e.reason }

var errFatal = errors.New("capture cannot go on")

// errRefresh ends a cursor that is healthy, to open a new one.
var errRefresh = errors.New("cursor refresh")

// Capture tails the oplog with a tailable await cursor and stores every
// relevant entry in the stream's log, one event per entry, until ctx ends;
// then it seals what arrived and returns nil. It continues after the
// stream's newest stored entry or base (a restarted capture stores nothing
// twice and loses nothing the oplog still holds), and takes a base first
// when the stream has neither. When the oplog no longer holds its resume
// point it records a gap and takes a new base. Events carry the entries'
// own wall times, so entries read again after a restart keep their times.
func Capture(ctx context.Context, cli *mongo.Client, cfg Config, r *repo.Repository, o CaptureOptions) (CaptureStats, error) {
	var st CaptureStats
	if err := o.validate(); err != nil {
		return st, err
	}
	fullImage, err := IsFerretDB(ctx, cli)
	if err != nil {
		return st, classify(cfg, err)
	}
	w, err := engine.OpenLog(context.WithoutCancel(ctx), r, engine.LogOptions{
		Lease: o.Lease, Stream: o.Stream, SegmentBytes: o.SegmentBytes,
		OnGap: func(from, to uint64) {
			o.Logf("GAP in %s: positions %d-%d are not in the log (recorded; restores across it are refused)", o.Stream, from, to)
		},
	})
	if err != nil {
		return st, err
	}
	c := &capture{cli: cli, cfg: cfg, r: r, o: o, w: w, st: &st, fullImage: fullImage}
	err = c.run(ctx)
	ls, cerr := w.Close()
	st.LogStats = ls
	if err == nil || ctx.Err() != nil && !errors.Is(err, errFatal) {
		err = cerr
	}
	return st, err
}

type capture struct {
	cli       *mongo.Client
	cfg       Config
	r         *repo.Repository
	o         CaptureOptions
	w         *engine.LogWriter
	st        *CaptureStats
	fullImage bool
	next      uint64 // the position the next stored entry gets
	lastT     int64  // newest event time stored, so times never go back
}

func (c *capture) run(ctx context.Context) error {
	from, err := c.resumePoint(ctx)
	if err != nil {
		return err
	}
	backoff := source.ReconnectBackoff()
	for {
		nf, err := c.tail(ctx, from)
		if nf.After(from) {
			backoff.Reset() // progress was made: the next failure starts over
		}
		from = nf
		if ctx.Err() != nil {
			return nil
		}
		var rs *errResync
		switch {
		case errors.Is(err, errRefresh):
			continue
		case errors.As(err, &rs):
			c.o.Logf("%s: %s", c.o.Stream, rs.reason)
			if from, err = c.takeBase(ctx, rs.reason); err != nil {
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
		c.o.Logf("%s: tailing the oplog after %s interrupted: %v; again in %s", c.o.Stream, from, err, wait.Round(time.Millisecond))
		if err := c.pause(ctx, wait); err != nil {
			return err
		}
	}
}

// pause waits d (or until ctx ends) and meanwhile seals segments that
// are due, so what arrived before an outage is stored on time.
func (c *capture) pause(ctx context.Context, d time.Duration) error {
	tick := time.NewTicker(min(c.o.Interval/4, time.Second))
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case <-tick.C:
			if err := c.w.SealOlder(c.o.Interval); err != nil {
				return fmt.Errorf("%w: %w", errFatal, err)
			}
		}
	}
}

// resumePoint finds where the stream ends: its newest base when that is
// past the log's end, else the log's newest event, else a new base.
func (c *capture) resumePoint(ctx context.Context) (Timestamp, error) {
	logs, err := index.ListLogs(ctx, c.r.Store(), c.o.Stream)
	if err != nil {
		return Timestamp{}, err
	}
	var head repo.SegmentKey
	var hasLog bool
	if l := logs[c.o.Stream]; l != nil {
		if head, hasLog = l.Newest(); hasLog {
			c.lastT = head.LastTime
		}
	}
	c.next = c.w.Next()
	base, ok, err := c.newestBase(ctx)
	if err != nil {
		return Timestamp{}, err
	}
	if ok && (!hasLog || *base.Position >= c.next) {
		tr, err := ReadTrailer(ctx, c.r, base)
		if err != nil {
			return Timestamp{}, err
		}
		c.next = *base.Position + 1
		c.lastT = max(c.lastT, base.Time.UnixNano())
		c.o.Logf("%s continues after base %s (position %d, oplog %s)", c.o.Stream, base.ID.Short(), *base.Position, tr.EndTS())
		return tr.EndTS(), nil
	}
	if hasLog {
		ts, err := lastEntry(ctx, c.r, head)
		if err != nil {
			return Timestamp{}, err
		}
		c.o.Logf("%s continues at position %d, after oplog entry %s", c.o.Stream, c.next, ts)
		return ts, nil
	}
	return c.takeBase(ctx, "the stream has no snapshot yet")
}

// lastEntry returns the oplog timestamp of the last event of a segment.
func lastEntry(ctx context.Context, r *repo.Repository, k repo.SegmentKey) (Timestamp, error) {
	seg, err := r.LoadSegment(ctx, k)
	if err != nil {
		return Timestamp{}, err
	}
	var ts Timestamp
	err = engine.ReadSegment(ctx, r, k, seg, func(ev *repo.Event) error {
		if ev.Seq != k.Last {
			return nil
		}
		e, _, err := DecodeOplogEvent(ev)
		if err != nil {
			return err
		}
		ts = e.TS
		return nil
	})
	if err == nil && ts.IsZero() {
		err = fmt.Errorf("%w: %s: no event at its last position", ErrCorrupt, k.Name())
	}
	return ts, err
}

// newestBase returns the stream's snapshot with the highest position.
func (c *capture) newestBase(ctx context.Context) (index.SnapshotRef, bool, error) {
	cat, err := index.LoadCatalog(ctx, c.r)
	if cat == nil {
		return index.SnapshotRef{}, false, err
	}
	if err != nil {
		c.o.Logf("warning: %v", err)
	}
	var best index.SnapshotRef
	found := false
	for _, s := range cat.Stream(c.o.Stream) {
		if s.Position != nil && s.Format == engine.FormatNDJSON && (!found || *s.Position > *best.Position ||
			*s.Position == *best.Position && s.Time.After(best.Time)) {
			best, found = s, true
		}
	}
	return best, found, nil
}

// ReadTrailer reads a base and returns its trailer, checking the whole base.
func ReadTrailer(ctx context.Context, r *repo.Repository, base index.SnapshotRef) (Trailer, error) {
	var tr Trailer
	err := readBase(ctx, r, base, func(br *BaseReader) error {
		for {
			_, err := br.Next()
			if err == io.EOF {
				tr = br.Trailer()
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	return tr, err
}

// readBase streams a base snapshot into fn.
func readBase(ctx context.Context, r *repo.Repository, base index.SnapshotRef, fn func(*BaseReader) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, base, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
		done <- err
	}()
	br, err := NewBaseReader(pr)
	if err == nil {
		err = fn(br)
	}
	pr.CloseWithError(errors.New("restore stopped"))
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("base %s: %w", base.ID.Short(), err)
	}
	return nil
}

// takeBase stores a base and returns the oplog timestamp to tail after.
// The base takes the next free position and skips it: a stream with a log
// shows a gap there, so no plan mixes the old log with the new base.
func (c *capture) takeBase(ctx context.Context, why string) (Timestamp, error) {
	backoff := source.ReconnectBackoff()
	for {
		// A damaged manifest only loses a parent candidate (engine.Parent).
		parent, _ := engine.Parent(ctx, c.r, c.o.Stream)
		pos := c.next
		if cat, _ := index.LoadStreamCatalog(ctx, c.r, c.o.Stream); cat != nil {
			for _, s := range cat.Stream(c.o.Stream) {
				if s.Position != nil && *s.Position >= pos {
					pos = *s.Position + 1
				}
			}
		}
		res, err := Backup(ctx, c.cli, c.cfg, c.r, BackupOptions{Stream: c.o.Stream, Parent: parent, Host: c.o.Host, Position: &pos})
		if err == nil {
			c.st.Bases++
			c.next = pos + 1
			c.o.Logf("%s: new base snapshot %s at position %d, oplog %s (%d collections, %d documents): %s",
				c.o.Stream, res.ID.Short(), pos, res.Trailer.EndTS(), res.Trailer.Collections, res.Trailer.Documents, why)
			if res.Unproven != nil {
				c.o.Logf("%s: warning: base snapshot %s records no proof (it is unproven): %v", c.o.Stream, res.ID.Short(), res.Unproven)
			}
			c.lastT = max(c.lastT, res.Snapshot.Time.UnixNano())
			return res.Trailer.EndTS(), nil
		}
		if errors.Is(err, ErrAuth) || errors.Is(err, ErrNoOplog) || ctx.Err() != nil {
			return Timestamp{}, fmt.Errorf("%w: base snapshot: %w", errFatal, err)
		}
		wait := backoff.Next()
		c.o.Logf("%s: base snapshot failed: %v; trying again in %s", c.o.Stream, err, wait.Round(time.Millisecond))
		if !retry.Sleep(ctx, wait) {
			return Timestamp{}, ctx.Err()
		}
	}
}

// settle is how old a FerretDB oplog entry must be before it is read: its
// writers commit oplog entries out of timestamp order, so an entry is read
// only once every entry timestamped before it has had time to commit.
const settle = time.Second

// poll reads FerretDB's oplog after from in timestamp order, entries at
// least settle old, until an error.
func (c *capture) poll(ctx context.Context, from Timestamp) (Timestamp, error) {
	lastSeal := time.Now()
	late := newLateCheck(from)
	for {
		if !from.IsZero() {
			first, err := FirstTimestamp(ctx, c.cli)
			if err != nil {
				return from, err
			}
			if first.After(from) {
				return from, &errResync{fmt.Sprintf("the oplog rolled over past %s (it now starts at %s): a gap, and a new base", from, first)}
			}
		}
		const limit = 5000
		cur, err := oplogColl(c.cli).Find(ctx, settledAfter(from, time.Now().Add(-settle)),
			options.Find().SetSort(bson.D{{Key: "ts", Value: 1}}).SetLimit(limit).SetBatchSize(1000))
		if err != nil {
			return from, err
		}
		n := 0
		for cur.Next(ctx) {
			e, err := ParseEntry(cur.Current)
			if err != nil {
				cur.Close(ctx)
				return from, fmt.Errorf("%w: %w", errFatal, err)
			}
			if !e.TS.After(from) {
				cur.Close(ctx)
				return from, fmt.Errorf("%w: oplog entry %s after %s: the oplog is not in timestamp order", errFatal, e.TS, from)
			}
			if err := c.store(e); err != nil {
				cur.Close(ctx)
				return from, err
			}
			from = e.TS
			c.st.Last = from
			n++
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return from, err
		}
		if err := late.check(ctx, c.cli, from, int64(n)); err != nil {
			return from, err
		}
		if time.Since(lastSeal) >= c.o.Interval/4 {
			lastSeal = time.Now()
			if err := c.w.SealOlder(c.o.Interval); err != nil {
				return from, fmt.Errorf("%w: %w", errFatal, err)
			}
		}
		if n < limit {
			select {
			case <-ctx.Done():
				return from, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// settledAfter selects the entries after from written before cutoff.
func settledAfter(from Timestamp, cutoff time.Time) bson.D {
	return bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: from.bson()}}},
		{Key: "wall", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(cutoff)}}}}
}

// tail reads the oplog after from until an error, and returns the
// timestamp to continue after.
func (c *capture) tail(ctx context.Context, from Timestamp) (Timestamp, error) {
	if c.fullImage {
		return c.poll(ctx, from)
	}
	filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: from.bson()}}}}
	const await = time.Second
	// A first batch of one: the resume entry itself; later batches are
	// large. (Servers may close a tailable cursor whose first batch is
	// smaller than asked.)
	fo := options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}).SetBatchSize(1).
		SetCursorType(options.TailableAwait).SetMaxAwaitTime(await)
	cur, err := oplogColl(c.cli).Find(ctx, filter, fo)
	if err != nil {
		if errors.Is(classify(c.cfg, err), ErrAuth) {
			return from, fmt.Errorf("%w: %w", errFatal, classify(c.cfg, err))
		}
		return from, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	cur.SetBatchSize(1000)
	// The oplog must still hold from itself: the first entry read proves
	// that nothing between from and it was lost to a rollover.
	proven := from.IsZero()
	if !proven {
		first, err := FirstTimestamp(ctx, c.cli)
		if err != nil {
			return from, err
		}
		if first.After(from) {
			return from, &errResync{fmt.Sprintf("the oplog rolled over past %s (it now starts at %s): a gap, and a new base", from, first)}
		}
	}
	lastSeal, opened, read := time.Now(), time.Now(), 0
	for {
		// FerretDB re-reads the oplog from the cursor's filter at every
		// wait: a cursor is opened again now and then, from further on.
		if read >= 5000 || time.Since(opened) > time.Minute {
			return from, errRefresh
		}
		if cur.TryNext(ctx) {
			e, err := ParseEntry(cur.Current)
			if err != nil {
				return from, fmt.Errorf("%w: %w", errFatal, err)
			}
			if !proven {
				if e.TS != from {
					return from, &errResync{fmt.Sprintf("the oplog no longer holds entry %s (the first after it is %s): a gap, and a new base", from, e.TS)}
				}
				proven = true
				continue
			}
			if !e.TS.After(from) {
				return from, fmt.Errorf("%w: oplog entry %s after %s: the oplog is not in timestamp order", errFatal, e.TS, from)
			}
			if err := c.store(e); err != nil {
				return from, err
			}
			from = e.TS
			c.st.Last = from
			read++
		} else {
			if err := cur.Err(); err != nil {
				return from, err
			}
			if cur.ID() == 0 {
				return from, errors.New("the server closed the tailable cursor")
			}
			if ctx.Err() != nil {
				return from, ctx.Err()
			}
		}
		if time.Since(lastSeal) >= min(c.o.Interval/4, await) {
			lastSeal = time.Now()
			if err := c.w.SealOlder(c.o.Interval); err != nil {
				return from, fmt.Errorf("%w: %w", errFatal, err)
			}
		}
	}
}

// store appends one entry as the event at the next position.
func (c *capture) store(e *Entry) error {
	if !c.cfg.relevant(e) {
		return nil
	}
	t := max(e.Time().UnixNano(), c.lastT)
	ev, err := OplogEvent(c.next, t, e, c.fullImage)
	if err != nil {
		return &errResync{fmt.Sprintf("%v: a gap, and a new base", err)}
	}
	if err := c.w.Append(&ev); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	c.lastT = t
	c.next++
	return nil
}
