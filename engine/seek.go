package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// SnapshotReader reads chosen data blobs of one snapshot: it loads the
// snapshot's index files, then reads only the list blobs and frames that a
// search or a cursor touches, so a lookup in an ordered export costs a few
// frames rather than the export.
type SnapshotReader struct {
	r     *repo.Repository
	snap  index.SnapshotRef
	br    *blobReader
	ix    *index.BlobIndex
	first map[repo.ID]repo.ID // list blob → the first data blob under it

	longestOnce sync.Once
	longest     uint32
}

// OpenSnapshot loads the index files snap names (falling back to every
// index file, as a restore does).
func OpenSnapshot(ctx context.Context, r *repo.Repository, snap index.SnapshotRef) (*SnapshotReader, error) {
	if h := snap.Tree.Height; h < 0 || h > repo.MaxTreeHeight {
		return nil, &repo.CorruptError{Object: "snapshot " + snap.ID.String(), Offset: -1, Reason: fmt.Sprintf("tree height %d out of range", h)}
	}
	ix, err := loadSnapshotIndex(ctx, r, snap.Snapshot, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: load index: %w", snap.ID.Short(), err)
	}
	br := newBlobReader(r, ix.BlobIndex, 16)
	br.damaged = ix.damaged
	return &SnapshotReader{r: r, snap: snap, br: br, ix: ix.BlobIndex, first: map[repo.ID]repo.ID{}}, nil
}

// level is one node of a cursor's path: the IDs of a list blob (or the
// root) and the position in them.
type level struct {
	ids    []repo.ID
	i      int
	height int
}

// Cursor walks a snapshot's data blobs in stream order from where it was
// placed. It is not safe for concurrent use.
type Cursor struct {
	s    *SnapshotReader
	path []level
}

// Start returns a cursor at the first data blob.
func (s *SnapshotReader) Start() *Cursor {
	return &Cursor{s: s, path: []level{{ids: s.snap.Tree.Root, height: s.snap.Tree.Height}}}
}

// Seek returns a cursor at the last data blob b for which atOrBefore(b) is
// true, or at the first blob when it is true of none. atOrBefore MUST be
// monotone along the stream (true up to some blob, false after it), as
// "the blob's first record key ≤ K" is in an export sorted by key; Seek
// calls it on O(height × log fan-out) blobs, each read and verified.
func (s *SnapshotReader) Seek(ctx context.Context, atOrBefore func(blob []byte) (bool, error)) (*Cursor, error) {
	c := &Cursor{s: s}
	ids, h := s.snap.Tree.Root, s.snap.Tree.Height
	for {
		// The last child whose first data blob satisfies atOrBefore.
		lo, hi := 0, len(ids) // the answer is the last true in [0, hi)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			blob, err := s.firstBlob(ctx, ids[mid], h)
			if err != nil {
				return nil, err
			}
			ok, err := atOrBefore(blob)
			if err != nil {
				return nil, err
			}
			if ok {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		i := max(lo-1, 0)
		c.path = append(c.path, level{ids: ids, i: i, height: h})
		if h == 0 || len(ids) == 0 {
			return c, nil
		}
		children, err := s.list(ctx, ids[i])
		if err != nil {
			return nil, err
		}
		ids, h = children, h-1
	}
}

// firstBlob returns the first data blob under id, a blob at height h.
func (s *SnapshotReader) firstBlob(ctx context.Context, id repo.ID, h int) ([]byte, error) {
	var lists []repo.ID
	for ; h > 0; h-- {
		if d, ok := s.first[id]; ok {
			id = d
			break
		}
		lists = append(lists, id)
		children, err := s.list(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(children) == 0 {
			return nil, &repo.CorruptError{Object: "list blob " + id.String(), Offset: -1, Reason: "empty list blob"}
		}
		id = children[0]
	}
	for _, l := range lists {
		s.first[l] = id
	}
	return s.br.readBlob(ctx, id, repo.DataBlob)
}

func (s *SnapshotReader) list(ctx context.Context, id repo.ID) ([]repo.ID, error) {
	b, err := s.br.readBlob(ctx, id, repo.ListBlob)
	if err != nil {
		return nil, fmt.Errorf("list blob %s: %w", id.Short(), err)
	}
	children, err := repo.DecodeList(b)
	if err != nil {
		return nil, &repo.CorruptError{Object: "list blob " + id.String(), Offset: -1, Reason: err.Error()}
	}
	return children, nil
}

// Next returns the data blob at the cursor, verified, and moves past it; at
// the end of the stream it returns io.EOF. The blob is valid until the next
// call.
func (c *Cursor) Next(ctx context.Context) ([]byte, error) {
	for len(c.path) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		top := &c.path[len(c.path)-1]
		if top.i >= len(top.ids) {
			c.path = c.path[:len(c.path)-1]
			if n := len(c.path); n > 0 {
				c.path[n-1].i++
			}
			continue
		}
		id := top.ids[top.i]
		if top.height == 0 {
			top.i++
			return c.s.br.readBlob(ctx, id, repo.DataBlob)
		}
		children, err := c.s.list(ctx, id)
		if err != nil {
			return nil, err
		}
		c.path = append(c.path, level{ids: children, height: top.height - 1})
	}
	return nil, io.EOF
}

// Reader returns the stream from the cursor on as an io.Reader.
func (c *Cursor) Reader(ctx context.Context) io.Reader { return &cursorReader{ctx: ctx, c: c} }

type cursorReader struct {
	ctx context.Context
	c   *Cursor
	buf []byte
}

func (r *cursorReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.c.Next(r.ctx)
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// AtStart reports whether the cursor is at the stream's first data blob.
func (c *Cursor) AtStart() bool {
	for _, l := range c.path {
		if l.i != 0 {
			return false
		}
	}
	return true
}

// LongestDataBlob returns the length of the longest data blob the loaded
// index files locate (those of the snapshot's history, not only its own).
// A record-mode chunk as long as the config's record_max_size may have been
// cut inside a record (FORMAT.md §5.2); when none is, every chunk starts at
// a record boundary.
func (s *SnapshotReader) LongestDataBlob() uint32 {
	s.longestOnce.Do(func() {
		s.ix.Each(func(e repo.IndexEntry, _ repo.PackInfo) {
			if e.Type == repo.DataBlob {
				s.longest = max(s.longest, e.BlobLength)
			}
		})
	})
	return s.longest
}

// SnapshotHasPrefix reports whether snap's content starts with prefix,
// reading only the first blobs: how a source tells its own exports (a
// base header, a database's snapshot magic) from others in one stream.
func SnapshotHasPrefix(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, prefix []byte) (bool, error) {
	sr, err := OpenSnapshot(ctx, r, snap)
	if err != nil {
		return false, err
	}
	var head []byte
	c := sr.Start()
	for len(head) < len(prefix) {
		b, err := c.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
		head = append(head, b...)
	}
	return bytes.HasPrefix(head, prefix), nil
}
