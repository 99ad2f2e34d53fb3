package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/strata-backup/strata/repo"
)

// Command is one command of the replication stream, as a log event holds it.
type Command struct {
	ReplID string // the master's replication ID when the command arrived
	// Start is the offset before the command: its bytes are Start+1..End.
	Start, End int64
	DB         int // the database it applies to; -1 before the stream named one
	Argv       [][]byte
}

// Layout of a command event's value (FORMAT.md section 20):
//
//	u8 version (1) | 40 bytes replication ID | uvarint start offset |
//	uvarint length in bytes (end - start) | uvarint db + 1 (0: unknown) |
//	uvarint argc (≥ 1) | argc × (uvarint length | bytes)
const (
	eventVersion = 1
	replIDLen    = 40
	maxDB        = 1 << 20
)

// ErrBadEvent is wrapped by errors about event values that do not decode.
var ErrBadEvent = errors.New("bad redis command event")

// AppendCommandEvent appends the value encoding of c to b.
func AppendCommandEvent(b []byte, c *Command) []byte {
	b = append(b, eventVersion)
	b = append(b, c.ReplID...)
	b = binary.AppendUvarint(b, uint64(c.Start))
	b = binary.AppendUvarint(b, uint64(c.End-c.Start))
	b = binary.AppendUvarint(b, uint64(c.DB+1))
	b = binary.AppendUvarint(b, uint64(len(c.Argv)))
	for _, a := range c.Argv {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

// DecodeCommandEvent decodes an event value. Argv aliases v.
func DecodeCommandEvent(v []byte) (Command, error) {
	var c Command
	if len(v) < 1+replIDLen || v[0] != eventVersion {
		if len(v) > 0 && v[0] != eventVersion {
			return c, fmt.Errorf("%w: version %d (this build reads %d)", ErrBadEvent, v[0], eventVersion)
		}
		return c, fmt.Errorf("%w: %d bytes is too short", ErrBadEvent, len(v))
	}
	c.ReplID = string(v[1 : 1+replIDLen])
	if !validReplID(c.ReplID) {
		return c, fmt.Errorf("%w: bad replication ID", ErrBadEvent)
	}
	rest := v[1+replIDLen:]
	// next reads a uvarint of at most limit; limit -1 means at most the
	// bytes left after it (a length or a count of length-prefixed items).
	next := func(limit int64) (uint64, bool) {
		x, n := binary.Uvarint(rest)
		// Only the shortest encoding: one value, one spelling, so a
		// decoded event re-encodes to the same bytes.
		if n <= 0 || n != uvarintLen(x) {
			return 0, false
		}
		rest = rest[n:]
		if limit < 0 {
			limit = int64(len(rest))
		}
		return x, x <= uint64(limit)
	}
	const maxOff = 1<<63 - 1
	start, ok1 := next(maxOff)
	length, ok2 := next(maxOff - int64(start))
	db, ok3 := next(maxDB + 1)
	argc, ok4 := next(-1)
	if !ok1 || !ok2 || !ok3 || !ok4 || argc == 0 || length == 0 {
		return c, fmt.Errorf("%w: bad header", ErrBadEvent)
	}
	c.Start, c.End, c.DB = int64(start), int64(start+length), int(db)-1
	c.Argv = make([][]byte, 0, argc)
	for range argc {
		l, ok := next(-1)
		if !ok {
			return c, fmt.Errorf("%w: argument %d runs past the value", ErrBadEvent, len(c.Argv))
		}
		c.Argv = append(c.Argv, rest[:l:l])
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return c, fmt.Errorf("%w: %d bytes after the last argument", ErrBadEvent, len(rest))
	}
	return c, nil
}

// commandKey is an event's key: the command's name in lower case, so a
// listing of events reads like a command log.
func commandKey(argv [][]byte) []byte {
	if len(argv) == 0 {
		return nil
	}
	return bytes.ToLower(argv[0][:min(len(argv[0]), 64)])
}

// NewEvent builds the log event for c at position seq, arriving at t (unix ns).
func NewEvent(seq uint64, t int64, c *Command) repo.Event {
	return repo.Event{Seq: seq, Time: t, Op: repo.OpPut, Key: commandKey(c.Argv), Value: AppendCommandEvent(nil, c)}
}

// is reports whether a (a command name) is name, ignoring case.
func is(a []byte, name string) bool { return bytes.EqualFold(a, []byte(name)) }

// uvarintLen is the length of the shortest uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
