package repo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	segmentVersion = 1
	maxSegmentSize = 1 << 20
	adSegment      = "strata:segment"
	// EventsEncoding names the event record layout of AppendEvent.
	EventsEncoding = "events-v1"
)

// Segment is the manifest of one log segment (FORMAT.md, "Log segments"):
// the events at positions First..Last of a stream, every one of them, in a
// pack of their own. It is written after its pack, so a stored manifest
// never points at missing data.
type Segment struct {
	Version   int       `json:"version"`
	Stream    string    `json:"stream"`
	First     uint64    `json:"first"` // position of the first event
	Last      uint64    `json:"last"`  // position of the last event; Last-First+1 events
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	// Prev is the manifest ID of the segment before this one in the stream,
	// nil for the stream's first segment.
	Prev *ID `json:"prev,omitempty"`
	// Replaces is set on a manifest that `key rotate --reencrypt` wrote in
	// place of another (FORMAT.md §4.1): the replaced manifest's ID, which
	// the next segment's Prev may still name until it is rewritten too.
	Replaces *ID `json:"replaces,omitempty"`
	// Gap is set when the capture saw positions Prev.Last+1..First-1 lost
	// (the source skipped them); it says what the capture knew.
	Gap string `json:"gap,omitempty"`
	// TimeUncertain marks events re-delivered after a capture restart or
	// reconnect, whose source carries no time of its own (FORMAT.md §15,
	// "Time-uncertain spans"): each happened after FirstTime and at or
	// before its stamped time, but when exactly is unknown. Their
	// positions and content are exact.
	TimeUncertain bool `json:"time_uncertain,omitempty"`
	// Epoch is the fencing token of the writer that sealed the segment:
	// the generation at which it took the stream's lease (Lease.Epoch),
	// 0 for a writer without a lease. The name carries it too, so readers
	// that plan from names alone fence out a deposed writer's segments
	// (FORMAT.md §15, "Fencing").
	Epoch    uint64       `json:"epoch,omitempty"`
	Encoding string       `json:"encoding"` // EventsEncoding
	Pack     SegmentPack  `json:"pack"`
	Created  time.Time    `json:"created"` // when the segment was sealed, by the writer's clock
	Frames   []SegmentRun `json:"frames"`
	// KeyFilter, version 2 (FORMAT.md §15.1), is a Bloom filter of the
	// keys the segment's events touch; optional. Readers of one key skip
	// a segment whose filter rules the key out; an invalid one rules
	// nothing out.
	KeyFilter *KeyFilter `json:"key_filter,omitempty"`
}

// SegmentPack locates a segment's pack.
type SegmentPack struct {
	ID     ID     `json:"id"`
	Length uint64 `json:"length"`
	K      int    `json:"k"`
	M      int    `json:"m"`
}

// Info returns the pack's PackInfo.
func (p SegmentPack) Info() PackInfo { return PackInfo{ID: p.ID, Length: p.Length, K: p.K, M: p.M} }

// SegmentRun is one frame of a segment's pack and the events it holds.
type SegmentRun struct {
	First  uint64 `json:"first"`
	Events int    `json:"events"`
}

// SegmentKey is what a segment manifest's name says: enough to plan a
// restore from a listing alone.
type SegmentKey struct {
	Stream      string
	First, Last uint64
	FirstTime   int64 // unix nanoseconds
	LastTime    int64
	// Uncertain: the segment's events are time-uncertain (Segment.TimeUncertain);
	// the name separates its times with '~' instead of '-'.
	Uncertain bool
	// Epoch is the writer's fencing token (Segment.Epoch); a name without
	// one is epoch 0.
	Epoch uint64
	ID    ID // BLAKE3 of the stored manifest
}

// Name returns the manifest's object name:
// logs/<stream>/@<first:20>-<last:20>.<firsttime:19>-<lasttime:19>.<64 hex>,
// positions and unix-nanosecond times in zero-padded decimal so names sort
// by position. '@' cannot start a stream name segment, so one stream's
// prefix never lists a sub-stream's segments. A time-uncertain segment
// separates its times with '~' (FORMAT.md §15), so a listing alone shows
// the spans a plan must refuse. A segment with an epoch has it, 20 digits,
// between the times and the hex: …<lasttime:19>.<epoch:20>.<64 hex>.
func (k SegmentKey) Name() string {
	sep := byte('-')
	if k.Uncertain {
		sep = '~'
	}
	if k.FirstTime < 0 || k.LastTime < 0 {
		// Never stored (times before 1970 are refused); keep the spelling total.
		ep := ""
		if k.Epoch > 0 {
			ep = fmt.Sprintf(".%020d", k.Epoch)
		}
		return fmt.Sprintf("%s%020d-%020d.%019d%c%019d%s.%s", StreamLogPrefix(k.Stream), k.First, k.Last, k.FirstTime, sep, k.LastTime, ep, k.ID)
	}
	// Formatted by hand: an index server formats thousands per plan.
	b := make([]byte, 0, len(LogsPrefix)+len(k.Stream)+2+20+1+20+1+19+1+19+1+20+1+64)
	b = append(append(append(b, LogsPrefix...), k.Stream...), "/@"...)
	b = appendPadded(b, k.First, 20)
	b = appendPadded(append(b, '-'), k.Last, 20)
	b = appendPadded(append(b, '.'), uint64(k.FirstTime), 19)
	b = appendPadded(append(b, sep), uint64(k.LastTime), 19)
	if k.Epoch > 0 {
		b = appendPadded(append(b, '.'), k.Epoch, 20)
	}
	b = hex.AppendEncode(append(b, '.'), k.ID[:])
	return string(b)
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v uint64, width int) []byte {
	var d [20]byte
	n := len(strconv.AppendUint(d[:0], v, 10))
	for ; n < width; n++ {
		b = append(b, '0')
	}
	return strconv.AppendUint(b, v, 10)
}

// StreamLogPrefix is the prefix under which exactly one stream's segment
// manifests are listed: logs/<stream>/@.
func StreamLogPrefix(stream string) string { return LogsPrefix + stream + "/@" }

// ParseSegmentName reverses SegmentKey.Name.
func ParseSegmentName(name string) (SegmentKey, error) {
	bad := func(why string) (SegmentKey, error) {
		return SegmentKey{}, fmt.Errorf("not a log segment name: %q: %s", name, why)
	}
	rest, ok := strings.CutPrefix(name, LogsPrefix)
	at := strings.LastIndex(rest, "/@")
	if !ok || at <= 0 {
		return bad("no logs/<stream>/@")
	}
	k := SegmentKey{Stream: rest[:at]}
	if err := ValidStream(k.Stream); err != nil {
		return bad(err.Error())
	}
	f := rest[at+2:]
	// 20-20.19-19.64, or 20-20.19~19.64 for a time-uncertain segment;
	// with an epoch, 20 more digits and a dot before the 64.
	const plain = 20 + 1 + 20 + 1 + 19 + 1 + 19 + 1 + 64
	withEpoch := len(f) == plain+21
	if len(f) != plain && !withEpoch || f[20] != '-' || f[41] != '.' || f[61] != '-' && f[61] != '~' || f[81] != '.' {
		return bad("malformed range")
	}
	if withEpoch {
		if f[102] != '.' {
			return bad("malformed epoch")
		}
		for i := 82; i < 102; i++ {
			if f[i] < '0' || f[i] > '9' {
				return bad("malformed epoch")
			}
		}
	}
	k.Uncertain = f[61] == '~'
	var err error
	num := func(s string) uint64 {
		v, e := strconv.ParseUint(s, 10, 64)
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	k.First, k.Last = num(f[:20]), num(f[21:41])
	t0, t1 := num(f[42:61]), num(f[62:81])
	if err != nil || t0 > 1<<63-1 || t1 > 1<<63-1 {
		return bad("malformed number")
	}
	k.FirstTime, k.LastTime = int64(t0), int64(t1)
	hexAt := 82
	if withEpoch {
		k.Epoch = num(f[82:102])
		if err != nil || k.Epoch == 0 {
			return bad("malformed epoch") // epoch 0 is spelled without one: one name per segment
		}
		hexAt = 103
	}
	if k.ID, err = ParseID(f[hexAt:]); err != nil {
		return bad("malformed ID")
	}
	if k.First == 0 || k.Last < k.First || k.LastTime < k.FirstTime {
		return bad("empty or reversed range")
	}
	return k, nil
}

// Key returns the name fields of a segment with manifest ID id.
func (s *Segment) Key(id ID) SegmentKey {
	return SegmentKey{Stream: s.Stream, First: s.First, Last: s.Last, FirstTime: s.FirstTime.UnixNano(), LastTime: s.LastTime.UnixNano(), Uncertain: s.TimeUncertain, Epoch: s.Epoch, ID: id}
}

// SaveSegment stores a segment manifest and returns its key. The pack must
// already be stored.
func (r *Repository) SaveSegment(ctx context.Context, s *Segment) (SegmentKey, error) {
	s.Version = segmentVersion
	s.Encoding = EventsEncoding
	if err := s.validate(); err != nil {
		return SegmentKey{}, fmt.Errorf("save segment: %w", err)
	}
	p, err := jsonMarshal(s)
	if err != nil {
		return SegmentKey{}, err
	}
	b := seal(nil, r.keys.metadata, p, adSegment)
	k := s.Key(hashObject(b))
	if err := r.store.Put(ctx, k.Name(), b); err != nil {
		return SegmentKey{}, fmt.Errorf("save segment %d-%d: %w", s.First, s.Last, err)
	}
	return k, nil
}

// LoadSegment reads a segment manifest, verifies it against its name (hash,
// authentication, and that the name's range and times are the manifest's).
func (r *Repository) LoadSegment(ctx context.Context, k SegmentKey) (*Segment, error) {
	name := k.Name()
	b, err := r.store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load segment: %w", err)
	}
	if len(b) > maxSegmentSize {
		return nil, corrupt(name, -1, "%d bytes, over the limit %d", len(b), maxSegmentSize)
	}
	if hashObject(b) != k.ID {
		return nil, corrupt(name, -1, "content does not match its name (truncated or altered)")
	}
	p, err := r.keys.openMeta(b, adSegment)
	if err != nil {
		return nil, corrupt(name, -1, "fails authentication")
	}
	s, err := DecodeSegment(name, p)
	if err != nil {
		return nil, err
	}
	if s.Key(k.ID) != k {
		return nil, corrupt(name, -1, "manifest says %s, its name says otherwise", s.Key(k.ID).Name())
	}
	return s, nil
}

// DecodeSegment parses and validates segment manifest plaintext.
func DecodeSegment(name string, p []byte) (*Segment, error) {
	var s Segment
	if err := json.Unmarshal(p, &s); err != nil {
		return nil, corrupt(name, -1, "segment manifest is not valid JSON: %v", err)
	}
	if s.Version != segmentVersion {
		return nil, fmt.Errorf("%s: %w: segment version %d", name, ErrUnsupportedVersion, s.Version)
	}
	if s.Encoding != EventsEncoding {
		return nil, fmt.Errorf("%s: %w: event encoding %q", name, ErrUnsupportedVersion, s.Encoding)
	}
	if err := s.validate(); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	return &s, nil
}

func (s *Segment) validate() error {
	if err := ValidStream(s.Stream); err != nil {
		return err
	}
	switch {
	case s.First == 0 || s.Last < s.First:
		return fmt.Errorf("segment range %d-%d", s.First, s.Last)
	case s.FirstTime.UnixNano() < 0 || s.LastTime.Before(s.FirstTime):
		return fmt.Errorf("segment times %v-%v", s.FirstTime, s.LastTime)
	case s.Pack.Length == 0 || s.Pack.K < 1 || s.Pack.M < 0 || s.Pack.K+s.Pack.M > 255:
		return fmt.Errorf("segment pack %d bytes, %d+%d shards", s.Pack.Length, s.Pack.K, s.Pack.M)
	case len(s.Frames) == 0 || s.Frames[0].First != s.First:
		return fmt.Errorf("segment frames do not start at %d", s.First)
	}
	next := s.First
	for _, f := range s.Frames {
		if f.First != next || f.Events <= 0 || uint64(f.Events) > s.Last-next+1 {
			return fmt.Errorf("segment frames do not cover %d-%d", s.First, s.Last)
		}
		next += uint64(f.Events)
	}
	if next != s.Last+1 {
		return fmt.Errorf("segment frames do not cover %d-%d", s.First, s.Last)
	}
	return nil
}

// Follows reports whether s chains to the segment before it, whose
// manifest ID is predID and whose manifest is pred (nil when not loaded):
// s's Prev names it, or names the manifest pred replaced when it was
// re-encrypted (FORMAT.md §4.1).
func (s *Segment) Follows(predID ID, pred *Segment) bool {
	if s.Prev == nil {
		return false
	}
	return *s.Prev == predID || pred != nil && pred.Replaces != nil && *s.Prev == *pred.Replaces
}
