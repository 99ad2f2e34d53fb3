package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/retry"
)

// CaptureOptions describe a continuous capture. Stream is required; the
// zero value of every other field is a valid default.
type CaptureOptions struct {
	Stream       string
	SegmentBytes int           // seal a segment at this many encoded bytes; default 16 MiB
	Interval     time.Duration // seal a segment when its first event is this old; default 10 s
	Host         string        // recorded in base snapshots
	// Logf receives what an operator should see: syncs, gaps, reconnects.
	Logf func(format string, args ...any)
	// AckEvery is how often REPLCONF ACK is sent; default 1 s.
	AckEvery time.Duration
	// Timeout drops a connection the master has sent nothing on for this
	// long (it pings every 10 s by default); default 60 s.
	Timeout time.Duration
	// MaxBackoff caps the wait between reconnection attempts; default 30 s.
	MaxBackoff time.Duration
	// Lease is the stream's lease the capture holds (engine.AcquireLease);
	// nil for none. Its segments carry its epoch, and it stops writing
	// once the lease is lost.
	Lease *engine.Lease
}

func (o *CaptureOptions) validate() error {
	if err := repo.ValidStream(o.Stream); err != nil {
		return err
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.AckEvery <= 0 {
		o.AckEvery = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// CaptureStats count what a capture did.
type CaptureStats struct {
	engine.LogStats
	Dropped    int64 // PING and REPLCONF commands not stored
	Bases      int   // base snapshots taken
	Reconnects int
}

// maxCommand is the most argument bytes a stored command may have: what
// is left of a log event's value after the event header.
const maxCommand = repo.MaxEventValue - 1 - replIDLen - 64

// cursor is where the capture stands in the master's stream.
type cursor struct {
	replID string // "" when a full sync is needed
	offset int64  // the last byte applied
	next   uint64 // position of the next stored command
	db     int    // the database selected at offset; -1 unknown
	// gapNext: the next full sync must skip a position (a command was lost).
	gapNext bool
}

// Capture makes the capture a replica of the instance at o and stores its
// command stream in the stream's log until ctx ends, continuing where the
// log (or its newest base) ends. It takes a base snapshot when the stream
// has none the log continues, and a new one after every full resync, which
// it records as a gap. A lost connection is retried with backoff; the
// first connection failing, and authentication or replication being
// refused, end the capture with an error. Everything received is sealed
// before it returns.
func Capture(ctx context.Context, r *repo.Repository, o Options, co CaptureOptions) (CaptureStats, error) {
	var st CaptureStats
	if err := co.validate(); err != nil {
		return st, err
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		if cat == nil {
			return st, err
		}
		co.Logf("warning: some manifests could not be read: %v", err)
	}
	w, err := engine.OpenLog(context.WithoutCancel(ctx), r, engine.LogOptions{
		Lease: co.Lease, Stream: co.Stream, SegmentBytes: co.SegmentBytes,
		OnGap: func(from, to uint64) {
			co.Logf("GAP in %s: positions %d-%d hold no command (a full resync); recorded in the catalog", co.Stream, from, to)
		},
	})
	if err != nil {
		return st, err
	}
	cur, err := resumePoint(ctx, r, cat, co.Stream, w.Next(), co.Logf)
	if err != nil {
		w.Close()
		return st, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sealDone := make(chan struct{})
	go func() {
		defer close(sealDone)
		t := time.NewTicker(min(co.Interval/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := w.SealOlder(co.Interval); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	c := &capture{r: r, o: o, co: co, w: w, cat: cat, cur: cur, st: &st}
	runErr := c.run(ctx)
	cancel(nil)
	<-sealDone
	ls, cerr := w.Close()
	st.LogStats = ls
	return st, errors.Join(runErr, cerr)
}

type capture struct {
	r   *repo.Repository
	o   Options
	co  CaptureOptions
	w   *engine.LogWriter
	cat *index.Catalog
	cur cursor
	st  *CaptureStats
	// synced: a sync has succeeded once, so connection errors are retried.
	synced bool
	lastT  int64
	// Commands ending at or before lateThrough were written on the master
	// before lateAt but reached the capture late: resent from the backlog
	// after a restart or reconnect, or buffered during a full sync. When
	// each happened is unknown, so they are stored time-uncertain (FORMAT.md
	// §15), stamped lateAt, after lateAfter (0: the log's previous event).
	lateThrough, lateAt, lateAfter int64
	// lateActive: commands are arriving late (up to lateThrough); q is the
	// connection markLate asks the master on, for the session's length.
	lateActive bool
	q          *Conn
}

// permanent marks errors a reconnect cannot cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (c *capture) run(ctx context.Context) error {
	backoff := retry.Backoff{Policy: retry.Policy{Base: min(time.Second, c.co.MaxBackoff), Max: c.co.MaxBackoff}}
	for {
		before := c.st.Bases + int(c.cur.next)
		err := c.session(ctx)
		if c.st.Bases+int(c.cur.next) != before {
			backoff.Reset() // the session made progress: retry promptly
		}
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
				return cause // the log writer failed
			}
			c.co.Logf("%s: stopping: sealing what arrived", c.o.name())
			return nil
		}
		var p permanent
		if errors.As(err, &p) || errors.Is(err, ErrAuth) || errors.Is(err, ErrRefused) || !c.synced {
			return err
		}
		c.st.Reconnects++
		wait := backoff.Next()
		c.co.Logf("%v; reconnecting in %s", err, wait.Round(time.Millisecond))
		retry.Sleep(ctx, wait) // an ended ctx is handled at the top of the loop
	}
}

// session runs one connection: sync, then the command stream until an error.
func (c *capture) session(ctx context.Context) error {
	conn, err := Dial(ctx, c.o)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := conn.Replicate(c.cur.replID, c.cur.offset)
	if err != nil {
		return err
	}
	c.lateAfter = 0
	if s.Full {
		if err := c.fullSync(ctx, conn, s); err != nil {
			return err
		}
		c.lateAfter = c.lastT // the base's time: what follows it happened after
	} else {
		c.co.Logf("%s: continuing the replication stream after offset %d (position %d next)", c.o.name(), s.Offset, c.cur.next)
		c.cur.replID = s.ReplID
	}
	defer func() {
		if c.q != nil {
			c.q.Close()
			c.q = nil
		}
	}()
	if err := c.markLate(ctx, true); err != nil {
		return err
	}
	c.synced = true
	return c.stream(ctx, conn)
}

// markLate asks the master how far its stream reaches now. Everything up to
// there was written before this moment, and may have been written long
// before it arrives (a restarted capture is sent again what it had not
// sealed; a reconnect gets what happened while it was away): those
// commands' arrival says nothing of their time. Once the capture has read
// up to there it asks again, since what was written while it caught up
// arrives late too; only an answer with nothing new makes the stream live.
func (c *capture) markLate(ctx context.Context, report bool) error {
	if c.q == nil {
		q, err := Dial(ctx, c.o)
		if err != nil {
			return err
		}
		c.q = q
	}
	info, err := c.q.Info("replication")
	at := time.Now().UnixNano()
	if err != nil {
		c.q.Close()
		c.q = nil
		return fmt.Errorf("%s: INFO replication (the capture needs +info to tell re-delivered commands from live ones): %w", c.o.name(), err)
	}
	head, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
	if err != nil {
		return fmt.Errorf("%s: INFO replication: master_repl_offset %q", c.o.name(), info["master_repl_offset"])
	}
	c.lateThrough, c.lateAt = head, at
	c.lateActive = head > c.cur.offset
	if !c.lateActive {
		c.lateAfter = 0
	}
	if c.lateActive && report {
		c.co.Logf("%s: offsets %d-%d were written before this connection and arrive late: stored as time-uncertain (positions exact, times bounded)", c.o.name(), c.cur.offset+1, head)
	}
	return nil
}

// fullSync stores the RDB of a full sync as a base snapshot. When the
// capture asked to continue (or lost a command), the commands between the
// log's end and the RDB never arrive: the base takes the next position,
// which no command will hold, so the log records a gap there and plans
// from older bases stop before it.
func (c *capture) fullSync(ctx context.Context, conn *Conn, s Sync) error {
	arrived := time.Now()
	rdb, err := conn.RDB()
	if err != nil {
		return err
	}
	next, pos := c.cur.next, c.cur.next-1
	if c.cur.replID != "" || c.cur.gapNext || next > 1 {
		pos, next = c.cur.next, c.cur.next+1
		why := "the master's backlog no longer holds offset " + strconv.FormatInt(c.cur.offset+1, 10)
		if c.cur.replID == "" {
			why = "the log has no base snapshot it continues"
		}
		if c.cur.gapNext {
			why = "a command could not be stored"
		}
		c.co.Logf("%s: full resync (%s): position %d is a gap; the new RDB becomes the base at position %d", c.o.name(), why, pos, pos)
	}
	// A damaged manifest only loses a parent candidate (engine.Parent).
	parent, _ := engine.Parent(ctx, c.r, c.co.Stream)
	t := time.Unix(0, max(arrived.UnixNano(), c.lastT)).UTC()
	hdr := AppendBaseHeader(nil, Base{ReplID: s.ReplID, Offset: s.Offset})
	rdbIn, prover := proveRDB(c.r, rdb)
	proved := false
	id, snap, err := engine.Backup(ctx, c.r, io.MultiReader(bytes.NewReader(hdr), rdbIn), engine.BackupOptions{
		Stream: c.co.Stream, Format: engine.FormatRaw, Time: t, Position: &pos, Parent: parent, Host: c.co.Host,
		Describe: func(snap *repo.Snapshot) {
			prover.finish(snap, c.co.Logf)
			proved = true
		},
	})
	if !proved {
		prover.abort()
	}
	if err != nil {
		return fmt.Errorf("%s: storing the base snapshot: %w", c.o.name(), err)
	}
	c.cat.Snapshots = append(c.cat.Snapshots, index.SnapshotRef{ID: id, Snapshot: snap})
	c.st.Bases++
	c.co.Logf("%s: base snapshot %s at position %d: replication %s offset %d, %d bytes of RDB", c.o.name(), id.Short(), pos, s.ReplID, s.Offset, snap.Size-int64(len(hdr)))
	c.cur = cursor{replID: s.ReplID, offset: s.Offset, next: next, db: -1}
	c.lastT = t.UnixNano()
	// A diskless master streams commands only once the replica acks the RDB.
	return conn.Ack(s.Offset)
}

// stream stores commands until the connection fails or ctx ends.
func (c *capture) stream(ctx context.Context, conn *Conn) error {
	var offset atomic.Int64
	offset.Store(c.cur.offset)
	acks := &durableAcks{w: c.w}
	stop := make(chan struct{})
	defer close(stop)
	var stalled atomic.Bool
	go func() {
		t := time.NewTicker(c.co.AckEvery)
		defer t.Stop()
		last, since := offset.Load(), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			o := offset.Load()
			if o != last {
				last, since = o, time.Now()
			} else if time.Since(since) > c.co.Timeout {
				stalled.Store(true)
				conn.Close()
				return
			}
			conn.Ack(acks.offset(o))
		}
	}()
	for {
		if c.lateActive && c.cur.offset >= c.lateThrough {
			if err := c.markLate(ctx, false); err != nil {
				return err
			}
		}
		argv, n, err := conn.ReadCommand(maxCommand)
		start := c.cur.offset
		end := start + n
		if err != nil {
			var tl *TooLargeError
			if errors.As(err, &tl) {
				c.cur.offset = end
				offset.Store(end)
				c.cur.gapNext, c.cur.replID = true, ""
				return fmt.Errorf("%s: offsets %d-%d: %w; a full resync takes a new base", c.o.name(), start+1, end, err)
			}
			if stalled.Load() {
				return fmt.Errorf("%s: the master sent nothing for %s", c.o.name(), c.co.Timeout)
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("%s: replication stream at offset %d: %w", c.o.name(), start, err)
		}
		c.cur.offset = end
		if len(argv) == 0 {
			offset.Store(end)
			continue
		}
		switch {
		case is(argv[0], "PING"):
			c.st.Dropped++
			offset.Store(end)
			continue
		case is(argv[0], "REPLCONF"):
			c.st.Dropped++
			offset.Store(end)
			if len(argv) > 1 && is(argv[1], "GETACK") {
				conn.Ack(acks.offset(end))
			}
			continue
		case is(argv[0], "SELECT") && len(argv) == 2:
			if db, ok := parseInt(argv[1]); ok && db >= 0 && db <= maxDB {
				c.cur.db = int(db)
			}
		}
		cmd := Command{ReplID: c.cur.replID, Start: start, End: end, DB: c.cur.db, Argv: argv}
		late := c.lateActive && end <= c.lateThrough
		if late {
			c.lastT = max(c.lateAt, c.lastT)
		} else {
			c.lastT = max(time.Now().UnixNano(), c.lastT)
		}
		e := NewEvent(c.cur.next, c.lastT, &cmd)
		acks.add(c.cur.next, start)
		appendStart := time.Now()
		if late {
			err = c.w.AppendUncertain(&e, c.lateAfter)
		} else {
			err = c.w.Append(&e)
		}
		if err != nil {
			return permanent{fmt.Errorf("log %s: %w", c.co.Stream, err)}
		}
		c.cur.next++
		offset.Store(end)
		if !c.lateActive && time.Since(appendStart) > appendStall {
			// The append waited on a seal: what the master sent meanwhile
			// sat in the socket, and its arrival says nothing of its time.
			if err := c.markLate(ctx, false); err != nil {
				return err
			}
		}
	}
}

// appendStall is how long an append may take before the capture treats
// what arrives next as late: appends take microseconds unless a seal holds
// them up.
const appendStall = 2 * time.Millisecond

// durableAcks turns the offset the capture has read into the offset it
// may acknowledge: no further than the end of the newest durable command
// (its segment stored), so a write the master counts as replicated (WAIT)
// survives a crash of the capture, and is never re-delivered into a
// time-uncertain span.
type durableAcks struct {
	w       *engine.LogWriter
	mu      sync.Mutex
	pending []pendingAck // commands appended and not yet durable, in order
}

type pendingAck struct {
	pos   uint64
	start int64 // the stream offset just before the command
}

func (a *durableAcks) add(pos uint64, start int64) {
	a.mu.Lock()
	a.pending = append(a.pending, pendingAck{pos, start})
	a.mu.Unlock()
}

// offset returns what to acknowledge given that read bytes were read.
// When every appended command is durable, all that was read can be
// acknowledged: what follows the last command is PINGs and REPLCONFs.
func (a *durableAcks) offset(read int64) int64 {
	d := a.w.Durable()
	a.mu.Lock()
	defer a.mu.Unlock()
	i := 0
	for i < len(a.pending) && a.pending[i].pos <= d {
		i++
	}
	a.pending = a.pending[i:]
	if len(a.pending) == 0 {
		return read
	}
	return a.pending[0].start // every byte before the oldest command not yet durable
}

// resumePoint finds where a capture continues: after the newest base that
// is ahead of the log (a full sync whose commands were not sealed yet), or
// after the log's last stored command, or, with neither, at a full sync.
func resumePoint(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, logNext uint64, logf func(string, ...any)) (cursor, error) {
	last := uint64(0)
	if logNext > 0 {
		last = logNext - 1
	}
	var best *index.SnapshotRef
	for _, s := range cat.Stream(stream) {
		if s.Position == nil || s.Format != engine.FormatRaw || *s.Position < last || *s.Position == last && logNext > 0 {
			continue
		}
		if best == nil || *s.Position >= *best.Position {
			best = &s
		}
	}
	if best != nil {
		b, _, err := ReadBase(ctx, r, *best)
		if err != nil {
			return cursor{}, fmt.Errorf("stream %s: the newest base is unreadable: %w", stream, err)
		}
		return cursor{replID: b.ReplID, offset: b.Offset, next: *best.Position + 1, db: -1}, nil
	}
	if logNext == 0 {
		return cursor{next: 1, db: -1}, nil
	}
	cmd, err := lastCommand(ctx, r, stream)
	if err != nil {
		return cursor{}, err
	}
	if _, err := cat.Plan(stream, index.Target{Position: last, ByPos: true}); err != nil {
		logf("stream %s: no base snapshot continues the log through position %d: taking one", stream, last)
		return cursor{next: logNext, db: -1}, nil
	}
	return cursor{replID: cmd.ReplID, offset: cmd.End, next: logNext, db: cmd.DB}, nil
}

// lastCommand reads the newest stored command of a stream's log.
func lastCommand(ctx context.Context, r *repo.Repository, stream string) (Command, error) {
	logs, err := index.ListLogs(ctx, r.Store(), stream)
	if err != nil {
		return Command{}, err
	}
	k, ok := logs[stream].Newest()
	if !ok {
		return Command{}, fmt.Errorf("stream %s: the log has no segment", stream)
	}
	seg, err := r.LoadSegment(ctx, k)
	if err != nil {
		return Command{}, err
	}
	var val []byte
	err = engine.ReadSegment(ctx, r, k, seg, func(e *repo.Event) error {
		if e.Seq == seg.Last {
			val = append([]byte(nil), e.Value...)
		}
		return nil
	})
	if err != nil {
		return Command{}, err
	}
	cmd, err := DecodeCommandEvent(val)
	if err != nil {
		return Command{}, fmt.Errorf("stream %s: the last event of %s is not a redis command (is this a redis stream?): %w", stream, k.Name(), err)
	}
	return cmd, nil
}
