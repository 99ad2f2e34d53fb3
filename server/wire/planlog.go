package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/strata-backup/strata/repo"
)

// The plan log (PROTOCOL.md, "GET /v1/plan"): a plan's segment keys in a
// compact binary form, carried base64 in the plan's "log" field. A daily-
// snapshot plan over 10 s segments lists ~4,300 segments; as names that was
// 160 bytes and a formatted string each, here it is ~40 bytes appended
// without formatting: the stream is the plan's, positions and times are
// deltas, and the manifest ID is raw.
//
//	log     = version (1 byte, PlanLogVersion) count (uvarint) segment*count
//	segment = first  (zigzag varint: first − next)
//	          span   (uvarint: last − first)
//	          t0     (zigzag varint: first_time − previous last_time)
//	          dt     (uvarint: last_time − first_time)
//	          flags  (1 byte: bit 0 time-uncertain, bit 1 epoch follows, others zero)
//	          epoch  (uvarint, ≥ 1, only with flag bit 1: the writer's fencing epoch)
//	          id     (32 bytes)
//
// next is the plan's "from" before the first segment and the previous
// segment's last + 1 after it; the previous last_time before the first
// segment is 0.

// PlanLogVersion is the first byte of every plan log.
const PlanLogVersion = 1

const (
	// MaxPlanSegments bounds the segments one plan log may hold: a plan
	// over a whole log of 10 s segments kept for a year is ~3.2M.
	MaxPlanSegments = 1 << 23
	// minPlanSegment is the fewest bytes a segment takes (one byte for each
	// number, the flags, the ID): a count is checked against the bytes left
	// before anything is allocated.
	minPlanSegment = 4 + 1 + len(repo.ID{})

	planUncertain = 1
	planEpoch     = 2 // set exactly when the segment has an epoch (its name carries one)
)

// ErrBadPlanLog is wrapped by every error DecodePlanLog returns.
var ErrBadPlanLog = errors.New("malformed plan log")

// AppendPlanLog appends segs, in plan order, encoded as a plan log whose
// positions count on from from, and returns the extended slice.
func AppendPlanLog(b []byte, from uint64, segs []repo.SegmentKey) []byte {
	return AppendPlanLogAfter(b, from, 0, segs)
}

// AppendPlanLogAfter appends segs as the plan log of a page (PROTOCOL.md
// §5, "Pages"): the encoding of AppendPlanLog, with next and prevTime
// standing for the segment before the page. The first page has from and
// 0; a later one the previous page's last segment's Last+1 and LastTime,
// so the segments of the pages are those of the whole plan.
func AppendPlanLogAfter(b []byte, next uint64, prevTime int64, segs []repo.SegmentKey) []byte {
	b = append(b, PlanLogVersion)
	b = binary.AppendUvarint(b, uint64(len(segs)))
	for _, k := range segs {
		b = binary.AppendVarint(b, int64(k.First-next)) // wraps: exact on decode
		b = binary.AppendUvarint(b, k.Last-k.First)
		b = binary.AppendVarint(b, k.FirstTime-prevTime)
		b = binary.AppendUvarint(b, uint64(k.LastTime-k.FirstTime))
		var flags byte
		if k.Uncertain {
			flags |= planUncertain
		}
		if k.Epoch != 0 {
			flags |= planEpoch
		}
		b = append(b, flags)
		if k.Epoch != 0 {
			b = binary.AppendUvarint(b, k.Epoch)
		}
		b = append(b, k.ID[:]...)
		next, prevTime = k.Last+1, k.LastTime
	}
	return b
}

// DecodePlanLog reverses AppendPlanLog for a plan of stream starting at
// from. It is a network parser: every key it returns is one
// repo.ParseSegmentName would accept (positions from 1, last ≥ first,
// times from 0 and last ≥ first), the count is bounded, and trailing bytes
// are refused. It does not check that the segments follow on from each
// other; client.PlanFor does.
func DecodePlanLog(stream string, from uint64, b []byte) ([]repo.SegmentKey, error) {
	return DecodePlanLogAfter(stream, from, 0, b)
}

// DecodePlanLogAfter reverses AppendPlanLogAfter: the plan log of a page
// whose previous segment ends at position next−1 and time prevTime (from
// and 0 for the first page). Its checks are DecodePlanLog's; a prevTime
// below 0 is refused (no segment ends before 1970).
func DecodePlanLogAfter(stream string, next uint64, prevTime int64, b []byte) ([]repo.SegmentKey, error) {
	bad := func(i int, format string, args ...any) ([]repo.SegmentKey, error) {
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrBadPlanLog, fmt.Sprintf(format, args...))
		}
		return nil, fmt.Errorf("%w: segment %d: %s", ErrBadPlanLog, i, fmt.Sprintf(format, args...))
	}
	if len(b) == 0 {
		return bad(-1, "empty")
	}
	if prevTime < 0 {
		return bad(-1, "page after a segment ending before 1970")
	}
	if b[0] != PlanLogVersion {
		return bad(-1, "version %d, want %d", b[0], PlanLogVersion)
	}
	p := 1
	count, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return bad(-1, "bad segment count")
	}
	p += n
	if count > MaxPlanSegments {
		return bad(-1, "%d segments, over the limit %d", count, MaxPlanSegments)
	}
	if count > uint64((len(b)-p)/minPlanSegment) {
		return bad(-1, "%d segments in %d bytes", count, len(b)-p)
	}
	segs := make([]repo.SegmentKey, count)
	for i := range segs {
		d, n1 := binary.Varint(b[p:])
		if n1 <= 0 {
			return bad(i, "bad first position")
		}
		p += n1
		span, n2 := binary.Uvarint(b[p:])
		if n2 <= 0 {
			return bad(i, "bad position span")
		}
		p += n2
		t0, n3 := binary.Varint(b[p:])
		if n3 <= 0 {
			return bad(i, "bad first time")
		}
		p += n3
		dt, n4 := binary.Uvarint(b[p:])
		if n4 <= 0 {
			return bad(i, "bad time span")
		}
		p += n4
		if len(b)-p < 1+len(repo.ID{}) {
			return bad(i, "truncated")
		}
		flags := b[p]
		p++
		if flags&^(planUncertain|planEpoch) != 0 {
			return bad(i, "unknown flags %#x", flags)
		}
		k := repo.SegmentKey{Stream: stream, First: next + uint64(d), Uncertain: flags&planUncertain != 0}
		if flags&planEpoch != 0 {
			e, n5 := binary.Uvarint(b[p:])
			if n5 <= 0 || e == 0 {
				return bad(i, "bad epoch")
			}
			k.Epoch = e
			p += n5
		}
		if len(b)-p < len(repo.ID{}) {
			return bad(i, "truncated")
		}
		copy(k.ID[:], b[p:])
		p += len(repo.ID{})
		if k.First == 0 {
			return bad(i, "position 0")
		}
		if span > math.MaxUint64-k.First {
			return bad(i, "positions overflow")
		}
		k.Last = k.First + span
		if t0 < 0 && prevTime < math.MinInt64-t0 || t0 > 0 && prevTime > math.MaxInt64-t0 {
			return bad(i, "first time overflows")
		}
		k.FirstTime = prevTime + t0
		if k.FirstTime < 0 {
			return bad(i, "time before 1970")
		}
		if dt > uint64(math.MaxInt64-k.FirstTime) {
			return bad(i, "last time overflows")
		}
		k.LastTime = k.FirstTime + int64(dt)
		segs[i] = k
		next, prevTime = k.Last+1, k.LastTime
	}
	if p != len(b) {
		return bad(-1, "%d bytes after the last segment", len(b)-p)
	}
	return segs, nil
}
