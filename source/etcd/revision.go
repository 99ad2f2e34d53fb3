package etcd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/strata-backup/strata/repo"
)

// ChangeOp says what a change does to its key.
type ChangeOp uint8

const (
	// ChangePut sets the key's value (creating the key or replacing it).
	ChangePut ChangeOp = 1
	// ChangeDelete removes the key. A prefix or range delete is one
	// ChangeDelete per key it removed, as etcd's watch reports it.
	ChangeDelete ChangeOp = 2
)

// Change is one key's change within a revision. Its mod revision is the
// revision itself, so it is not stored.
type Change struct {
	Op    ChangeOp
	Key   []byte
	Value []byte // puts only
	// For puts: the key's create revision, its version after the put, and
	// its lease (0 for none).
	CreateRevision, Version, Lease int64
}

// Revision is every change of one etcd revision, in the order etcd reported them.
type Revision struct {
	Revision int64
	Changes  []Change
}

// Revision event encoding (FORMAT.md §21.2). The log event has Op put,
// Seq = the revision, Time = arrival time, Key = RevisionEventKey, and Value:
//
//	uvarint number of changes (at least 1)
//	changes:
//	  u8 op (1 put, 2 delete) | uvarint len(key) | key
//	  put only: | uvarint len(value) | value | uvarint create_revision | uvarint version | uvarint lease
//
// The key names the encoding, so a later one can be told apart.
const RevisionEventKey = "etcd-revision 1"

// MaxRevisionBytes is the largest encoded revision a log event holds.
const MaxRevisionBytes = repo.MaxEventValue

// AppendRevision appends the encoding of rev's changes to b.
func AppendRevision(b []byte, rev *Revision) []byte {
	b = binary.AppendUvarint(b, uint64(len(rev.Changes)))
	for i := range rev.Changes {
		c := &rev.Changes[i]
		b = append(b, byte(c.Op))
		b = binary.AppendUvarint(b, uint64(len(c.Key)))
		b = append(b, c.Key...)
		if c.Op == ChangePut {
			b = binary.AppendUvarint(b, uint64(len(c.Value)))
			b = append(b, c.Value...)
			b = binary.AppendUvarint(b, uint64(c.CreateRevision))
			b = binary.AppendUvarint(b, uint64(c.Version))
			b = binary.AppendUvarint(b, uint64(c.Lease))
		}
	}
	return b
}

// RevisionEvent makes the log event of rev, arrived at arrival (unix ns).
// It fails when the encoding exceeds MaxRevisionBytes.
func RevisionEvent(rev *Revision, arrival int64) (repo.Event, error) {
	if rev.Revision < 1 || len(rev.Changes) == 0 {
		return repo.Event{}, fmt.Errorf("etcd revision %d with %d changes: nothing to store", rev.Revision, len(rev.Changes))
	}
	v := AppendRevision(nil, rev)
	if len(v) > MaxRevisionBytes {
		return repo.Event{}, fmt.Errorf("etcd revision %d: %d bytes of changes, more than a log event holds (%d)", rev.Revision, len(v), MaxRevisionBytes)
	}
	return repo.Event{Seq: uint64(rev.Revision), Time: arrival, Op: repo.OpPut, Key: []byte(RevisionEventKey), Value: v}, nil
}

// DecodeRevisionEvent decodes a log event made by RevisionEvent. Keys and
// values alias e.Value. Errors wrap ErrCorrupt.
func DecodeRevisionEvent(e *repo.Event) (*Revision, error) {
	if e.Op != repo.OpPut || string(e.Key) != RevisionEventKey {
		return nil, fmt.Errorf("%w: log event %d is not an etcd revision (op %s, key %.40q)", ErrCorrupt, e.Seq, e.Op, e.Key)
	}
	if e.Seq < 1 || e.Seq > math.MaxInt64 {
		return nil, fmt.Errorf("%w: log event position %d is not a revision", ErrCorrupt, e.Seq)
	}
	rev := &Revision{Revision: int64(e.Seq)}
	b := e.Value
	bad := func(what string) error {
		return fmt.Errorf("%w: etcd revision %d: %s at byte %d", ErrCorrupt, rev.Revision, what, len(e.Value)-len(b))
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 {
		return nil, bad("bad change count")
	}
	b = b[k:]
	// Every change takes at least 3 bytes, which bounds the allocation.
	if n > uint64(len(b)/3) {
		return nil, bad("change count past the end")
	}
	rev.Changes = make([]Change, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(b) == 0 {
			return nil, bad("truncated")
		}
		c := Change{Op: ChangeOp(b[0])}
		b = b[1:]
		if c.Op != ChangePut && c.Op != ChangeDelete {
			return nil, bad(fmt.Sprintf("unknown change op %d", c.Op))
		}
		var ok bool
		if c.Key, b, ok = cutBytes(b, maxKey); !ok || len(c.Key) == 0 {
			return nil, bad("bad key")
		}
		if c.Op == ChangePut {
			if c.Value, b, ok = cutBytes(b, maxValue); !ok {
				return nil, bad("bad value")
			}
			var meta [3]uint64
			for j := range meta {
				if meta[j], k = binary.Uvarint(b); k <= 0 || meta[j] > math.MaxInt64 {
					return nil, bad("bad key metadata")
				}
				b = b[k:]
			}
			c.CreateRevision, c.Version, c.Lease = int64(meta[0]), int64(meta[1]), int64(meta[2])
			if c.CreateRevision < 1 || c.CreateRevision > rev.Revision || c.Version < 1 {
				return nil, bad(fmt.Sprintf("key %.40q: create revision %d, version %d", c.Key, c.CreateRevision, c.Version))
			}
		}
		rev.Changes = append(rev.Changes, c)
	}
	if len(b) != 0 {
		return nil, bad("bytes after the last change")
	}
	// One encoding per revision: numbers written with needless bytes are
	// not this package's.
	if !bytes.Equal(AppendRevision(make([]byte, 0, len(e.Value)), rev), e.Value) {
		return nil, fmt.Errorf("%w: etcd revision %d: numbers not in their shortest encoding", ErrCorrupt, rev.Revision)
	}
	return rev, nil
}

func cutBytes(b []byte, limit int) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(limit) || l > uint64(len(b)-n) {
		return nil, nil, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}
