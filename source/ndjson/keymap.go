package ndjson

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// Key maps (FORMAT.md §26): a backup of a sorted export records, for each
// chunk, the key of the first record that starts and ends in it; get,
// history, diff and restore --key-prefix then find the chunk where a key
// may start from the map's root and one leaf, instead of the snapshot's
// index files and a search down its blob tree.

// chunkFirstKey returns the key of the first non-blank line that starts in
// chunk and ends in it, and that line's offset. A line starts at the
// chunk's first byte when lineStart says the chunk begins a line, else
// after its first newline. ok is false when there is none, or its key
// cannot be read or is longer than repo.MaxKeyMapKey.
func chunkFirstKey(chunk []byte, lineStart bool, field string) (key []byte, off int, ok bool) {
	if !lineStart {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			return nil, 0, false
		}
		off = i + 1
	}
	for off < len(chunk) {
		n := bytes.IndexByte(chunk[off:], '\n')
		if n < 0 {
			return nil, 0, false
		}
		line := bytes.TrimSuffix(chunk[off:off+n], []byte("\r"))
		if len(bytes.TrimSpace(line)) > 0 {
			k, err := KeyOf(line, field)
			if err != nil || len(k) > repo.MaxKeyMapKey {
				return nil, 0, false
			}
			return k, off, true
		}
		off += n + 1
	}
	return nil, 0, false
}

// KeyMapSource returns the engine.KeyMapSource of an export keyed by
// field, for engine.BackupOptions.KeyMap: it records each chunk's first
// key, and asks for no key map when the keys it saw do not strictly ascend
// (the snapshot's own sortedness, from Describe, decides as well).
func KeyMapSource(field string) engine.KeyMapSource {
	if field == "" {
		field = DefaultKeyField
	}
	return &keyMapSource{field: field, sorted: true, lineStart: true}
}

type keyMapSource struct {
	field     string
	lineStart bool // the next chunk begins a line
	sorted    bool
	prev      []byte
	keys      []engine.KeyMapKey
}

func (s *keyMapSource) Chunk(data []byte) {
	k := engine.KeyMapKey{LineStart: s.lineStart}
	if key, _, ok := chunkFirstKey(data, s.lineStart, s.field); ok && s.sorted {
		if s.prev != nil && bytes.Compare(key, s.prev) <= 0 {
			s.sorted = false
		}
		k.HasKey, k.Key = true, bytes.Clone(key)
		s.prev = k.Key
	}
	s.lineStart = len(data) > 0 && data[len(data)-1] == '\n' || len(data) == 0 && s.lineStart
	if s.sorted {
		s.keys = append(s.keys, k)
	}
}

func (s *keyMapSource) Keys() ([]engine.KeyMapKey, bool) {
	if !s.sorted {
		return nil, false
	}
	return s.keys, true
}

// errKeyMapDisagrees: a chunk's first record does not have the key the
// map records for it.
var errKeyMapDisagrees = errors.New("key map disagrees with the chunk it names")

// seekKeyMap returns a reader of the base export from a whole record at or
// before every document with a key ≥ key, found through the snapshot's
// key map. Any error means the map cannot be used (none, unreadable, or
// disagreeing with the data): the caller searches the blob tree.
func (b *baseReader) seekKeyMap(ctx context.Context, key []byte) (io.Reader, error) {
	if b.km == nil {
		km, err := engine.OpenKeyMap(ctx, b.r, b.snap.Snapshot)
		if err != nil {
			return nil, err
		}
		b.km = km // kept for the next lookups (diff's), with its few cached frames
	}
	c, exact, err := b.km.Seek(ctx, key)
	if err != nil {
		return nil, err
	}
	chunk, e, err := c.Next(ctx)
	if err == io.EOF {
		return bytes.NewReader(nil), nil // an empty export
	}
	if err != nil {
		return nil, err
	}
	off := 0
	if exact {
		k, o, ok := chunkFirstKey(chunk, e.LineStart, b.field)
		if !ok || !bytes.Equal(k, e.Key) {
			return nil, &repo.CorruptError{Object: "snapshot " + b.snap.ID.String(), Offset: -1, Reason: fmt.Sprintf("chunk %s: %v", e.Entry.ID.Short(), errKeyMapDisagrees), Hint: "run 'strata check'"}
		}
		off = o
	}
	return io.MultiReader(bytes.NewReader(chunk[off:]), &keyMapReader{ctx: ctx, c: c}), nil
}

// keyMapReader reads the chunks after the first from a key map cursor.
type keyMapReader struct {
	ctx context.Context
	c   *engine.KeyMapCursor
	buf []byte
}

func (r *keyMapReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, _, err := r.c.Next(r.ctx)
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
