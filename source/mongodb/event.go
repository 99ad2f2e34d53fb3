package mongodb

import (
	"fmt"

	"github.com/strata-backup/strata/repo"
)

// Oplog events (FORMAT.md §23.2): one log event per oplog entry, op put,
// key the entry's namespace, time the entry's wall time, and value
//
//	u8 version (1) | u8 flags | the oplog entry's BSON, byte for byte
//
// Flag bit 0: the source logs every update as its whole new document
// (FerretDB); other bits must be 0.
const (
	eventVersion       = 1
	flagFullImage      = 1
	eventHeader        = 2
	maxEntry           = repo.MaxEventValue - eventHeader
	knownFlags    byte = flagFullImage
)

// OplogEvent encodes entry e as the log event at position seq, time t
// (unix ns). It fails when the entry is too large for an event.
func OplogEvent(seq uint64, t int64, e *Entry, fullImage bool) (repo.Event, error) {
	if len(e.Raw) > maxEntry {
		return repo.Event{}, fmt.Errorf("oplog entry %s is %d bytes, over the %d a log event holds", e.TS, len(e.Raw), maxEntry)
	}
	if len(e.NS) > repo.MaxEventKey {
		return repo.Event{}, fmt.Errorf("oplog entry %s: namespace of %d bytes", e.TS, len(e.NS))
	}
	v := make([]byte, eventHeader, eventHeader+len(e.Raw))
	v[0] = eventVersion
	if fullImage {
		v[1] = flagFullImage
	}
	v = append(v, e.Raw...)
	return repo.Event{Seq: seq, Time: t, Op: repo.OpPut, Key: []byte(e.NS), Value: v}, nil
}

// DecodeOplogEvent decodes an event OplogEvent made, checking that its key
// is the entry's namespace. The entry aliases ev.Value.
func DecodeOplogEvent(ev *repo.Event) (*Entry, OpsOptions, error) {
	v := ev.Value
	if ev.Op != repo.OpPut || len(v) < eventHeader {
		return nil, OpsOptions{}, fmt.Errorf("%w: event %d: not an oplog event", ErrCorrupt, ev.Seq)
	}
	if v[0] != eventVersion {
		return nil, OpsOptions{}, fmt.Errorf("%w: event %d: oplog event version %d", ErrCorrupt, ev.Seq, v[0])
	}
	if v[1]&^knownFlags != 0 {
		return nil, OpsOptions{}, fmt.Errorf("%w: event %d: unknown flags %#x", ErrCorrupt, ev.Seq, v[1])
	}
	e, err := ParseEntry(v[eventHeader:])
	if err != nil {
		return nil, OpsOptions{}, fmt.Errorf("event %d: %w", ev.Seq, err)
	}
	if string(ev.Key) != e.NS {
		return nil, OpsOptions{}, fmt.Errorf("%w: event %d: key %q but the entry's namespace is %q", ErrCorrupt, ev.Seq, ev.Key, e.NS)
	}
	return e, OpsOptions{FullImageUpdates: v[1]&flagFullImage != 0}, nil
}
