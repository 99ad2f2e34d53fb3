package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Layout of a base snapshot's export (FORMAT.md section 20): a text header,
// then the RDB byte for byte as the master sent it.
//
//	"strata-redis-base 1\n" "replid " <40 bytes> "\n" "offset " <decimal> "\n" "\n" <RDB>
const (
	baseMagic     = "strata-redis-base 1\n"
	maxBaseHeader = 256
)

// Base is where a base snapshot's RDB is consistent: the master's
// replication ID and offset.
type Base struct {
	ReplID string
	Offset int64
}

// AppendBaseHeader appends the export header of a base at b.
func AppendBaseHeader(dst []byte, b Base) []byte {
	dst = append(dst, baseMagic...)
	dst = append(dst, "replid "...)
	dst = append(dst, b.ReplID...)
	dst = append(dst, "\noffset "...)
	dst = strconv.AppendInt(dst, b.Offset, 10)
	return append(dst, "\n\n"...)
}

// ErrNotBase is wrapped when a snapshot's export is not a Redis base.
var ErrNotBase = errors.New("not a redis base snapshot")

// ParseBaseHeader parses the header at the start of p and returns the base
// and the header's length; the RDB begins there.
func ParseBaseHeader(p []byte) (Base, int, error) {
	var b Base
	p = p[:min(len(p), maxBaseHeader)]
	end := -1
	if bytes.HasPrefix(p, []byte(baseMagic)) {
		end = bytes.Index(p[len(baseMagic)-1:], []byte("\n\n"))
		end += len(baseMagic) - 1
	}
	if end < len(baseMagic) {
		return b, 0, fmt.Errorf("%w: the export does not begin with a %q header", ErrNotBase, baseMagic[:len(baseMagic)-1])
	}
	lines := bytes.Split(p[len(baseMagic):end], []byte("\n"))
	if len(lines) != 2 {
		return b, 0, fmt.Errorf("%w: the header has %d fields, want 2", ErrNotBase, len(lines))
	}
	id, ok1 := bytes.CutPrefix(lines[0], []byte("replid "))
	off, ok2 := bytes.CutPrefix(lines[1], []byte("offset "))
	n, ok3 := parseInt(off)
	if !ok1 || !ok2 || !ok3 || n < 0 || !validReplID(string(id)) {
		return b, 0, fmt.Errorf("%w: bad header fields", ErrNotBase)
	}
	return Base{ReplID: string(id), Offset: n}, end + 2, nil
}

// errEnough stops a restore once the header has been read.
var errEnough = errors.New("header read")

type headWriter struct{ b []byte }

func (w *headWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p[:min(len(p), maxBaseHeader-len(w.b))]...)
	if len(w.b) >= maxBaseHeader {
		return 0, errEnough
	}
	return len(p), nil
}

// ReadBase reads the header of a base snapshot from the repository. It
// returns the base and the header's length.
func ReadBase(ctx context.Context, r *repo.Repository, s index.SnapshotRef) (Base, int, error) {
	if s.Format != engine.FormatRaw {
		return Base{}, 0, fmt.Errorf("snapshot %s: %w: a %s export", s.ID.Short(), ErrNotBase, s.Format)
	}
	var w headWriter
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := engine.Restore(ctx, r, s, &w, engine.RestoreOptions{Workers: 1}); err != nil && !errors.Is(err, errEnough) {
		return Base{}, 0, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	b, n, err := ParseBaseHeader(w.b)
	if err != nil {
		return Base{}, 0, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	return b, n, nil
}
