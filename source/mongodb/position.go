package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrNotTimestamp is returned by ParseTimestamp for text that is not an
// oplog timestamp (a plain integer among them: that is a log position).
var ErrNotTimestamp = errors.New("not an oplog timestamp")

// maxTimestampText bounds what ParseTimestamp reads: the longest form,
// with room for spaces, is far shorter.
const maxTimestampText = 128

// ParseTimestamp reads an oplog timestamp as an operator writes it:
// "T:I" (seconds:increment), "T.I" (as Strata prints one), or as mongosh
// prints it, "Timestamp({t: T, i: I})", "Timestamp(T, I)" or "{t: T, i: I}"
// (t and i optionally quoted). A plain integer is not a timestamp: it is a
// log position, and ParseTimestamp refuses it with ErrNotTimestamp.
func ParseTimestamp(s string) (Timestamp, error) {
	bad := func(why string) (Timestamp, error) {
		return Timestamp{}, fmt.Errorf("%w: %.40q: %s (want T:I, Timestamp({t: T, i: I}) or Timestamp(T, I))", ErrNotTimestamp, s, why)
	}
	if len(s) > maxTimestampText {
		return bad("too long")
	}
	in := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(in, "Timestamp("); ok {
		in, ok = strings.CutSuffix(rest, ")")
		if !ok {
			return bad("no closing parenthesis")
		}
		in = strings.TrimSpace(in)
		if !strings.HasPrefix(in, "{") {
			a, b, ok := strings.Cut(in, ",")
			if !ok {
				return bad("want two numbers")
			}
			return timestampOf(a, b, bad)
		}
	}
	if rest, ok := strings.CutPrefix(in, "{"); ok {
		body, ok := strings.CutSuffix(rest, "}")
		if !ok {
			return bad("no closing brace")
		}
		var t, i string
		var haveT, haveI bool
		for f := range strings.SplitSeq(body, ",") {
			name, val, ok := strings.Cut(f, ":")
			if !ok {
				return bad("want t: and i: fields")
			}
			name = strings.TrimSpace(name)
			if len(name) == 3 && (name[0] == '"' || name[0] == '\'') && name[2] == name[0] {
				name = name[1:2]
			}
			switch {
			case name == "t" && !haveT:
				t, haveT = val, true
			case name == "i" && !haveI:
				i, haveI = val, true
			default:
				return bad("want t: and i: fields, once each")
			}
		}
		if !haveT || !haveI {
			return bad("want t: and i: fields")
		}
		return timestampOf(t, i, bad)
	}
	if a, b, ok := strings.Cut(in, ":"); ok {
		return timestampOf(a, b, bad)
	}
	if a, b, ok := strings.Cut(in, "."); ok {
		return timestampOf(a, b, bad)
	}
	return bad("a plain number is a log position")
}

// timestampOf reads the two decimal halves of a timestamp, each a uint32.
func timestampOf(t, i string, bad func(string) (Timestamp, error)) (Timestamp, error) {
	var v [2]uint32
	for k, s := range []string{t, i} {
		s = strings.TrimSpace(s)
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			return bad("seconds and increment are decimal numbers")
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > math.MaxUint32 {
			return bad("seconds and increment are 32-bit numbers")
		}
		v[k] = uint32(n)
	}
	return Timestamp{T: v[0], I: v[1]}, nil
}

// tsSegment is what PositionAt learned of one segment: the timestamps of
// its entries, position First+k holding ts[k].
type tsSegment struct {
	first uint64
	ts    []Timestamp
}

// PositionAt maps oplog timestamp ts to the log position of stream whose
// restore is the state after every oplog entry with a timestamp ≤ ts: the
// position of the last stored entry at or before ts, or that of the base
// the entries after ts continue from when ts lies between the base's end
// and its first entry. It reads only the segments a binary search over the
// stream's log needs (entries ascend by timestamp along the positions), and
// the trailer of at most one base.
//
// It refuses, wrapping index.ErrNotRestorable, a ts no stored entry is at
// or after (the capture has not reached it, so entries up to ts may be
// missing), a ts before the stream's first restorable base, and a ts in a
// gap (between the last entry before a gap and the end of the base taken
// after it: the entries written there were lost).
func PositionAt(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, ts Timestamp) (uint64, error) {
	l := cat.Log(stream)
	segs := l.Segments
	if len(segs) == 0 {
		return 0, fmt.Errorf("%w: stream %q has no oplog stored, so no entry at or after oplog timestamp %s", index.ErrNotRestorable, stream, ts)
	}
	read := map[int]*tsSegment{}
	load := func(i int) (*tsSegment, error) {
		if s := read[i]; s != nil {
			return s, nil
		}
		k := segs[i]
		seg, err := r.LoadSegment(ctx, k)
		if err != nil {
			return nil, err
		}
		s := &tsSegment{first: k.First}
		err = engine.ReadSegment(ctx, r, k, seg, func(ev *repo.Event) error {
			e, _, err := DecodeOplogEvent(ev)
			if err != nil {
				return fmt.Errorf("%s: %w", k.Name(), err)
			}
			if n := len(s.ts); n > 0 && !e.TS.After(s.ts[n-1]) {
				return &repo.CorruptError{Object: k.Name(), Offset: -1,
					Reason: fmt.Sprintf("oplog entry %s at position %d after %s", e.TS, ev.Seq, s.ts[n-1]),
					Hint:   "entries must ascend; run 'strata check'"}
			}
			s.ts = append(s.ts, e.TS)
			return nil
		})
		if err != nil {
			return nil, err
		}
		read[i] = s
		return s, nil
	}
	// The first segment whose last entry is at or after ts.
	var searchErr error
	i := sort.Search(len(segs), func(i int) bool {
		if searchErr != nil {
			return true
		}
		s, err := load(i)
		if err != nil {
			searchErr = err
			return true
		}
		return len(s.ts) > 0 && !ts.After(s.ts[len(s.ts)-1])
	})
	if searchErr != nil {
		return 0, searchErr
	}
	if i == len(segs) {
		last, err := load(len(segs) - 1)
		if err != nil {
			return 0, err
		}
		newest := "none"
		if n := len(last.ts); n > 0 {
			newest = fmt.Sprintf("%s at position %d", last.ts[n-1], last.first+uint64(n-1))
		}
		return 0, fmt.Errorf("%w: oplog timestamp %s is after the newest stored entry (%s): the capture has not reached it, so entries up to it may be missing", index.ErrNotRestorable, ts, newest)
	}
	s, err := load(i)
	if err != nil {
		return 0, err
	}
	// k: the first entry of segment i at or after ts.
	k := sort.Search(len(s.ts), func(k int) bool { return !ts.After(s.ts[k]) })
	next := s.first + uint64(k)
	if s.ts[k] == ts {
		return next, nil
	}
	// The entry before next, when it is stored, is the last one before ts.
	if k > 0 {
		return next - 1, nil
	}
	if i > 0 && segs[i-1].Last+1 == next {
		// The segment before holds it (its manifest's range says so; the
		// restore reads and verifies it).
		return next - 1, nil
	}
	// next follows a base (the stream's first, or one taken after a gap) at
	// next-1: ts maps to it when the base is exact at or before ts.
	for _, b := range cat.Stream(stream) {
		if b.Position == nil || *b.Position != next-1 {
			continue
		}
		tr, err := ReadTrailer(ctx, r, b)
		if err != nil {
			return 0, err
		}
		if end := tr.EndTS(); ts.After(end) || ts == end {
			return next - 1, nil
		}
		where := "before the stream's first base"
		if i > 0 {
			where = "in the gap before the base"
		}
		return 0, fmt.Errorf("%w: oplog timestamp %s is %s at position %d, which is exact at %s; the entries before it were not captured", index.ErrNotRestorable, ts, where, next-1, tr.EndTS())
	}
	return 0, fmt.Errorf("%w: oplog timestamp %s is before the entry at position %d (%s), and no base at position %d holds the state before that entry", index.ErrNotRestorable, ts, next, s.ts[k], next-1)
}
