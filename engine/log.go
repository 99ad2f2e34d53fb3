package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"golang.org/x/sync/errgroup"
)

// LogOptions describe a change-log capture. Stream is required.
type LogOptions struct {
	Stream string
	// SegmentBytes seals a segment once its encoded events reach this size;
	// default 16 MiB. (Sealing by time is the caller's: SealOlder.)
	SegmentBytes int
	FrameSize    int               // encoded events compressed together; default 1 MiB
	Level        zstd.EncoderLevel // default zstd.SpeedFastest
	Workers      int               // compression workers; default GOMAXPROCS
	// OnGap is called when an event's position jumps past the next expected
	// one; the capture records the gap and goes on.
	OnGap func(from, to uint64)
	Now   func() time.Time // the sealing clock; default time.Now
	// VerifyReplay compares an event at a position the log already holds
	// with the stored one, and refuses it (ErrReplayMismatch) when its time,
	// op, key or value differ, instead of skipping it as already stored.
	// For sources whose events carry their own times (NDJSON); a source
	// whose re-delivered events are dated on arrival must not set it.
	VerifyReplay bool
	// Lease, when set, is the stream's lease this writer holds
	// (AcquireLease, taken before OpenLog lists the log): every segment
	// carries its epoch, and none is written once Check fails.
	Lease *Lease
	// Progress, when set, counts the events taken as they arrive; nil
	// takes the one of OpenLog's context (WithLogProgress), if any.
	Progress *LogProgress
}

// LogStats count what a LogWriter did. Read them after Close.
type LogStats struct {
	Appended, Skipped int64 // events taken, and events already stored and skipped
	// Stored counts the events in the segments stored: Appended less those
	// a failure (a full disk) kept from being stored.
	Stored       int64
	Segments     int64
	Gaps         int64
	EncodedBytes int64 // event bytes before compression
	StoredBytes  int64 // sealed pack bytes, before parity
}

// NotStored says, for a summary, how many events were taken but not
// stored (the writer failed after them, a full disk say); "" when none.
func (st LogStats) NotStored() string {
	if n := st.Appended - st.Stored; n > 0 {
		return fmt.Sprintf("; %d events received after them are NOT stored", n)
	}
	return ""
}

// LogWriter seals a stream's change events into log segments. Events must
// come in commit order: positions counting up by one (a jump is a gap) and
// times never decreasing. Events at positions already stored are skipped,
// so a capture restarted from any earlier point stores nothing twice.
// Its methods are safe for concurrent use (a timer may call SealOlder
// while another goroutine appends); segments are stored in order by one
// background sealer while the next fills.
type LogWriter struct {
	r *repo.Repository
	o LogOptions

	// mu guards the open segment and the appender's counters. It may be
	// held while waiting for the sealer, so the sealer never takes it.
	mu     sync.Mutex
	closed bool
	next   uint64 // position expected next; 0 before the first event of a new log
	lastT  int64  // time of the newest event taken
	// inSpan: the newest event taken is time-uncertain; spanFrom is the
	// span's lower bound, which every segment of the span carries as its
	// first time, so each one's name states the whole uncertainty.
	inSpan   bool
	spanFrom int64
	cur      *pendingSegment
	stats    LogStats // Appended, Skipped, Gaps
	pending  chan *pendingSegment
	done     chan struct{}

	// resMu guards what the sealer reports.
	resMu  sync.Mutex
	failed error
	stored LogStats // Stored, Segments, EncodedBytes, StoredBytes

	// prev is the manifest ID of the newest stored segment; only the sealer touches it.
	prev *repo.ID
	// durable is the position of the newest event whose segment is stored;
	// guarded by resMu.
	durable uint64

	// For VerifyReplay: ctx reads stored segments; segs are the stream's
	// segments by position (those listed at open, then those the sealer
	// stored; guarded by resMu); replay caches the events of the segment
	// replayed events were last compared with (guarded by mu).
	ctx    context.Context
	segs   []repo.SegmentKey
	replay replayCache

	// bufs holds segment buffers the sealer is done with, for the next
	// segments: grown by append from nothing, a 16 MiB buffer is copied
	// ~40 times and its fresh pages faulted in again each time, which cost
	// a capture a third of its CPU.
	bufs chan []byte
}

// replayCache holds the events of one segment, stored or open, by position.
type replayCache struct {
	seg    *pendingSegment // the open segment the events are from, or nil
	key    repo.SegmentKey // else the stored segment
	first  uint64
	events []repo.Event
}

func (c *replayCache) holds(seq uint64) bool {
	return len(c.events) > 0 && seq >= c.first && seq-c.first < uint64(len(c.events))
}

type pendingSegment struct {
	buf    []byte
	frames []frameRun // boundaries in buf
	first  uint64
	last   uint64
	t0, t1 int64
	opened time.Time // when its first event arrived, for SealOlder
	gap    string
	// uncertain: the events were re-delivered and their times are only
	// bounded (AppendUncertain); t0 is then the bound below them.
	uncertain bool
	flushed   chan struct{} // closed when stored or failed; only for Flush markers
}

type frameRun struct {
	end    int // offset in buf
	first  uint64
	events int
}

// OpenLog opens a stream's log for appending. It lists the stream's
// segments to find where the log ends, so it continues a log that an
// earlier capture (perhaps killed) left.
func OpenLog(ctx context.Context, r *repo.Repository, o LogOptions) (*LogWriter, error) {
	if err := repo.ValidStream(o.Stream); err != nil {
		return nil, err
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	o.SegmentBytes = min(o.SegmentBytes, 256<<20) // packs stay far below their 1 GiB limit
	if o.FrameSize <= 0 {
		o.FrameSize = 1 << 20
	}
	o.FrameSize = min(o.FrameSize, repo.MaxFrameRaw/2, o.SegmentBytes)
	if o.Level == 0 {
		o.Level = zstd.SpeedFastest
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = logProgressFrom(ctx)
	}
	logs, err := index.ListLogs(ctx, r.Store(), o.Stream)
	if err != nil {
		return nil, err
	}
	w := &LogWriter{r: r, o: o, ctx: ctx, pending: make(chan *pendingSegment, 1), done: make(chan struct{}), bufs: make(chan []byte, 2)}
	if l := logs[o.Stream]; l != nil {
		w.segs = slices.Clone(l.Segments)
		if head, ok := l.Newest(); ok {
			w.next, w.lastT = head.Last+1, head.LastTime
			w.prev = &head.ID
			w.durable = head.Last
			// A capture killed inside a span: the span goes on from where it began.
			w.inSpan, w.spanFrom = head.Uncertain, head.FirstTime
		}
	}
	go w.sealer(ctx)
	return w, nil
}

// Next returns the position the log expects next (0 for an empty log).
func (w *LogWriter) Next() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// ErrEventOrder is returned for an event whose time is earlier than the
// event before it: the log would no longer be ordered by time.
var ErrEventOrder = errors.New("event out of order")

// ErrReplayMismatch is returned for an event at a position the log already
// holds whose content differs from the stored event's (LogOptions.VerifyReplay):
// the source is not replaying the history the log recorded.
var ErrReplayMismatch = errors.New("replayed event differs from the stored one")

// ErrLogClosed is returned by Append after Close.
var ErrLogClosed = errors.New("log writer closed")

// Durable returns the position of the newest event that is stored (its
// segment and manifest written), 0 when none is. A capture acknowledges to
// its source only what is durable, so a source that waits for
// acknowledgements (Redis WAIT) never counts a write a crash can lose.
func (w *LogWriter) Durable() uint64 {
	w.resMu.Lock()
	defer w.resMu.Unlock()
	return w.durable
}

// Append takes one event. Key and Value are copied.
func (w *LogWriter) Append(e *repo.Event) error {
	err := w.append(e, false, 0)
	if err == nil {
		w.o.Progress.took(e)
	}
	return err
}

// AppendUncertain takes one event whose time is not known: it was
// re-delivered after a capture restart or reconnect by a source that keeps
// no time of its own (Redis, etcd), so all that is known is that it
// happened after the log's previous event and no later than e.Time, which
// the caller sets to an instant it knows the event had already happened
// by. Such events go into time-uncertain segments (FORMAT.md §15); plans
// refuse instants inside their span, and positions stay exact.
//
// after, when later than the log's previous event, is a better lower bound
// the caller knows (the time of a base snapshot the events follow).
func (w *LogWriter) AppendUncertain(e *repo.Event, after int64) error {
	err := w.append(e, true, after)
	if err == nil {
		w.o.Progress.took(e)
	}
	return err
}

func (w *LogWriter) append(e *repo.Event, uncertain bool, after int64) error {
	if err := w.err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return ErrLogClosed
	case e.Seq == 0:
		return fmt.Errorf("%w: position 0 (positions count from 1)", ErrEventOrder)
	case e.Time < 0:
		return fmt.Errorf("%w: event %d has a time before 1970", ErrEventOrder, e.Seq)
	case w.next != 0 && e.Seq < w.next:
		if w.o.VerifyReplay {
			if err := w.verifyReplayLocked(e); err != nil {
				return err
			}
		}
		w.stats.Skipped++
		return nil
	case e.Time < w.lastT:
		return fmt.Errorf("%w: event %d at %s is earlier than the event before it (%s)", ErrEventOrder, e.Seq,
			index.FormatTime(time.Unix(0, e.Time)), index.FormatTime(time.Unix(0, w.lastT)))
	}
	if w.next != 0 && e.Seq > w.next {
		from, to := w.next, e.Seq-1
		w.sealLocked()
		w.stats.Gaps++
		w.cur = w.newSegment()
		w.cur.gap = fmt.Sprintf("positions %d-%d never reached the capture", from, to)
		if w.o.OnGap != nil {
			w.o.OnGap(from, to)
		}
	}
	if w.cur != nil && len(w.cur.frames) > 0 && w.cur.uncertain != uncertain {
		// Certain and uncertain events never share a segment: the name
		// says which a segment holds.
		w.sealLocked()
	}
	if w.cur == nil {
		w.cur = w.newSegment()
	}
	c := w.cur
	if len(c.frames) == 0 {
		c.first, c.t0, c.uncertain = e.Seq, e.Time, uncertain
		if uncertain {
			if !w.inSpan && (w.next != 0 || after > 0) {
				// The span starts where the log stood: the event may have
				// happened any time after the event before it.
				w.inSpan, w.spanFrom = true, min(max(w.lastT, after), e.Time)
			}
			if w.inSpan {
				c.t0 = w.spanFrom
			}
		}
		c.frames = append(c.frames, frameRun{first: e.Seq})
	} else if len(c.buf)-frameStart(c) >= w.o.FrameSize {
		c.frames = append(c.frames, frameRun{first: e.Seq})
	}
	c.buf = repo.AppendEvent(c.buf, e)
	c.frames[len(c.frames)-1].events++
	c.frames[len(c.frames)-1].end = len(c.buf)
	c.last, c.t1 = e.Seq, e.Time
	w.next, w.lastT = e.Seq+1, e.Time
	w.inSpan = uncertain && w.inSpan
	w.stats.Appended++
	if len(c.buf) >= w.o.SegmentBytes {
		w.sealLocked()
	}
	return nil
}

// verifyReplayLocked compares e, at a position below w.next, with the event
// the log holds there: in the open segment, or in a stored one (a segment
// still being sealed is waited for). Positions inside a recorded gap hold
// nothing to compare. w.mu is held.
func (w *LogWriter) verifyReplayLocked(e *repo.Event) error {
	c := &w.replay
	if !c.holds(e.Seq) || c.seg != nil && c.seg != w.cur {
		c.events = nil
		if cur := w.cur; cur != nil && len(cur.frames) > 0 && e.Seq >= cur.first && e.Seq <= cur.last {
			if err := c.fill(w.o.Stream, cur); err != nil {
				return err
			}
		} else {
			if e.Seq > w.Durable() {
				// In a segment handed to the sealer: wait until it is stored.
				// The sealer never takes w.mu, so waiting here is safe.
				marker := &pendingSegment{flushed: make(chan struct{})}
				w.pending <- marker
				<-marker.flushed
				if err := w.err(); err != nil {
					return err
				}
			}
			w.resMu.Lock()
			i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].First > e.Seq }) - 1
			var k repo.SegmentKey
			ok := i >= 0 && w.segs[i].Last >= e.Seq
			if ok {
				k = w.segs[i]
			}
			w.resMu.Unlock()
			if !ok {
				return nil // a gap: nothing stored to compare with
			}
			seg, err := w.r.LoadSegment(w.ctx, k)
			if err != nil {
				return fmt.Errorf("compare replayed event %d with the stored one: %w", e.Seq, err)
			}
			var events []repo.Event
			err = ReadSegment(w.ctx, w.r, k, seg, func(se *repo.Event) error {
				events = append(events, repo.Event{Seq: se.Seq, Time: se.Time, Op: se.Op, Key: bytes.Clone(se.Key), Value: bytes.Clone(se.Value)})
				return nil
			})
			if err != nil {
				return fmt.Errorf("compare replayed event %d with the stored one: %w", e.Seq, err)
			}
			*c = replayCache{key: k, first: k.First, events: events}
		}
		if !c.holds(e.Seq) {
			return nil
		}
	}
	s := &c.events[e.Seq-c.first]
	var diff string
	switch {
	case s.Time != e.Time:
		diff = fmt.Sprintf("time %s, stored %s", index.FormatTime(time.Unix(0, e.Time)), index.FormatTime(time.Unix(0, s.Time)))
	case s.Op != e.Op:
		diff = "op differs"
	case !bytes.Equal(s.Key, e.Key):
		diff = fmt.Sprintf("key %.60q, stored %.60q", e.Key, s.Key)
	case !bytes.Equal(s.Value, e.Value):
		diff = "document differs"
	default:
		return nil
	}
	where := "the open segment"
	if c.seg == nil {
		where = "segment " + c.key.Name()
	}
	return fmt.Errorf("%w: position %d (%s) in %s; the source is not replaying the history this log holds", ErrReplayMismatch, e.Seq, diff, where)
}

// fill decodes an open segment's events into the cache.
func (c *replayCache) fill(stream string, seg *pendingSegment) error {
	var events []repo.Event
	err := repo.DecodeEvents("open segment of "+stream, seg.buf, func(e *repo.Event) error {
		events = append(events, repo.Event{Seq: e.Seq, Time: e.Time, Op: e.Op, Key: bytes.Clone(e.Key), Value: bytes.Clone(e.Value)})
		return nil
	})
	if err != nil {
		return err
	}
	*c = replayCache{seg: seg, first: seg.first, events: events}
	return nil
}

func frameStart(c *pendingSegment) int {
	if len(c.frames) < 2 {
		return 0
	}
	return c.frames[len(c.frames)-2].end
}

func (w *LogWriter) newSegment() *pendingSegment {
	return &pendingSegment{opened: w.o.Now(), buf: w.segmentBuffer()}
}

// segmentBuffer returns an empty buffer for a segment's events, one the
// sealer gave back or a new one sized for a whole segment (at most 16 MiB
// up front, past which append grows it). The capacity reserves address
// space; pages are touched only as events arrive.
func (w *LogWriter) segmentBuffer() []byte {
	select {
	case b := <-w.bufs:
		return b[:0]
	default:
		return make([]byte, 0, min(w.o.SegmentBytes, 16<<20)+64<<10)
	}
}

// recycle gives a stored (or failed) segment's buffer back; nothing refers
// to it any more (frames are sealed copies, the replay cache clones).
func (w *LogWriter) recycle(c *pendingSegment) {
	b := c.buf
	c.buf = nil
	select {
	case w.bufs <- b:
	default:
	}
}

// SealOlder seals the open segment if its first event arrived more than
// age ago: the bound on how much a crash can lose (the RPO).
func (w *LogWriter) SealOlder(age time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil && len(w.cur.frames) > 0 && w.o.Now().Sub(w.cur.opened) >= age {
		w.sealLocked()
	}
	return w.err()
}

func (w *LogWriter) err() error {
	w.resMu.Lock()
	defer w.resMu.Unlock()
	return w.failed
}

// sealLocked hands the open segment to the sealer. It blocks while the
// sealer is busy with the previous one, which bounds memory to two segments.
func (w *LogWriter) sealLocked() {
	if w.closed {
		return
	}
	c := w.cur
	w.cur = nil
	if c == nil || len(c.frames) == 0 {
		if c != nil && c.gap != "" {
			w.cur = c // keep the gap for the next event
		}
		return
	}
	w.pending <- c
}

// Flush seals the open segment and waits until every sealed segment is
// stored. It returns the first error the sealer met.
func (w *LogWriter) Flush() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrLogClosed
	}
	w.sealLocked()
	marker := &pendingSegment{flushed: make(chan struct{})}
	w.pending <- marker
	w.mu.Unlock()
	<-marker.flushed
	return w.err()
}

// Close flushes and stops the sealer. The writer is unusable afterwards.
func (w *LogWriter) Close() (LogStats, error) {
	err := w.Flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.pending)
		<-w.done
	}
	st := w.stats
	w.resMu.Lock()
	defer w.resMu.Unlock()
	st.Stored, st.Segments, st.EncodedBytes, st.StoredBytes = w.stored.Stored, w.stored.Segments, w.stored.EncodedBytes, w.stored.StoredBytes
	return st, err
}

// sealer stores segments in order, chaining each to the one before.
func (w *LogWriter) sealer(ctx context.Context) {
	defer close(w.done)
	for c := range w.pending {
		if c.flushed != nil {
			close(c.flushed)
			continue
		}
		if w.err() != nil {
			continue
		}
		key, stored, err := w.store(ctx, c)
		w.resMu.Lock()
		if err != nil {
			w.failed = fmt.Errorf("log %s: segment %d-%d: %w", w.o.Stream, c.first, c.last, err)
		} else {
			w.stored.Segments++
			w.stored.Stored += int64(c.last - c.first + 1)
			w.stored.EncodedBytes += int64(len(c.buf))
			w.stored.StoredBytes += stored
			w.prev = &key.ID
			w.durable = c.last
			if w.o.VerifyReplay {
				w.segs = append(w.segs, key)
			}
		}
		w.resMu.Unlock()
		w.recycle(c)
	}
}

// store seals one segment: frames compressed in parallel, one pack, then
// the manifest. The manifest goes last, so a crash leaves at worst a pack
// nothing references; the restarted capture rewrites the segment.
func (w *LogWriter) store(ctx context.Context, c *pendingSegment) (repo.SegmentKey, int64, error) {
	var epoch uint64
	if l := w.o.Lease; l != nil {
		if err := l.Check(); err != nil {
			return repo.SegmentKey{}, 0, err
		}
		epoch = l.Epoch()
	}
	frames := make([]repo.Frame, len(c.frames))
	var g errgroup.Group
	g.SetLimit(w.o.Workers)
	start := 0
	for i, f := range c.frames {
		blob := c.buf[start:f.end]
		start = f.end
		g.Go(func() error {
			info := repo.BlobInfo{Type: repo.LogBlob, ID: w.r.BlobID(repo.LogBlob, blob), Len: uint32(len(blob))}
			var err error
			frames[i], err = w.r.SealFrame([]repo.BlobInfo{info}, [][]byte{blob}, w.o.Level)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return repo.SegmentKey{}, 0, err
	}
	pi, _, err := w.r.StoreFrames(ctx, frames)
	if err != nil {
		return repo.SegmentKey{}, 0, err
	}
	seg := &repo.Segment{
		Stream: w.o.Stream, First: c.first, Last: c.last,
		FirstTime: time.Unix(0, c.t0).UTC(), LastTime: time.Unix(0, c.t1).UTC(),
		Prev: w.prev, Gap: c.gap, TimeUncertain: c.uncertain, Created: w.o.Now().UTC(),
		Pack: repo.SegmentPack{ID: pi.ID, Length: pi.Length, K: pi.K, M: pi.M},
	}
	for _, f := range c.frames {
		seg.Frames = append(seg.Frames, repo.SegmentRun{First: f.first, Events: f.events})
	}
	seg.Epoch = epoch
	seg.KeyFilter = segmentKeyFilter(c)
	if l := w.o.Lease; l != nil {
		// Checked again after the pack, which may have taken a while: a
		// pack without a manifest is harmless, a manifest is not.
		if err := l.Check(); err != nil {
			return repo.SegmentKey{}, 0, err
		}
	}
	key, err := w.r.SaveSegment(ctx, seg)
	return key, int64(pi.Length), err
}

// ReadSegment reads a segment's events in order and calls fn for each. It
// verifies everything a restore relies on: the pack against its ID, each
// frame's authentication and blob ID, and that the events are exactly
// positions First..Last with times inside the manifest's range, never
// decreasing. fn must not keep Key or Value.
func ReadSegment(ctx context.Context, r *repo.Repository, k repo.SegmentKey, seg *repo.Segment, fn func(*repo.Event) error) error {
	pack, _, err := r.ReadPack(ctx, seg.Pack.Info())
	if err != nil {
		return fmt.Errorf("segment %s: %w", k.Name(), err)
	}
	return segmentEvents(r, k, seg, pack, fn)
}

// segmentEvents is ReadSegment on a pack already read and verified.
func segmentEvents(r *repo.Repository, k repo.SegmentKey, seg *repo.Segment, pack []byte, fn func(*repo.Event) error) error {
	name := k.Name()
	frames, err := r.ParseTrailer("pack "+seg.Pack.ID.String(), pack)
	if err != nil {
		return err
	}
	if len(frames) != len(seg.Frames) {
		return &repo.CorruptError{Object: name, Offset: -1, Reason: fmt.Sprintf("pack has %d frames, the manifest %d", len(frames), len(seg.Frames))}
	}
	next, lastT := seg.First, seg.FirstTime.UnixNano()
	maxT := seg.LastTime.UnixNano()
	for i, f := range frames {
		if len(f.Blobs) != 1 || f.Blobs[0].Type != repo.LogBlob {
			return &repo.CorruptError{Object: name, Offset: int64(f.Offset), Reason: "frame does not hold one log blob"}
		}
		blob, err := r.OpenFrame(pack[f.Offset:f.Offset+f.Length], int(f.Blobs[0].Len))
		if err != nil {
			return &repo.CorruptError{Object: name, Offset: int64(f.Offset), Reason: "frame fails authentication or decoding: " + err.Error()}
		}
		if r.BlobID(repo.LogBlob, blob) != f.Blobs[0].ID {
			return &repo.CorruptError{Object: name, Offset: int64(f.Offset), Reason: "log blob does not match its ID"}
		}
		n := 0
		err = repo.DecodeEvents(name, blob, func(e *repo.Event) error {
			if e.Seq != next || e.Time < lastT || e.Time > maxT {
				return &repo.CorruptError{Object: name, Offset: int64(f.Offset), Reason: fmt.Sprintf("event %d out of order (want position %d, time within the segment's)", e.Seq, next)}
			}
			next, lastT = next+1, e.Time
			n++
			return fn(e)
		})
		if err != nil {
			return err
		}
		if n != seg.Frames[i].Events {
			return &repo.CorruptError{Object: name, Offset: int64(f.Offset), Reason: fmt.Sprintf("frame holds %d events, the manifest says %d", n, seg.Frames[i].Events)}
		}
	}
	if next != seg.Last+1 {
		return &repo.CorruptError{Object: name, Offset: -1, Reason: fmt.Sprintf("events end at %d, the manifest says %d", next-1, seg.Last)}
	}
	return nil
}

// EachPlanEvent calls fn, in order, for every event a restore of p applies:
// those of segs (from LoadPlanSegments) at positions from p.From on, which
// must follow on one by one, up to the target; reading stops at the first
// event past it. fn gets the segment holding the event and must not keep
// Key or Value. A target position the log does not reach is refused,
// wrapping index.ErrNotRestorable.
func EachPlanEvent(ctx context.Context, r *repo.Repository, p *index.Plan, segs []*repo.Segment, fn func(k repo.SegmentKey, e *repo.Event) error) error {
	want := p.From
	errStop := errors.New("past the target")
	for i, s := range segs {
		k := p.Segments[i]
		err := ReadSegment(ctx, r, k, s, func(e *repo.Event) error {
			if e.Seq < p.From {
				return nil
			}
			if !p.Applies(e.Seq, e.Time) {
				return errStop
			}
			if e.Seq != want {
				return &repo.CorruptError{Object: k.Name(), Offset: -1,
					Reason: fmt.Sprintf("position %d where %d was expected", e.Seq, want),
					Hint:   "the log has a hole the catalog does not show; run 'strata check'"}
			}
			want++
			return fn(k, e)
		})
		if errors.Is(err, errStop) {
			break
		}
		if err != nil {
			return err
		}
	}
	if p.Target.ByPos && p.Target.Position >= p.From && want != p.Target.Position+1 {
		return fmt.Errorf("%w: the log of %q ends at position %d, before the target %d", index.ErrNotRestorable, p.Stream, want-1, p.Target.Position)
	}
	return nil
}

// LoadPlanSegments reads and verifies the manifests of a plan's segments,
// in parallel: each is intact, and each chains to the one before it (its
// Prev names it); a time target is not inside a time-uncertain span; and an
// untrusted plan (an index server's) proves that it reaches its target.
// A plan lists every member of a twin group (index.Log.Twins: a
// re-encryption cut short between storing a replacement manifest and
// deleting the old one); it keeps the member that replaces the others,
// which holds the same events, and refuses a group that is not one
// replacement chain as an overlap of two writers. p.Segments is set to
// the segments kept (a new slice: the catalog's is shared), which the
// returned manifests match one for one. Every point-in-time restore calls
// it before writing anything, whatever the stream's kind.
func LoadPlanSegments(ctx context.Context, r *repo.Repository, p *index.Plan) ([]*repo.Segment, error) {
	segs := make([]*repo.Segment, len(p.Segments))
	errs := make([]error, len(p.Segments))
	err := repo.ForEach(ctx, r.Store(), len(p.Segments), func(i int) error {
		segs[i], errs[i] = r.LoadSegment(ctx, p.Segments[i])
		return nil
	})
	if err != nil {
		return nil, err
	}
	keys, segs, err := resolveTwins(p.Stream, p.Segments, segs, errs)
	if err != nil {
		return nil, err
	}
	p.Segments = keys
	for i := 1; i < len(segs); i++ {
		if !segs[i].Follows(p.Segments[i-1].ID, segs[i-1]) {
			return nil, &repo.CorruptError{Object: p.Segments[i].Name(), Offset: -1,
				Reason: fmt.Sprintf("does not chain to %s, the segment before it (a segment was replaced, or two writers)", p.Segments[i-1].Name()),
				Hint:   "run 'strata coverage' and 'strata check'"}
		}
	}
	// The manifests are verified against their names, so the names' flags
	// and ranges can be trusted from here on, whoever made the plan.
	if err := p.CheckUncertain(); err != nil {
		return nil, err
	}
	if p.Untrusted {
		if err := p.ProveEnd(); err != nil {
			return nil, fmt.Errorf("refusing the server's plan: %w", err)
		}
	}
	return segs, nil
}
