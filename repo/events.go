package repo

import (
	"encoding/binary"
	"fmt"
)

// LogBlob holds change events of a log segment (FORMAT.md, "Log segments").
const LogBlob BlobType = 2

// EventOp says what a change event does.
type EventOp uint8

const (
	// OpPut sets Key to the document in Value (the whole new document).
	OpPut EventOp = 1
	// OpDelete removes Key; Value is empty.
	OpDelete EventOp = 2
)

func (op EventOp) String() string {
	switch op {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// Event is one change of a stream, at position Seq, committed at Time (unix
// nanoseconds). Within a stream Seq counts up by one per event and Time
// never decreases.
type Event struct {
	Seq   uint64
	Time  int64
	Op    EventOp
	Key   []byte
	Value []byte
}

// Limits a decoder enforces on one event.
const (
	MaxEventKey   = 64 << 10
	MaxEventValue = 16 << 20
)

// AppendEvent appends the encoding of e to b:
//
//	u8 op | uvarint seq | varint time (ns) | uvarint len(key) | key | uvarint len(value) | value
func AppendEvent(b []byte, e *Event) []byte {
	b = append(b, byte(e.Op))
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Time)
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendUvarint(b, uint64(len(e.Value)))
	return append(b, e.Value...)
}

// DecodeEvents calls fn for each event encoded in b, in order. Key and Value
// alias b. It checks only the encoding; the order of Seq and Time is the
// segment reader's to check.
func DecodeEvents(name string, b []byte, fn func(*Event) error) error {
	var e Event
	for off := 0; off < len(b); {
		start := off
		op := EventOp(b[off])
		off++
		if op != OpPut && op != OpDelete {
			return corrupt(name, int64(start), "unknown event op %d", op)
		}
		seq, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return corrupt(name, int64(start), "bad event position")
		}
		off += n
		t, n := binary.Varint(b[off:])
		if n <= 0 {
			return corrupt(name, int64(start), "bad event time")
		}
		off += n
		key, n, ok := lenPrefixed(b[off:], MaxEventKey)
		if !ok {
			return corrupt(name, int64(start), "bad event key")
		}
		off += n
		val, n, ok := lenPrefixed(b[off:], MaxEventValue)
		if !ok {
			return corrupt(name, int64(start), "bad event value")
		}
		off += n
		if op == OpDelete && len(val) != 0 {
			return corrupt(name, int64(start), "a delete event carries a value")
		}
		e = Event{Seq: seq, Time: t, Op: op, Key: key, Value: val}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// lenPrefixed reads a uvarint length (at most limit) and that many bytes.
func lenPrefixed(b []byte, limit int) ([]byte, int, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(limit) || l > uint64(len(b)-n) {
		return nil, 0, false
	}
	return b[n : n+int(l)], n + int(l), true
}
