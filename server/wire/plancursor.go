package wire

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// A plan cursor continues a plan asked for in pages (PROTOCOL.md §5,
// "Pages"): the server hands it out as a page's "next" and reads it back
// as the following request's "after". Clients treat it as opaque.
//
//	cursor = version (1 byte, PlanCursorVersion)
//	         index   (uvarint ≥ 1: the plan's segments before the page)
//	         check   (16 bytes: PlanCursorCheck of the plan and index)
//
// carried as unpadded base64url. It holds no server state and no secret:
// a server recomputes the plan for the request's stream and target and
// accepts the cursor only when check matches that plan's stream, target,
// base, from and the ID of the segment before index. A cursor altered in
// any byte, or one whose plan changed since it was handed out (a base
// forgotten, a segment inserted before it), is refused rather than
// continued into another plan.

// PlanCursorVersion is the first byte of every plan cursor.
const PlanCursorVersion = 1

const (
	// MaxPlanCursor bounds the length of an "after" a server parses and a
	// "next" a client sends back: a cursor is at most 1+10+16 bytes, 36
	// base64 characters.
	MaxPlanCursor = 64
	// planCheckLen is the bytes of SHA-256 a cursor keeps: enough that no
	// edit matches by chance; a cursor is not a secret.
	planCheckLen = 16
)

// ErrBadPlanCursor is wrapped by every error ParsePlanCursor returns.
var ErrBadPlanCursor = errors.New("malformed plan cursor")

// PlanCursor is a decoded plan cursor.
type PlanCursor struct {
	// Index is how many of the plan's segments came before the page: the
	// page starts with segment Index (0-based).
	Index uint64
	Check [planCheckLen]byte
}

// String is the cursor as it travels in "next" and "after".
func (c PlanCursor) String() string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+planCheckLen)
	b = append(b, PlanCursorVersion)
	b = binary.AppendUvarint(b, c.Index)
	b = append(b, c.Check[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParsePlanCursor reads a cursor from an "after" parameter. It is a network
// parser: the length is bounded before decoding, the version and index
// are checked, and trailing bytes are refused. Whether the cursor belongs
// to a plan is the server's check (PlanCursorCheck).
func ParsePlanCursor(s string) (PlanCursor, error) {
	var c PlanCursor
	if len(s) > MaxPlanCursor {
		return c, fmt.Errorf("%w: %d characters, over the limit %d", ErrBadPlanCursor, len(s), MaxPlanCursor)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		// The decoder skips line breaks: re-encoding refuses them too.
		return c, fmt.Errorf("%w: not unpadded base64url", ErrBadPlanCursor)
	}
	if len(b) == 0 || b[0] != PlanCursorVersion {
		return c, fmt.Errorf("%w: unknown version", ErrBadPlanCursor)
	}
	idx, n := binary.Uvarint(b[1:])
	if n <= 0 || idx == 0 || idx > MaxPlanSegments {
		return c, fmt.Errorf("%w: bad index", ErrBadPlanCursor)
	}
	if n != len(binary.AppendUvarint(nil, idx)) {
		// One cursor, one spelling: an overlong varint would be a second
		// name for the same page.
		return c, fmt.Errorf("%w: index not in its shortest form", ErrBadPlanCursor)
	}
	rest := b[1+n:]
	if len(rest) != planCheckLen {
		return c, fmt.Errorf("%w: %d check bytes, want %d", ErrBadPlanCursor, len(rest), planCheckLen)
	}
	c.Index = idx
	copy(c.Check[:], rest)
	return c, nil
}

// PlanCursorCheck binds a cursor to one plan: SHA-256 over the stream, the
// target (by position or by time in ns), the base snapshot, from, the
// index and the ID of the plan's segment index−1, the first 16 bytes. A
// server computes it both to hand out a cursor and to accept one.
func PlanCursorCheck(stream string, t index.Target, base repo.ID, from, idx uint64, prev repo.ID) [planCheckLen]byte {
	b := make([]byte, 0, 128+len(stream))
	b = append(b, "strata plan cursor 1\x00"...)
	b = binary.AppendUvarint(b, uint64(len(stream)))
	b = append(b, stream...)
	if t.ByPos {
		b = append(b, 'p')
		b = binary.AppendUvarint(b, t.Position)
	} else {
		b = append(b, 't')
		b = binary.AppendVarint(b, t.Time.UnixNano())
	}
	b = append(b, base[:]...)
	b = binary.AppendUvarint(b, from)
	b = binary.AppendUvarint(b, idx)
	b = append(b, prev[:]...)
	sum := sha256.Sum256(b)
	var c [planCheckLen]byte
	copy(c[:], sum[:])
	return c
}
