package ndjson

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Record-level reads: one document at an instant (Get), every version of
// one document (History), the keys that differ between two instants
// (Diff), and part of a stream (RestoreSelected). Each reads the plan's log
// segments, and of the base snapshot only what it needs: in an export
// sorted by key, a key is found by a binary search over the record-aligned
// chunks (engine.SnapshotReader.Seek), a few frames instead of the export.

// Version is one state of a document: the base snapshot's (Op "snapshot")
// or one change event's.
type Version struct {
	Time     time.Time
	Position uint64 // the event's position, or the snapshot's (0 when it has none)
	Op       string // "snapshot", "put" or "delete"
	Doc      []byte // nil for a delete
}

// Op values of a Version.
const (
	OpSnapshot = "snapshot"
	OpPut      = "put"
	OpDelete   = "delete"
)

// GetResult is a document at an instant.
type GetResult struct {
	Found   bool
	Doc     []byte
	Version Version // what gave the document its state: the last event on it, or the base
}

func checkBase(b index.SnapshotRef) (field string, err error) {
	if b.Format != engine.FormatNDJSON {
		return "", fmt.Errorf("%w: snapshot %s is a %s export; record-level reads need an ndjson export", index.ErrNotRestorable, b.ID.Short(), b.Format)
	}
	if b.KeyField == "" {
		return DefaultKeyField, nil
	}
	return b.KeyField, nil
}

func baseVersion(b index.SnapshotRef, doc []byte) Version {
	v := Version{Time: b.Time, Op: OpSnapshot, Doc: doc}
	if b.Position != nil {
		v.Position = *b.Position
	}
	return v
}

func eventVersion(e *repo.Event) Version {
	v := Version{Time: time.Unix(0, e.Time).UTC(), Position: e.Seq, Op: OpPut, Doc: bytes.Clone(e.Value)}
	if e.Op == repo.OpDelete {
		v.Op, v.Doc = OpDelete, nil
	}
	return v
}

// eachEvent reads and verifies every segment of p and calls fn with each
// event p applies. All manifests are checked (chain included) first.
func eachEvent(ctx context.Context, r *repo.Repository, p *index.Plan, fn func(*repo.Event) error) error {
	return eachEventOf(ctx, r, p, nil, fn)
}

// eachEventOf is eachEvent that, given a key, skips the segments whose key
// filter (FORMAT.md §15.1) says no event of theirs touches it: fn then
// sees every event on key, and perhaps others.
func eachEventOf(ctx context.Context, r *repo.Repository, p *index.Plan, key []byte, fn func(*repo.Event) error) error {
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		if key != nil && !seg.KeyFilter.MayContain(key) {
			continue
		}
		err := engine.ReadSegment(ctx, r, p.Segments[i], seg, func(e *repo.Event) error {
			if !p.Applies(e.Seq, e.Time) {
				return nil
			}
			return fn(e)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Get returns the document with key as it was at p's target: the last event
// on it that the plan applies, else the base snapshot's line with that key.
// The base is read only when no event decides.
func Get(ctx context.Context, r *repo.Repository, p *index.Plan, key []byte) (GetResult, error) {
	if _, err := checkBase(p.Base); err != nil {
		return GetResult{}, err
	}
	var last *Version
	err := eachEventOf(ctx, r, p, key, func(e *repo.Event) error {
		if bytes.Equal(e.Key, key) {
			v := eventVersion(e)
			last = &v
		}
		return nil
	})
	if err != nil {
		return GetResult{}, err
	}
	if last != nil {
		return GetResult{Found: last.Op == OpPut, Doc: last.Doc, Version: *last}, nil
	}
	b, err := newBaseReader(ctx, r, p.Base)
	if err != nil {
		return GetResult{}, err
	}
	doc, ok, err := b.lookup(ctx, key)
	if err != nil || !ok {
		return GetResult{}, err
	}
	return GetResult{Found: true, Doc: doc, Version: baseVersion(p.Base, doc)}, nil
}

// History returns the versions of the document with key from since through
// p's target: first the version in effect at since (the base's, or the
// event that made it; none when the document did not exist and no event
// touched it), then every event on it with a time at or after since, in
// order. A zero since starts at the base.
func History(ctx context.Context, r *repo.Repository, p *index.Plan, key []byte, since time.Time) ([]Version, error) {
	if _, err := checkBase(p.Base); err != nil {
		return nil, err
	}
	var before *Version // the version in effect just before since, from events
	var after []Version
	err := eachEventOf(ctx, r, p, key, func(e *repo.Event) error {
		if !bytes.Equal(e.Key, key) {
			return nil
		}
		v := eventVersion(e)
		if !since.IsZero() && v.Time.Before(since) {
			before = &v
		} else {
			after = append(after, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if before != nil {
		return append([]Version{*before}, after...), nil
	}
	b, err := newBaseReader(ctx, r, p.Base)
	if err != nil {
		return nil, err
	}
	doc, ok, err := b.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	if ok {
		return append([]Version{baseVersion(p.Base, doc)}, after...), nil
	}
	return after, nil
}

// baseReader looks keys up in one base snapshot: through its key map when
// it has a usable one, else through its index files and blob tree, which
// are loaded only then.
type baseReader struct {
	r     *repo.Repository
	snap  index.SnapshotRef
	field string
	sr    *engine.SnapshotReader // nil until the tree is needed

	km        *engine.KeyMap // opened on first use
	noKeyMap  bool           // the key map is missing or failed once: use the tree
	keyMapErr error          // why a key map the snapshot names was not used
}

func newBaseReader(ctx context.Context, r *repo.Repository, snap index.SnapshotRef) (*baseReader, error) {
	field, err := checkBase(snap)
	if err != nil {
		return nil, err
	}
	return &baseReader{r: r, snap: snap, field: field, noKeyMap: snap.KeyMap == nil || !snap.Sorted}, nil
}

// tree returns the snapshot's reader, opening it (loading its index
// files) on first use.
func (b *baseReader) tree(ctx context.Context) (*engine.SnapshotReader, error) {
	if b.sr == nil {
		sr, err := engine.OpenSnapshot(ctx, b.r, b.snap)
		if err != nil {
			return nil, err
		}
		b.sr = sr
	}
	return b.sr, nil
}

// errNoRecordStart: a chunk holds no whole record (the middle of a record
// longer than the largest chunk), so a search cannot place it.
var errNoRecordStart = errors.New("chunk holds no record start")

// firstKey returns the key of the first record that certainly starts in a
// chunk of a sorted export. When whole says every chunk starts at a record
// boundary, that is the chunk's first line. Otherwise the first line may be
// the tail of a record cut at the largest chunk size, and KeyOf, which
// stops at the key, could read a key out of a nested object in it: the
// first line after a newline is taken instead.
func firstKey(chunk []byte, field string, whole bool) ([]byte, error) {
	if !whole {
		_, rest, ok := bytes.Cut(chunk, []byte("\n"))
		if !ok {
			return nil, errNoRecordStart
		}
		chunk = rest
	}
	line, _, ok := bytes.Cut(chunk, []byte("\n"))
	if !ok && !whole {
		// A line the chunk does not end may be a record cut at the largest
		// chunk size; its key may still be whole, but nothing says so.
		return nil, errNoRecordStart
	}
	k, err := KeyOf(bytes.TrimRight(line, "\r"), field)
	if err != nil {
		return nil, errNoRecordStart
	}
	return k, nil
}

// seek returns a reader of the export from a chunk before every document
// with a key ≥ key, and whether it starts at the export's beginning. Away
// from the beginning, the reader's first line is never such a document: it
// is the tail of a record begun earlier, or a document with a smaller key,
// and the caller skips it. Unsorted exports, and sorted ones with a chunk no
// document certainly starts in, are read from the beginning.
func (b *baseReader) seek(ctx context.Context, key []byte) (io.Reader, bool, error) {
	if !b.noKeyMap {
		// The key map's reader starts at a whole record: nothing to skip.
		rd, err := b.seekKeyMap(ctx, key)
		if err == nil {
			return rd, true, nil
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		b.noKeyMap, b.keyMapErr = true, err
	}
	sr, err := b.tree(ctx)
	if err != nil {
		return nil, false, err
	}
	if !b.snap.Sorted {
		return sr.Start().Reader(ctx), true, nil
	}
	whole := int64(sr.LongestDataBlob()) < int64(b.r.Config().RecordMaxSize)
	// The last chunk whose first key is below key: every document with a
	// key ≥ key starts after that chunk's first line.
	c, err := sr.Seek(ctx, func(chunk []byte) (bool, error) {
		k, err := firstKey(chunk, b.field, whole)
		if err != nil {
			return false, err
		}
		return bytes.Compare(k, key) < 0, nil
	})
	if errors.Is(err, errNoRecordStart) {
		return sr.Start().Reader(ctx), true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return c.Reader(ctx), c.AtStart(), nil
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// scan calls fn with the key and line of every document from the chunk
// where key may start on; fn returns errStop to end it. In a sorted export
// the keys it sees ascend.
func (b *baseReader) scan(ctx context.Context, from []byte, fn func(key, line []byte) error) error {
	src, atStart, err := b.seek(ctx, from)
	if err != nil {
		return err
	}
	lineNo := 0
	err = eachLine(src, func(line []byte) error {
		lineNo++
		if lineNo == 1 && !atStart {
			return nil // a record begun in an earlier chunk, or one with a smaller key
		}
		k, err := KeyOf(line, b.field)
		if err != nil {
			return &repo.CorruptError{Object: "snapshot " + b.snap.ID.String(), Offset: -1, Reason: fmt.Sprintf("line %d after the sought chunk: %v", lineNo, err)}
		}
		return fn(k, line)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// lookup returns the base's document with key. In an unsorted export the
// last line with the key wins, as in a restore.
func (b *baseReader) lookup(ctx context.Context, key []byte) ([]byte, bool, error) {
	viaMap := !b.noKeyMap
	doc, found, err := b.lookupOnce(ctx, key)
	if err != nil && viaMap && ctx.Err() == nil {
		// The key map led to a chunk that could not be read: a lookup has
		// emitted nothing, so it starts again from the blob tree.
		b.noKeyMap, b.keyMapErr = true, err
		return b.lookupOnce(ctx, key)
	}
	return doc, found, err
}

func (b *baseReader) lookupOnce(ctx context.Context, key []byte) ([]byte, bool, error) {
	var doc []byte
	found := false
	err := b.scan(ctx, key, func(k, line []byte) error {
		c := bytes.Compare(k, key)
		switch {
		case c == 0:
			doc, found = bytes.Clone(line), true
			if b.snap.Sorted {
				return errStop
			}
		case c > 0 && b.snap.Sorted:
			return errStop
		}
		return nil
	})
	return doc, found, err
}
