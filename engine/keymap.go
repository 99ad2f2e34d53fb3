package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/zstd"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Key maps (FORMAT.md §26). A backup given a KeyMapSource writes, after
// its content and before its manifest, one pack holding the key map of
// the snapshot: leaves listing every data chunk in stream order with the
// key of its first record and its location, a root listing the leaves,
// and a copy of one list blob of the snapshot's tree (the anchor). The
// anchor is what keeps the pack alive under a prune that knows nothing of
// key maps: a pack holding a blob a live snapshot reaches is referenced.
// Readers use the map only as a hint: every blob read is checked against
// its ID, and a map that cannot be read sends them back to the tree.

// DefaultKeyMapLeaf is the number of chunks a key map leaf lists: about
// 200 KB of leaf, one frame, read whole by a lookup.
const DefaultKeyMapLeaf = 4096

// ErrNoKeyMap: the snapshot names no key map.
var ErrNoKeyMap = errors.New("snapshot has no key map")

// KeyMapKey is what a KeyMapSource learned of one chunk: the key of the
// first record that starts in it and ends in it (HasKey), and whether the
// chunk begins a line (FORMAT.md §26 defines both).
type KeyMapKey struct {
	HasKey    bool
	LineStart bool
	Key       []byte
}

// KeyMapSource learns the keys of an export's chunks as a backup stores
// them. Chunk MUST be cheap: it runs on the backup's in-order stage.
type KeyMapSource interface {
	// Chunk is called with every data chunk of the export, in stream
	// order, from one goroutine; data is valid only during the call.
	Chunk(data []byte)
	// Keys is called once, after the export has been stored, and returns
	// one KeyMapKey for every chunk Chunk saw, in order, with the keys of
	// keyed chunks strictly ascending; ok is false when no key map should
	// be written (an export not sorted by its key).
	Keys() (keys []KeyMapKey, ok bool)
}

// keyMapCollector pairs a KeyMapSource with the IDs of the chunks it saw.
type keyMapCollector struct {
	src KeyMapSource
	ids []repo.ID
}

func (k *keyMapCollector) chunk(id repo.ID, data []byte) {
	k.ids = append(k.ids, id)
	k.src.Chunk(data)
}

// writeKeyMap stores the key map of the snapshot about to be written (its
// tree is snap.Tree, its blobs located by parentIndexes and c.Index) and
// returns the reference for its manifest; nil, nil when none is due (no
// source, an unsorted export, or a tree of height 0, which a reader walks
// from the manifest alone).
func writeKeyMap(ctx context.Context, r *repo.Repository, o *BackupOptions, snap *repo.Snapshot, c Content, parentIndexes []repo.ID) (*repo.KeyMapRef, int64, error) {
	km := o.keyMap
	if km == nil || !snap.Sorted || snap.Tree.Height < 1 || len(snap.Tree.Root) == 0 {
		return nil, 0, nil
	}
	keys, ok := km.src.Keys()
	if !ok {
		return nil, 0, nil
	}
	if len(keys) != len(km.ids) || int64(len(keys)) != snap.Blobs {
		return nil, 0, fmt.Errorf("%d chunk keys for %d chunks (%d in the tree)", len(keys), len(km.ids), snap.Blobs)
	}
	ix := index.NewBlobIndex()
	for _, id := range parentIndexes {
		f, err := r.LoadIndex(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		ix.Add(f, nil)
	}
	ix.Add(&c.Index, nil)
	ix.Seal()

	leafSize := o.KeyMapLeaf
	if leafSize <= 0 || leafSize > repo.MaxKeyMapLeaf {
		leafSize = DefaultKeyMapLeaf
	}
	var frames []repo.Frame
	var root repo.KeyMapRoot
	var prev []byte
	var off uint32
	add := func(t repo.BlobType, plain []byte) (repo.ID, repo.Frame, error) {
		id := r.BlobID(t, plain)
		f, err := r.SealFrame([]repo.BlobInfo{{Type: t, ID: id, Len: uint32(len(plain))}}, [][]byte{plain}, zstd.SpeedDefault)
		if err == nil {
			frames = append(frames, f)
		}
		return id, f, err
	}
	for lo := 0; lo < len(keys); lo += leafSize {
		hi := min(lo+leafSize, len(keys))
		entries := make([]repo.KeyMapEntry, hi-lo)
		ref := repo.KeyMapLeafRef{Entries: hi - lo}
		for i := lo; i < hi; i++ {
			k := keys[i]
			e, pi, ok := ix.Lookup(km.ids[i])
			if !ok || e.Type != repo.DataBlob {
				return nil, 0, fmt.Errorf("chunk %d (%s): %w", i, km.ids[i].Short(), ErrMissingBlob)
			}
			if k.HasKey {
				if len(k.Key) > repo.MaxKeyMapKey {
					k.HasKey, k.Key = false, nil
				} else if prev != nil && bytes.Compare(k.Key, prev) <= 0 {
					return nil, 0, fmt.Errorf("chunk %d: keys do not ascend", i)
				} else {
					prev = k.Key
					if !ref.HasKey {
						ref.HasKey, ref.Key = true, k.Key
					}
				}
			}
			entries[i-lo] = repo.KeyMapEntry{HasKey: k.HasKey, LineStart: k.LineStart, Key: k.Key, Pack: pi, Entry: e}
		}
		plain := repo.EncodeKeyMapLeaf(entries)
		id, f, err := add(repo.DataBlob, plain)
		if err != nil {
			return nil, 0, err
		}
		ref.ID, ref.FrameOffset, ref.FrameLength, ref.BlobLength = id, off, uint32(len(f.Sealed)), uint32(len(plain))
		off += uint32(len(f.Sealed))
		root.Leaves = append(root.Leaves, ref)
	}
	root.Blobs, root.Size = snap.Blobs, snap.Size
	rootPlain := repo.EncodeKeyMapRoot(&root)
	rootID, rootFrame, err := add(repo.DataBlob, rootPlain)
	if err != nil {
		return nil, 0, err
	}
	rootOff := off
	// The anchor: a blob of the snapshot's tree, so that a prune unaware
	// of key maps counts this pack as referenced while the snapshot lives.
	br := newBlobReader(r, ix, 1)
	anchor, err := br.readBlob(ctx, snap.Tree.Root[0], repo.ListBlob)
	if err != nil {
		return nil, 0, fmt.Errorf("anchor: %w", err)
	}
	if _, _, err := add(repo.ListBlob, bytes.Clone(anchor)); err != nil {
		return nil, 0, err
	}
	pi, pfs, err := r.StoreFrames(ctx, frames)
	if err != nil {
		return nil, 0, err
	}
	if _, err := r.SaveIndex(ctx, &repo.IndexFile{Packs: []repo.PackInfo{pi}, Entries: repo.EntriesFor(pi.ID, pfs)}); err != nil {
		return nil, 0, err
	}
	var sealed int64
	for _, f := range frames {
		sealed += int64(len(f.Sealed))
	}
	return &repo.KeyMapRef{
		Pack: pi.ID, PackLength: pi.Length, K: pi.K, M: pi.M,
		FrameOffset: rootOff, FrameLength: uint32(len(rootFrame.Sealed)), BlobLength: uint32(len(rootPlain)), ID: rootID,
	}, sealed, nil
}

// KeyMap is an opened key map: its root, read and checked against the
// snapshot. It reads leaves and chunks by their recorded locations and
// checks every blob against its ID. Not safe for concurrent use.
type KeyMap struct {
	r      *repo.Repository
	ref    repo.KeyMapRef
	root   *repo.KeyMapRoot
	starts []int64 // ordinal of each leaf's first chunk
	br     *blobReader
}

// OpenKeyMap reads the root of snap's key map. It returns ErrNoKeyMap
// when snap names none, and an error (a *repo.CorruptError when the map
// disagrees with itself or the manifest) when it cannot be used; callers
// then search the blob tree instead.
func OpenKeyMap(ctx context.Context, r *repo.Repository, snap *repo.Snapshot) (*KeyMap, error) {
	if snap.KeyMap == nil {
		return nil, ErrNoKeyMap
	}
	ref := *snap.KeyMap
	name := "key map " + ref.ID.Short()
	if err := ref.Validate(); err != nil {
		return nil, &repo.CorruptError{Object: name, Offset: -1, Reason: err.Error()}
	}
	m := &KeyMap{r: r, ref: ref, br: newBlobReader(r, nil, 4)}
	b, err := m.read(ctx, ref.PackInfo(), ref.Entry())
	if err != nil {
		return nil, fmt.Errorf("%s: root: %w", name, err)
	}
	root, err := repo.DecodeKeyMapRoot(name, b)
	if err != nil {
		return nil, err
	}
	if root.Blobs != snap.Blobs || root.Size != snap.Size {
		return nil, &repo.CorruptError{Object: name, Offset: -1, Reason: fmt.Sprintf("covers %d chunks and %d bytes, the snapshot %d and %d", root.Blobs, root.Size, snap.Blobs, snap.Size)}
	}
	var n int64
	for _, l := range root.Leaves {
		if uint64(l.FrameOffset)+uint64(l.FrameLength) > ref.PackLength || l.FrameLength == 0 {
			return nil, &repo.CorruptError{Object: name, Offset: -1, Reason: "a leaf lies outside the pack"}
		}
		m.starts = append(m.starts, n)
		n += int64(l.Entries)
	}
	m.root = root
	return m, nil
}

func (m *KeyMap) read(ctx context.Context, pi repo.PackInfo, e repo.IndexEntry) ([]byte, error) {
	plain, err := m.br.frame(ctx, pi, e.Location)
	if err != nil {
		return nil, err
	}
	return extract(m.r, plain, e)
}

// Leaves returns the number of leaves.
func (m *KeyMap) Leaves() int { return len(m.root.Leaves) }

// Root returns the decoded root.
func (m *KeyMap) Root() *repo.KeyMapRoot { return m.root }

// Leaf reads leaf i (0 ≤ i < Leaves) and checks it against the root.
func (m *KeyMap) Leaf(ctx context.Context, i int) ([]repo.KeyMapEntry, error) {
	if i < 0 || i >= len(m.root.Leaves) {
		return nil, fmt.Errorf("key map leaf %d of %d", i, len(m.root.Leaves))
	}
	l := m.root.Leaves[i]
	name := fmt.Sprintf("key map %s leaf %d", m.ref.ID.Short(), i)
	e := repo.IndexEntry{ID: l.ID, Type: repo.DataBlob, Location: repo.Location{Pack: m.ref.Pack, FrameOffset: l.FrameOffset, FrameLength: l.FrameLength, BlobLength: l.BlobLength}}
	b, err := m.read(ctx, m.ref.PackInfo(), e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	entries, err := repo.DecodeKeyMapLeaf(name, b)
	if err != nil {
		return nil, err
	}
	if len(entries) != l.Entries {
		return nil, &repo.CorruptError{Object: name, Offset: -1, Reason: fmt.Sprintf("%d entries, the root says %d", len(entries), l.Entries)}
	}
	var first []byte
	for _, e := range entries {
		if e.HasKey {
			first = e.Key
			break
		}
	}
	if (first != nil) != l.HasKey || !bytes.Equal(first, l.Key) {
		return nil, &repo.CorruptError{Object: name, Offset: -1, Reason: "its first key differs from the root's"}
	}
	return entries, nil
}

// Each calls fn with every entry of the map, in stream order.
func (m *KeyMap) Each(ctx context.Context, fn func(ordinal int64, e repo.KeyMapEntry) error) error {
	for i := range m.root.Leaves {
		entries, err := m.Leaf(ctx, i)
		if err != nil {
			return err
		}
		for j, e := range entries {
			if err := fn(m.starts[i]+int64(j), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Locator reads every leaf and returns a BlobLocator of the snapshot's
// data chunks built from them: what a reader needs to locate the chunks
// without the snapshot's index files. Each location is the map's; the
// blob reader checks every blob against its ID.
func (m *KeyMap) Locator(ctx context.Context) (BlobLocator, error) {
	loc := keyMapLocator{}
	err := m.Each(ctx, func(_ int64, e repo.KeyMapEntry) error {
		loc[e.Entry.ID] = keyMapLoc{e.Entry, e.Pack}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loc, nil
}

type keyMapLoc struct {
	e  repo.IndexEntry
	pi repo.PackInfo
}

type keyMapLocator map[repo.ID]keyMapLoc

func (l keyMapLocator) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	v, ok := l[id]
	return v.e, v.pi, ok
}

// Seek returns a cursor at the last chunk whose recorded key is ≤ key, and
// true; or at the stream's first chunk, and false, when no recorded key is.
// In an export sorted by key, a record with key starts at or after the
// cursor's recorded record (FORMAT.md §26). It reads one leaf.
func (m *KeyMap) Seek(ctx context.Context, key []byte) (*KeyMapCursor, bool, error) {
	li := lastAtOrBelow(len(m.root.Leaves), func(i int) ([]byte, bool) {
		l := m.root.Leaves[i]
		return l.Key, l.HasKey
	}, key)
	if li < 0 {
		return &KeyMapCursor{m: m}, false, nil
	}
	entries, err := m.Leaf(ctx, li)
	if err != nil {
		return nil, false, err
	}
	j := lastAtOrBelow(len(entries), func(i int) ([]byte, bool) { return entries[i].Key, entries[i].HasKey }, key)
	if j < 0 {
		return nil, false, &repo.CorruptError{Object: "key map " + m.ref.ID.Short(), Offset: -1, Reason: fmt.Sprintf("leaf %d has no key at or below its first key", li)}
	}
	return &KeyMapCursor{m: m, leaf: li, entries: entries, next: j, loaded: true}, true, nil
}

// lastAtOrBelow returns the last of n items that has a key ≤ key, or -1;
// the keys of the items that have one ascend.
func lastAtOrBelow(n int, at func(int) ([]byte, bool), key []byte) int {
	var keyed []int
	for i := range n {
		if _, ok := at(i); ok {
			keyed = append(keyed, i)
		}
	}
	p := sort.Search(len(keyed), func(i int) bool {
		k, _ := at(keyed[i])
		return bytes.Compare(k, key) > 0
	})
	if p == 0 {
		return -1
	}
	return keyed[p-1]
}

// KeyMapCursor reads a snapshot's data chunks in stream order from where
// Seek placed it, by the locations its key map records.
type KeyMapCursor struct {
	m       *KeyMap
	leaf    int
	entries []repo.KeyMapEntry
	loaded  bool
	next    int
}

// Next returns the chunk at the cursor, checked against its ID, with its
// entry, and moves past it; io.EOF after the last chunk. The chunk is
// valid until the next call.
func (c *KeyMapCursor) Next(ctx context.Context) ([]byte, repo.KeyMapEntry, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, repo.KeyMapEntry{}, err
		}
		if c.leaf >= len(c.m.root.Leaves) {
			return nil, repo.KeyMapEntry{}, io.EOF
		}
		if !c.loaded {
			entries, err := c.m.Leaf(ctx, c.leaf)
			if err != nil {
				return nil, repo.KeyMapEntry{}, err
			}
			c.entries, c.loaded = entries, true
		}
		if c.next >= len(c.entries) {
			c.leaf, c.next, c.loaded, c.entries = c.leaf+1, 0, false, nil
			continue
		}
		e := c.entries[c.next]
		c.next++
		b, err := c.m.read(ctx, e.Pack, e.Entry)
		if err != nil {
			return nil, e, fmt.Errorf("chunk %s by the key map: %w", e.Entry.ID.Short(), err)
		}
		return b, e, nil
	}
}

// markKeyMaps counts the pack of every live snapshot's key map as
// referenced. (Its anchor already does, through the tree walk; this keeps
// the map even where the anchor's blob is also stored elsewhere.)
func markKeyMaps(v *pruneView, snaps []index.SnapshotRef) {
	for _, s := range snaps {
		if s.KeyMap != nil {
			v.referenced[s.KeyMap.Pack] = true
		}
	}
}

// checkKeyMap verifies snap's key map against its tree's data blobs (ids,
// in stream order) and the index: the root and every leaf readable and
// consistent, one entry per chunk with the chunk's ID, and each location
// the index's or, where they differ, one that holds the blob. It returns
// the problems found.
func checkKeyMap(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, ids []repo.ID, loc BlobLocator) []string {
	label := fmt.Sprintf("snapshot %s (%s): key map", snap.ID.Short(), snap.Stream)
	km, err := OpenKeyMap(ctx, r, snap.Snapshot)
	if err != nil {
		return []string{fmt.Sprintf("%s unusable (readers search the blob tree instead): %v", label, err)}
	}
	var problems []string
	bad := 0
	br := newBlobReader(r, nil, 4)
	err = km.Each(ctx, func(i int64, e repo.KeyMapEntry) error {
		switch {
		case i >= int64(len(ids)):
			return fmt.Errorf("more entries than the tree's %d chunks", len(ids))
		case e.Entry.ID != ids[i]:
			return fmt.Errorf("entry %d names %s, the tree %s", i, e.Entry.ID.Short(), ids[i].Short())
		}
		if ie, pi, ok := loc.Lookup(e.Entry.ID); ok && ie.Location == e.Entry.Location && pi == e.Pack {
			return nil
		}
		// Another copy than the index's: read it.
		plain, err := br.frame(ctx, e.Pack, e.Entry.Location)
		if err == nil {
			_, err = extract(r, plain, e.Entry)
		}
		if err != nil {
			if bad == 0 {
				problems = append(problems, fmt.Sprintf("%s: entry %d (%s): its location does not hold the chunk: %v", label, i, e.Entry.ID.Short(), err))
			}
			bad++
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return append(problems, fmt.Sprintf("%s unusable (readers search the blob tree instead): %v", label, err))
	}
	if bad > 1 {
		problems = append(problems, fmt.Sprintf("%s: %d entries in all whose locations do not hold their chunks", label, bad))
	}
	return problems
}
