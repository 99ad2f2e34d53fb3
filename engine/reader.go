package engine

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrMissingBlob: a blob the snapshot needs is in no loaded index file.
var ErrMissingBlob = errors.New("blob missing from the index")

// blobReader reads blobs through the index, keeping the last few decoded
// frames, since neighbouring blobs usually share a frame.
type blobReader struct {
	r  *repo.Repository
	ix BlobLocator
	// damaged explains a missing blob (snapshotIndex.damaged); may be "".
	damaged string

	mu    sync.Mutex
	cache map[frameKey]*list.Element
	lru   list.List // of *cachedFrame, most recent first
	max   int
}

type frameKey struct {
	pack repo.ID
	off  uint32
}

type cachedFrame struct {
	key   frameKey
	plain []byte
}

func newBlobReader(r *repo.Repository, ix BlobLocator, cacheFrames int) *blobReader {
	return &blobReader{r: r, ix: ix, cache: map[frameKey]*list.Element{}, max: cacheFrames}
}

// readBlob returns a verified blob of the wanted type.
func (br *blobReader) readBlob(ctx context.Context, id repo.ID, want repo.BlobType) ([]byte, error) {
	e, pi, ok := br.ix.Lookup(id)
	if !ok {
		return nil, missingBlob("blob", id, br.damaged)
	}
	if e.Type != want {
		return nil, &repo.CorruptError{Object: "index", Offset: -1, Reason: fmt.Sprintf("blob %s is a %s blob, expected %s", id.Short(), e.Type, want)}
	}
	plain, err := br.frame(ctx, pi, e.Location)
	if err != nil {
		return nil, err
	}
	return extract(br.r, plain, e)
}

// extract cuts a blob out of a frame's plaintext and verifies its ID, so a
// wrong blob is never returned, whatever the index says.
func extract(r *repo.Repository, plain []byte, e repo.IndexEntry) ([]byte, error) {
	end := uint64(e.BlobOffset) + uint64(e.BlobLength)
	if end > uint64(len(plain)) {
		return nil, &repo.CorruptError{Object: "pack " + e.Pack.String(), Offset: int64(e.FrameOffset), Reason: fmt.Sprintf("blob %s runs past its frame", e.ID.Short())}
	}
	b := plain[e.BlobOffset:end]
	if r.BlobID(e.Type, b) != e.ID {
		return nil, &repo.CorruptError{Object: "pack " + e.Pack.String(), Offset: int64(e.FrameOffset), Reason: fmt.Sprintf("blob %s does not match its ID", e.ID.Short()), Hint: "run 'strata check --read-data'"}
	}
	return b, nil
}

// frame returns a frame's plaintext, from the cache or the store.
func (br *blobReader) frame(ctx context.Context, pi repo.PackInfo, loc repo.Location) ([]byte, error) {
	k := frameKey{pi.ID, loc.FrameOffset}
	br.mu.Lock()
	if el, ok := br.cache[k]; ok {
		br.lru.MoveToFront(el)
		p := el.Value.(*cachedFrame).plain
		br.mu.Unlock()
		return p, nil
	}
	br.mu.Unlock()
	plain, err := fetchFrame(ctx, br.r, pi, loc)
	if err != nil {
		return nil, err
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if _, ok := br.cache[k]; !ok && br.max > 0 {
		br.cache[k] = br.lru.PushFront(&cachedFrame{k, plain})
		if br.lru.Len() > br.max {
			old := br.lru.Remove(br.lru.Back()).(*cachedFrame)
			delete(br.cache, old.key)
		}
	}
	return plain, nil
}

// fetchFrame reads a frame by range from its data shards; when that fails
// (a shard missing, damaged or tampered with) it reads the whole pack, which
// verifies every shard and reconstructs from parity.
func fetchFrame(ctx context.Context, r *repo.Repository, pi repo.PackInfo, loc repo.Location) ([]byte, error) {
	sealed, err := r.ReadFrame(ctx, pi, loc.FrameOffset, loc.FrameLength)
	if err == nil {
		plain, oerr := r.OpenFrame(sealed, -1)
		if oerr == nil {
			return plain, nil
		}
		err = oerr
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	pack, _, perr := r.ReadPack(ctx, pi)
	if perr != nil {
		return nil, fmt.Errorf("frame at %d of pack %s: %w (after a direct read failed: %v)", loc.FrameOffset, pi.ID.Short(), perr, err)
	}
	end := uint64(loc.FrameOffset) + uint64(loc.FrameLength)
	if end > uint64(len(pack)) {
		return nil, &repo.CorruptError{Object: "pack " + pi.ID.String(), Offset: int64(loc.FrameOffset), Reason: "frame runs past the pack", Hint: "the index disagrees with the pack; run 'strata check --read-data'"}
	}
	plain, err := r.OpenFrame(pack[loc.FrameOffset:end], -1)
	if err != nil {
		return nil, &repo.CorruptError{Object: "pack " + pi.ID.String(), Offset: int64(loc.FrameOffset), Reason: "frame fails authentication after reconstruction: " + err.Error(), Hint: "the pack verified but this frame did not; the index may be wrong"}
	}
	return plain, nil
}

// errSkipSubtree, returned by walkTree's onList, skips that list blob's
// subtree: a walker that has seen the list blob has seen all under it.
var errSkipSubtree = errors.New("skip this subtree")

// walkTree visits a snapshot's blob tree depth first, calling fn for every
// data blob ID in stream order and onList for every list blob ID (when not
// nil) before reading it; onList may return errSkipSubtree.
func walkTree(ctx context.Context, br *blobReader, t repo.Tree, fn func(repo.ID) error, onList func(repo.ID) error) error {
	var walk func(ids []repo.ID, height int) error
	walk = func(ids []repo.ID, height int) error {
		for _, id := range ids {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if height == 0 {
				if err := fn(id); err != nil {
					return err
				}
				continue
			}
			if onList != nil {
				if err := onList(id); err == errSkipSubtree {
					continue
				} else if err != nil {
					return err
				}
			}
			b, err := br.readBlob(ctx, id, repo.ListBlob)
			if err != nil {
				return fmt.Errorf("list blob %s: %w", id.Short(), err)
			}
			children, err := repo.DecodeList(b)
			if err != nil {
				return &repo.CorruptError{Object: "list blob " + id.String(), Offset: -1, Reason: err.Error()}
			}
			if err := walk(children, height-1); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Height < 0 || t.Height > repo.MaxTreeHeight {
		return fmt.Errorf("tree height %d out of range", t.Height)
	}
	return walk(t.Root, t.Height)
}

// snapshotIndex is the blob index a snapshot is read through.
type snapshotIndex struct {
	*index.BlobIndex
	// damaged names the index files the snapshot names that could not be
	// read, and why; "" when every one was. A blob then missing is blamed on
	// them by name, not only on "the index".
	damaged string
}

// missing is the error for a blob the index does not locate.
func (ix *snapshotIndex) missing(what string, id repo.ID) error {
	return missingBlob(what, id, ix.damaged)
}

func missingBlob(what string, id repo.ID, damaged string) error {
	if damaged == "" {
		return fmt.Errorf("%w: %s %s", ErrMissingBlob, what, id)
	}
	return fmt.Errorf("%w: %s %s; %s", ErrMissingBlob, what, id, damaged)
}

// loadSnapshotIndex loads the index files a snapshot names, keeping entries
// keep accepts. If one is missing or damaged (since re-indexed by check
// --repair, or removed by maintenance), it falls back to every index file in
// the repository, and remembers which were damaged.
func loadSnapshotIndex(ctx context.Context, r *repo.Repository, s *repo.Snapshot, keep func(repo.IndexEntry) bool) (*snapshotIndex, error) {
	ix := index.NewBlobIndex()
	for _, id := range s.Indexes {
		f, err := r.LoadIndex(ctx, id)
		if errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrCorrupt) {
			// Repaired or re-indexed since: every index file together still
			// locates the blobs; damaged ones are skipped, and a blob that
			// is then missing fails the read by name.
			all, _, lerr := index.Load(ctx, r, keep)
			if all == nil {
				return nil, lerr
			}
			why := "is gone"
			if errors.Is(err, repo.ErrCorrupt) {
				why = "is damaged"
			}
			damaged := fmt.Sprintf("index file %s%s, which the snapshot names, %s (%v)", repo.IndexPrefix, id, why, err)
			if lerr != nil {
				damaged += fmt.Sprintf("; unreadable index files: %v", lerr)
			}
			return &snapshotIndex{BlobIndex: all, damaged: damaged + "; run 'strata check'"}, nil
		}
		if err != nil {
			return nil, err
		}
		ix.Add(f, keep)
	}
	ix.Seal()
	return &snapshotIndex{BlobIndex: ix}, nil
}
