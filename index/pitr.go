package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-backup/strata/repo"
)

// Log is one stream's change log as its segment names list it, sorted by
// position, with the contiguous runs precomputed so a plan is a few binary
// searches whatever the number of segments.
type Log struct {
	Stream   string
	Segments []repo.SegmentKey // by First
	runs     []logRun
	// uncertain holds the indexes in Segments of time-uncertain segments,
	// in order. Their first times never decrease: every segment of one span
	// carries the span's start, and a later span starts after an earlier
	// one ends.
	uncertain []int
	// Conflicts names segments whose ranges overlap another's: two writers on
	// one stream. Plans refuse to cross them.
	Conflicts []string
	// Fenced are the segments of deposed writers (FORMAT.md §15,
	// "Fencing"), by First: each overlaps or follows a position that a
	// writer with a higher epoch wrote from. They are not in Segments, so
	// nothing plans, chains or continues from them.
	Fenced []repo.SegmentKey
	// Twins are the segments whose names equal one in Segments in
	// everything but the manifest ID (stream, range, times, mark and
	// epoch), by First: a re-encryption killed between storing a
	// replacement manifest and deleting the one it replaces leaves such a
	// pair (FORMAT.md §4.1). A name cannot say whether one replaces the
	// other, so the planner keeps the whole group as one candidate
	// (Segments holds the member whose ID sorts first) and plans list
	// every member; engine.LoadPlanSegments resolves it on the manifests
	// and refuses a group that is not one replacement chain, as an
	// overlap of two writers.
	Twins []repo.SegmentKey
	// groups maps the ID of every member of a twin group to the whole
	// group, the Segments member first; nil without twins.
	groups map[repo.ID][]repo.SegmentKey
	// maxEpoch and maxLast are the highest epoch and last position of any
	// segment, fenced ones included: With's fast path needs no fencing
	// when a segment is past both.
	maxEpoch, maxLast uint64
}

// SameName reports whether a and b are twins: their names agree in
// everything but the manifest ID.
func SameName(a, b repo.SegmentKey) bool {
	a.ID = b.ID
	return a == b
}

// Group returns every member of k's twin group (k included, the member in
// Segments first), or nil when no other segment has k's name but for the
// ID. The result is shared: do not modify.
func (l *Log) Group(k repo.SegmentKey) []repo.SegmentKey {
	if l == nil {
		return nil
	}
	return l.groups[k.ID]
}

// Fence splits segs (one stream's) into the live ones and those a writer
// with a higher epoch fenced out: S is fenced when some segment T has
// T.Epoch > S.Epoch and T.First ≤ S.Last, for the writer of T took the
// lease after S's writer and wrote from T.First on, so S was sealed by a
// writer that had lost the lease (or overlaps the new writer's history).
// Both results keep segs' order.
func Fence(segs []repo.SegmentKey) (live, fenced []repo.SegmentKey) {
	if len(segs) == 0 {
		return segs, nil
	}
	// minFirst[e] is the lowest First of epoch e; then, from the highest
	// epoch down, the lowest First of any higher epoch.
	minFirst := map[uint64]uint64{}
	for _, k := range segs {
		if f, ok := minFirst[k.Epoch]; !ok || k.First < f {
			minFirst[k.Epoch] = k.First
		}
	}
	if len(minFirst) == 1 {
		return segs, nil // one epoch: nothing to fence
	}
	epochs := slices.Sorted(maps.Keys(minFirst))
	higher := make(map[uint64]uint64, len(epochs)) // epoch → lowest First of any higher epoch
	low := uint64(math.MaxUint64)
	for i := len(epochs) - 1; i >= 0; i-- {
		e := epochs[i]
		higher[e] = low
		low = min(low, minFirst[e])
	}
	live = make([]repo.SegmentKey, 0, len(segs))
	for _, k := range segs {
		if higher[k.Epoch] <= k.Last {
			fenced = append(fenced, k)
		} else {
			live = append(live, k)
		}
	}
	return live, fenced
}

// All returns every segment of the log, fenced ones and twins included,
// by First.
func (l *Log) All() []repo.SegmentKey {
	if len(l.Fenced) == 0 && len(l.Twins) == 0 {
		return l.Segments
	}
	all := append(append(slices.Clone(l.Segments), l.Fenced...), l.Twins...)
	sortSegments(all)
	return all
}

func sortSegments(segs []repo.SegmentKey) {
	slices.SortFunc(segs, func(a, b repo.SegmentKey) int {
		if a.First != b.First {
			return cmp.Compare(a.First, b.First)
		}
		if a.Last != b.Last {
			return cmp.Compare(a.Last, b.Last)
		}
		if a.Epoch != b.Epoch {
			return cmp.Compare(a.Epoch, b.Epoch)
		}
		// Twins (and the rare overlap of equal ranges) in one order
		// whatever the listing's, so the member planned first is fixed.
		if a.FirstTime != b.FirstTime {
			return cmp.Compare(a.FirstTime, b.FirstTime)
		}
		if a.LastTime != b.LastTime {
			return cmp.Compare(a.LastTime, b.LastTime)
		}
		if a.Uncertain != b.Uncertain {
			if a.Uncertain {
				return 1
			}
			return -1
		}
		return a.ID.Compare(b.ID)
	})
}

// logRun is a maximal run of segments whose positions follow on exactly.
type logRun struct {
	start, end int // Segments[start:end]
}

// NewLog sorts segs (all of one stream), sets aside the fenced ones
// (Fence) and finds the runs of the rest.
func NewLog(stream string, segs []repo.SegmentKey) *Log { return newLog(stream, segs, true) }

// Unfolded returns the log with its twins (Twins) counted as overlapping
// segments, as a log without re-encryption would: for check --repair,
// once the manifests showed that a group is two writers' and not a
// replacement.
func (l *Log) Unfolded() *Log {
	if len(l.Twins) == 0 {
		return l
	}
	return newLog(l.Stream, slices.Clone(l.All()), false)
}

func newLog(stream string, segs []repo.SegmentKey, fold bool) *Log {
	sortSegments(segs)
	var maxEpoch, maxLast uint64
	for _, k := range segs {
		maxEpoch, maxLast = max(maxEpoch, k.Epoch), max(maxLast, k.Last)
	}
	segs, fenced := Fence(segs)
	l := &Log{Stream: stream, Segments: segs, Fenced: fenced, maxEpoch: maxEpoch, maxLast: maxLast}
	if fold {
		l.foldTwins()
		segs = l.Segments
	}
	for i, k := range segs {
		if k.Uncertain {
			l.uncertain = append(l.uncertain, i)
		}
	}
	start := 0
	for i := 1; i <= len(segs); i++ {
		if i < len(segs) && segs[i].First <= segs[i-1].Last {
			l.Conflicts = append(l.Conflicts, fmt.Sprintf("%s overlaps %s", segs[i].Name(), segs[i-1].Name()))
		}
		if i == len(segs) || segs[i].First != segs[i-1].Last+1 {
			l.runs = append(l.runs, logRun{start, i})
			start = i
		}
	}
	return l
}

// foldTwins moves every twin (a segment whose name equals the one before
// it but for the ID) from Segments to Twins and records the groups.
// Segments are sorted, so twins are adjacent.
func (l *Log) foldTwins() {
	segs := l.Segments
	i := 1
	for i < len(segs) && !SameName(segs[i-1], segs[i]) {
		i++
	}
	if i >= len(segs) {
		return // none: Segments stays the sorted input, uncopied
	}
	keep := slices.Clone(segs[:i])
	l.groups = map[repo.ID][]repo.SegmentKey{}
	for ; i < len(segs); i++ {
		rep := keep[len(keep)-1]
		if !SameName(rep, segs[i]) {
			keep = append(keep, segs[i])
			continue
		}
		g, ok := l.groups[rep.ID]
		if !ok {
			g = []repo.SegmentKey{rep}
		}
		g = append(g, segs[i])
		for _, m := range g {
			l.groups[m.ID] = g
		}
		l.Twins = append(l.Twins, segs[i])
	}
	l.Segments = keep
}

// ListLogs lists the segment manifests under logs/ (one stream's when stream
// is not empty) and groups them by stream. Names that do not parse are
// returned as a joined error beside the logs of the rest.
func ListLogs(ctx context.Context, s repo.Store, stream string) (map[string]*Log, error) {
	prefix := repo.LogsPrefix
	if stream != "" {
		prefix = repo.StreamLogPrefix(stream)
	}
	by := map[string][]repo.SegmentKey{}
	var bad []error
	err := s.List(ctx, prefix, func(oi repo.ObjectInfo) error {
		k, err := repo.ParseSegmentName(oi.Name)
		if err != nil {
			bad = append(bad, &repo.CorruptError{Object: oi.Name, Offset: -1, Reason: err.Error()})
			return nil
		}
		// k.Stream is a substring of the listed name, which it would keep
		// alive (about 160 bytes a segment): share one copy per stream.
		segs, ok := by[k.Stream]
		if ok {
			k.Stream = segs[0].Stream
		} else {
			k.Stream = strings.Clone(k.Stream)
		}
		by[k.Stream] = append(segs, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	logs := make(map[string]*Log, len(by))
	for name, segs := range by {
		logs[name] = NewLog(name, segs)
	}
	return logs, errors.Join(bad...)
}

// runAt returns the run holding position pos, or -1.
func (l *Log) runAt(pos uint64) int {
	// The last segment with First <= pos.
	i := sort.Search(len(l.Segments), func(i int) bool { return l.Segments[i].First > pos }) - 1
	if i < 0 || l.Segments[i].Last < pos {
		return -1
	}
	return l.runOf(i)
}

// runOf returns the run that segment i belongs to.
func (l *Log) runOf(i int) int {
	return sort.Search(len(l.runs), func(r int) bool { return l.runs[r].end > i })
}

// With returns the log with segment k added, leaving l unchanged for
// readers that hold it. A segment that follows the newest one (the case of
// every live capture) is appended in O(1) amortized time: the new Log
// appends to l's segment array, which readers of l never look past their own
// length. So With may be called at most once on any Log: each call must be on
// the newest Log of a chain (the server's catalog holds its write lock).
// Anything else rebuilds the log. Runs (one per gap) are copied.
func (l *Log) With(k repo.SegmentKey) *Log {
	n := len(l.Segments)
	if n > 0 && k.First <= l.Segments[n-1].Last || len(l.Conflicts) > 0 ||
		k.Epoch < l.maxEpoch || len(l.Fenced) > 0 && k.First <= l.maxLast {
		return NewLog(l.Stream, append(slices.Clone(l.All()), k))
	}
	nl := &Log{Stream: l.Stream, Segments: append(l.Segments, k), runs: slices.Clone(l.runs), uncertain: l.uncertain,
		Fenced: l.Fenced, Twins: l.Twins, groups: l.groups, maxEpoch: max(l.maxEpoch, k.Epoch), maxLast: max(l.maxLast, k.Last)}
	if k.Uncertain {
		nl.uncertain = append(slices.Clip(l.uncertain), n)
	}
	if nr := len(nl.runs); nr > 0 && k.First == l.Segments[n-1].Last+1 {
		nl.runs[nr-1].end = n + 1
	} else {
		nl.runs = append(nl.runs, logRun{n, n + 1})
	}
	return nl
}

// Newest returns the newest segment, if any.
func (l *Log) Newest() (repo.SegmentKey, bool) {
	if l == nil || len(l.Segments) == 0 {
		return repo.SegmentKey{}, false
	}
	return l.Segments[len(l.Segments)-1], true
}

// Target is an instant to restore to: a time, or a log position.
type Target struct {
	Time     time.Time
	Position uint64
	ByPos    bool
}

func (t Target) String() string {
	if t.ByPos {
		return fmt.Sprintf("position %d", t.Position)
	}
	return FormatTime(t.Time)
}

// Plan is how to restore a stream at a Target: the base snapshot, then the
// events of Segments with positions after the base's and at or before the
// target (time ≤ Target.Time, inclusive, or position ≤ Target.Position).
type Plan struct {
	Stream string
	Target Target
	Base   SnapshotRef
	From   uint64 // first position to apply: Base.Position+1
	// Segments are the log segments to read, in order: from the one holding
	// From through the first whose last event lies past the target (its
	// last time after Target.Time, or its last position at or past
	// Target.Position), which proves that no event the restore must apply
	// lies beyond them (see ProveEnd). Only when the target is the newest
	// captured event itself does no such segment exist. A twin group
	// (Log.Twins) stands as all its members, adjacent, which
	// engine.LoadPlanSegments resolves to one. Shared with the catalog:
	// do not modify (assign a new slice).
	Segments []repo.SegmentKey
	// Untrusted marks a plan made by someone else (an index server): before
	// any byte is written, the restore MUST check ProveEnd and Uncertain on
	// the verified manifests, since the planner could have dropped segments
	// or picked a base whose log ends early.
	Untrusted bool
}

// ErrUnprovable is wrapped when a plan cannot show that it reaches its target.
var ErrUnprovable = errors.New("plan does not prove that it reaches its target")

// ProveEnd checks that the plan's segments, which the caller has verified
// and chained (engine.LoadPlanSegments), hold every event the restore must
// apply. Times never decrease along a log, so once an event lies after the
// target every later one does too: the last segment's last event past the
// target is the proof. A plan with no segments proves itself only by
// position, at its base's own position, or, for a base without a position
// (which no log applies to), at its base's own time.
func (p *Plan) ProveEnd() error {
	if n := len(p.Segments); n > 0 {
		last := p.Segments[n-1]
		if p.Target.ByPos && last.Last >= p.Target.Position || !p.Target.ByPos && last.LastTime > p.Target.Time.UnixNano() {
			return nil
		}
		return fmt.Errorf("%w: its log ends at position %d (%s), and nothing shows that no event at or before %s follows; the stream may not have captured past the target yet, or the planner left segments out", ErrUnprovable,
			last.Last, FormatTime(nsTime(last.LastTime)), p.Target)
	}
	if p.Target.ByPos && p.Base.Position != nil && *p.Base.Position == p.Target.Position {
		return nil
	}
	// A snapshot without a position takes no log ever (Plan): at its own
	// time it is the whole answer, and no segment could have been left out.
	if !p.Target.ByPos && p.Base.Position == nil && p.Target.Time.Equal(p.Base.Time) {
		return nil
	}
	return fmt.Errorf("%w: it applies no log to snapshot %s, and nothing shows that no event at or before %s follows it", ErrUnprovable, p.Base.ID.Short(), p.Target)
}

// CheckUncertain refuses a time target inside a time-uncertain span of the
// plan's segments (FORMAT.md §15): an event there happened after its
// segment's first time and no later than its own time, so whether it was
// before the target is unknown. A restore by position is never uncertain.
func (p *Plan) CheckUncertain() error {
	if p.Target.ByPos {
		return nil
	}
	at := p.Target.Time.UnixNano()
	for i, k := range p.Segments {
		if k.Uncertain && k.FirstTime < at && at < k.LastTime {
			return uncertainError(p.Stream, p.Target, spanAround(p.Segments, i))
		}
	}
	return nil
}

// spanAround returns the whole time-uncertain span that segs[i] belongs to:
// the adjacent uncertain segments that follow on by position and carry the
// same start.
func spanAround(segs []repo.SegmentKey, i int) Uncertain {
	same := func(j, k int) bool {
		return segs[j].Uncertain && segs[k].Uncertain && segs[k].First == segs[j].Last+1 && segs[j].FirstTime == segs[k].FirstTime
	}
	a, b := i, i
	for a > 0 && same(a-1, a) {
		a--
	}
	for b+1 < len(segs) && same(b, b+1) {
		b++
	}
	return Uncertain{FromPos: segs[a].First, ToPos: segs[b].Last, After: nsTime(segs[a].FirstTime), Before: nsTime(segs[b].LastTime)}
}

// Uncertain is a time-uncertain span of a log: the events at positions
// FromPos..ToPos were re-delivered after a capture restart or reconnect by a
// source that keeps no times (Redis, etcd). Each happened after After and no
// later than Before; when exactly is unknown. Restores at instants strictly
// between After and Before are refused; by position they are exact.
type Uncertain struct {
	FromPos, ToPos uint64
	After, Before  time.Time
}

func (u Uncertain) String() string {
	return fmt.Sprintf("positions %d-%d happened between %s and %s, when exactly is unknown (re-delivered after a capture restart or reconnect)", u.FromPos, u.ToPos, FormatTime(u.After), FormatTime(u.Before))
}

// ErrTimeUncertain is wrapped (beside ErrNotRestorable) by refusals of an
// instant inside a time-uncertain span.
var ErrTimeUncertain = errors.New("time-uncertain")

func uncertainError(stream string, t Target, u Uncertain) error {
	from := u.FromPos - 1
	return fmt.Errorf("%w: %w: %s lies in a time-uncertain span of %q: %s; nearest provable instants: %s (through position %d) and %s (through position %d); by position every state in it is exact: --at-position %d..%d",
		ErrNotRestorable, ErrTimeUncertain, t, stream, u, FormatTime(u.After), from, FormatTime(u.Before), u.ToPos, from, u.ToPos)
}

// Applies reports whether an event belongs to the plan's restore.
func (p *Plan) Applies(seq uint64, ts int64) bool {
	if seq < p.From {
		return false
	}
	if p.Target.ByPos {
		return seq <= p.Target.Position
	}
	return ts <= p.Target.Time.UnixNano()
}

// ErrNotRestorable is wrapped by every refusal to plan a restore.
var ErrNotRestorable = errors.New("not restorable")

// Window is a span of instants, both ends inclusive, at which a stream can
// be restored: from a snapshot's time through the contiguous log after it.
type Window struct {
	From, To       time.Time
	FromPos, ToPos uint64 // log positions at the ends; 0 when unknown
}

// Gap is a stretch of positions missing from the log: no event in
// [FromPos, ToPos] is stored. After and Before are the times of the events
// on either side.
type Gap struct {
	FromPos, ToPos uint64
	After, Before  time.Time
}

func (g Gap) String() string {
	return fmt.Sprintf("positions %d-%d missing (between %s and %s)", g.FromPos, g.ToPos, FormatTime(g.After), FormatTime(g.Before))
}

// Coverage is what a stream can be restored to.
type Coverage struct {
	Stream    string
	Windows   []Window
	Gaps      []Gap
	Conflicts []string
	// Uncertain lists the time-uncertain spans of the log, oldest first.
	Uncertain []Uncertain
	// Newest is the time of the newest stored event, or of the newest
	// snapshot when the stream has no log.
	Newest time.Time
}

// Coverage computes the restorable windows and the gaps of a stream.
func (c *Catalog) Coverage(stream string) Coverage {
	l := c.Log(stream)
	cov := Coverage{Stream: stream, Conflicts: l.Conflicts}
	for r := 1; r < len(l.runs); r++ {
		a, b := l.Segments[l.runs[r-1].end-1], l.Segments[l.runs[r].start]
		if b.First > a.Last+1 {
			cov.Gaps = append(cov.Gaps, Gap{FromPos: a.Last + 1, ToPos: b.First - 1, After: nsTime(a.LastTime), Before: nsTime(b.FirstTime)})
		}
	}
	for _, i := range l.uncertain {
		k := l.Segments[i]
		u := Uncertain{FromPos: k.First, ToPos: k.Last, After: nsTime(k.FirstTime), Before: nsTime(k.LastTime)}
		if n := len(cov.Uncertain); n > 0 && cov.Uncertain[n-1].ToPos+1 == k.First && cov.Uncertain[n-1].After.Equal(u.After) {
			cov.Uncertain[n-1].ToPos, cov.Uncertain[n-1].Before = k.Last, u.Before
			continue
		}
		cov.Uncertain = append(cov.Uncertain, u)
	}
	if n, ok := l.Newest(); ok {
		cov.Newest = nsTime(n.LastTime)
	}
	for _, s := range c.Stream(stream) {
		if s.Time.After(cov.Newest) {
			cov.Newest = s.Time
		}
		w := Window{From: s.Time, To: s.Time}
		if s.Position != nil {
			w.FromPos, w.ToPos = *s.Position, *s.Position
			if r := l.runAfter(*s.Position); r >= 0 {
				last := l.Segments[l.runs[r].end-1]
				w.ToPos = last.Last
				if t := nsTime(last.LastTime); t.After(w.To) {
					w.To = t
				}
			}
		}
		cov.Windows = append(cov.Windows, w)
	}
	cov.Windows = mergeWindows(cov.Windows)
	return cov
}

// runAfter returns the run that continues the log right after position p:
// it holds p+1, or -1.
func (l *Log) runAfter(p uint64) int { return l.runAt(p + 1) }

func mergeWindows(ws []Window) []Window {
	slices.SortFunc(ws, func(a, b Window) int { return a.From.Compare(b.From) })
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && !w.From.After(out[n-1].To) {
			if w.To.After(out[n-1].To) {
				out[n-1].To, out[n-1].ToPos = w.To, w.ToPos
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// Log returns the stream's log; an empty one when it has no segments.
func (c *Catalog) Log(stream string) *Log {
	if l := c.Logs[stream]; l != nil {
		return l
	}
	return NewLog(stream, nil)
}

// Plan finds how to restore stream at t: the newest snapshot at or before t
// (by time, or by position) whose log continues without a gap through t.
// It refuses, wrapping ErrNotRestorable, when t is before the first
// snapshot, past the newest captured event, or past a gap with no snapshot
// after it; the error names the gap and the nearest restorable instants.
func (c *Catalog) Plan(stream string, t Target) (*Plan, error) {
	snaps := c.Stream(stream)
	l := c.Log(stream)
	var first error
	pastEnd := false
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if t.ByPos && (s.Position == nil || *s.Position > t.Position) || !t.ByPos && s.Time.After(t.Time) {
			continue
		}
		if pastEnd && s.Position != nil {
			// t is past the end of a newer snapshot's run; an older
			// snapshot's run ends there too, or at an earlier gap. Only a
			// snapshot without a position, exactly at t, can still serve.
			continue
		}
		p, past, err := l.plan(s, t, snaps)
		if err == nil {
			p.Untrusted = c.Untrusted
			return p, nil
		}
		pastEnd = pastEnd || past
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	cov := c.Coverage(stream)
	if len(snaps) == 0 {
		return nil, fmt.Errorf("%w: stream %q has no snapshot, and a log alone has no base to apply to", ErrNotRestorable, stream)
	}
	if t.ByPos {
		return nil, fmt.Errorf("%w: no snapshot of %q is at or before position %d%s", ErrNotRestorable, stream, t.Position, cov.nearest())
	}
	return nil, fmt.Errorf("%w: %s is before the first snapshot of %q (%s)%s", ErrNotRestorable, t, stream, FormatTime(snaps[0].Time), cov.nearest())
}

// plan tries one base snapshot. past reports that t lies beyond the end of
// the run of log that continues it.
func (l *Log) plan(s SnapshotRef, t Target, all []SnapshotRef) (_ *Plan, past bool, _ error) {
	p := &Plan{Stream: l.Stream, Target: t, Base: s}
	if s.Position == nil {
		if !t.ByPos && t.Time.Equal(s.Time) {
			return p, false, nil
		}
		return nil, false, fmt.Errorf("%w: snapshot %s (%s) records no log position, so no log can be applied to it; it restores only at its own time", ErrNotRestorable, s.ID.Short(), FormatTime(s.Time))
	}
	pos := *s.Position
	p.From = pos + 1
	if t.ByPos && t.Position == pos {
		return p, false, nil
	}
	r := l.runAfter(pos)
	if r < 0 {
		if !t.ByPos && t.Time.Equal(s.Time) {
			return p, false, nil
		}
		return nil, false, fmt.Errorf("%w: no log segment continues snapshot %s (%s, position %d); the log has no position %d%s", ErrNotRestorable, s.ID.Short(), FormatTime(s.Time), pos, pos+1, l.gapHint(pos))
	}
	run := l.runs[r]
	segs := l.Segments[run.start:run.end]
	last := segs[len(segs)-1]
	// The first segment holding an event after the base.
	lo := sort.Search(len(segs), func(i int) bool { return segs[i].Last > pos })
	var hi int // segments [lo, hi) are needed
	if t.ByPos {
		if t.Position > last.Last {
			return nil, true, l.pastRun(r, t, s, all)
		}
		hi = sort.Search(len(segs), func(i int) bool { return segs[i].First > t.Position })
		// Through the segment holding the target position: its last
		// position is at or past it, which proves the end.
		hi = max(lo+1, hi)
	} else {
		at := t.Time.UnixNano()
		if at > last.LastTime {
			return nil, true, l.pastRun(r, t, s, all)
		}
		if err := l.checkUncertain(run.start+lo, run.end, t); err != nil {
			return nil, false, err
		}
		// Times never decrease along the log (last times, even across
		// time-uncertain segments), so the segments that can hold an event
		// at or before t are a prefix, and the first segment after it whose
		// last event is later than t proves that no later event applies.
		hi = sort.Search(len(segs), func(i int) bool { return segs[i].LastTime > at })
		hi = max(lo, hi) + 1
	}
	// A capped subslice, not a copy: plans are read-only, and copying would
	// cost more than the search at 100k segments.
	hi = min(hi, len(segs))
	p.Segments = l.withTwins(segs[lo:hi:hi])
	return p, false, nil
}

// withTwins returns segs with every twin group's other members listed
// right after the member in Segments: the reader of the plan loads them
// all and keeps the one that replaces the others (FORMAT.md §4.1). segs
// itself when no twin is among them.
func (l *Log) withTwins(segs []repo.SegmentKey) []repo.SegmentKey {
	if len(l.groups) == 0 {
		return segs
	}
	var out []repo.SegmentKey
	for i, k := range segs {
		g := l.groups[k.ID]
		if g == nil {
			if out != nil {
				out = append(out, k)
			}
			continue
		}
		if out == nil {
			out = append(make([]repo.SegmentKey, 0, len(segs)+len(g)), segs[:i]...)
		}
		out = append(out, g...)
	}
	if out == nil {
		return segs
	}
	return out
}

// checkUncertain refuses t when it lies strictly inside a time-uncertain
// segment among Segments[from:to].
func (l *Log) checkUncertain(from, to int, t Target) error {
	at := t.Time.UnixNano()
	i, _ := slices.BinarySearch(l.uncertain, from)
	for ; i < len(l.uncertain) && l.uncertain[i] < to; i++ {
		k := l.Segments[l.uncertain[i]]
		if k.FirstTime >= at {
			break // later spans start later still
		}
		if at < k.LastTime {
			return uncertainError(l.Stream, t, spanAround(l.Segments, l.uncertain[i]))
		}
	}
	return nil
}

// pastRun explains a target beyond the end of run r.
func (l *Log) pastRun(r int, t Target, s SnapshotRef, all []SnapshotRef) error {
	last := l.Segments[l.runs[r].end-1]
	end := fmt.Sprintf("%s (position %d)", FormatTime(nsTime(last.LastTime)), last.Last)
	if r+1 < len(l.runs) {
		next := l.Segments[l.runs[r+1].start]
		if next.First <= last.Last {
			// Runs never hold overlapping segments; the next run overlapping
			// this one is what ends it.
			return fmt.Errorf("%w: the log of %q has overlapping segments (two writers?): %s", ErrNotRestorable, l.Stream, strings.Join(l.Conflicts, "; "))
		}
		g := Gap{FromPos: last.Last + 1, ToPos: next.First - 1, After: nsTime(last.LastTime), Before: nsTime(next.FirstTime)}
		after := "no snapshot after the gap yet"
		for _, o := range all {
			if o.Position != nil && *o.Position >= g.ToPos || o.Position == nil && o.Time.After(g.Before) {
				after = fmt.Sprintf("snapshot %s at %s", o.ID.Short(), FormatTime(o.Time))
				break
			}
		}
		return fmt.Errorf("%w: %s lies past a gap in the log of %q: %s; nearest restorable instants: %s before the gap, and after it %s", ErrNotRestorable, t, l.Stream, g, end, after)
	}
	return fmt.Errorf("%w: %s is after the newest captured event of %q; the latest restorable instant from snapshot %s is %s", ErrNotRestorable, t, l.Stream, s.ID.Short(), end)
}

// gapHint describes where the log resumes after position pos, if it does.
func (l *Log) gapHint(pos uint64) string {
	i := sort.Search(len(l.Segments), func(i int) bool { return l.Segments[i].First > pos })
	if i == len(l.Segments) {
		return ""
	}
	g := Gap{FromPos: pos + 1, ToPos: l.Segments[i].First - 1, Before: nsTime(l.Segments[i].FirstTime)}
	if i > 0 {
		g.After = nsTime(l.Segments[i-1].LastTime)
	}
	return fmt.Sprintf(" (gap: positions %d-%d missing, the log resumes at %s)", g.FromPos, g.ToPos, FormatTime(g.Before))
}

// nearest lists the restorable windows for an error message.
func (cov Coverage) nearest() string {
	if len(cov.Windows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; restorable windows:")
	for _, w := range cov.Windows {
		fmt.Fprintf(&b, " [%s, %s]", FormatTime(w.From), FormatTime(w.To))
	}
	return b.String()
}
