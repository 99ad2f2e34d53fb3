package repo

import "fmt"

// A snapshot's blob list is a tree of list blobs (FORMAT.md, "Blob trees").
// Level 0 is the sequence of data blob IDs in stream order. Each level is cut
// into list blobs after an ID whose last byte is below 256>>fanoutBits (the
// IDs are keyed hashes, so that is content-defined: an edit changes only the
// list blobs around it, and unchanged runs deduplicate against the parent),
// or when a list blob reaches maxEntries IDs. The IDs of one level's list
// blobs form the next level. A level with at most maxEntries IDs that has
// never been cut is the root, kept in the snapshot itself.

// TreeBuilder builds a blob tree from a stream of data blob IDs.
type TreeBuilder struct {
	fanoutThreshold byte
	maxEntries      int
	levels          [][]ID
	emit            func(data []byte) (ID, error)
	count           int64
}

// NewTreeBuilder returns a builder that stores each list blob through emit,
// which returns the blob's ID after storing (or deduplicating) it.
func (r *Repository) NewTreeBuilder(emit func(data []byte) (ID, error)) *TreeBuilder {
	return &TreeBuilder{fanoutThreshold: byte(uint16(256) >> r.cfg.TreeFanoutBits), maxEntries: r.cfg.TreeMaxEntries, emit: emit}
}

// Add appends one data blob ID.
func (t *TreeBuilder) Add(id ID) error {
	t.count++
	return t.add(0, id)
}

func (t *TreeBuilder) add(level int, id ID) error {
	if level == len(t.levels) {
		t.levels = append(t.levels, make([]ID, 0, t.maxEntries))
	}
	t.levels[level] = append(t.levels[level], id)
	if id[IDSize-1] < t.fanoutThreshold || len(t.levels[level]) >= t.maxEntries {
		return t.flush(level)
	}
	return nil
}

func (t *TreeBuilder) flush(level int) error {
	ids := t.levels[level]
	if len(ids) == 0 {
		return nil
	}
	data := make([]byte, 0, len(ids)*IDSize)
	for _, id := range ids {
		data = append(data, id[:]...)
	}
	t.levels[level] = ids[:0]
	id, err := t.emit(data)
	if err != nil {
		return err
	}
	return t.add(level+1, id)
}

// Finish flushes what is pending and returns the root.
func (t *TreeBuilder) Finish() (Tree, error) {
	for level := 0; ; level++ {
		if level >= len(t.levels) {
			return Tree{Height: 0}, nil // empty stream
		}
		top := level == len(t.levels)-1
		if top && len(t.levels[level]) <= t.maxEntries {
			return Tree{Height: level, Root: append([]ID(nil), t.levels[level]...)}, nil
		}
		if err := t.flush(level); err != nil {
			return Tree{}, err
		}
		if level >= MaxTreeHeight {
			return Tree{}, fmt.Errorf("blob tree deeper than %d levels", MaxTreeHeight)
		}
	}
}

// Count returns how many data blob IDs were added.
func (t *TreeBuilder) Count() int64 { return t.count }

// DecodeList splits a list blob into IDs.
func DecodeList(data []byte) ([]ID, error) {
	if len(data) == 0 || len(data)%IDSize != 0 {
		return nil, fmt.Errorf("list blob of %d bytes is not a whole number of IDs", len(data))
	}
	ids := make([]ID, len(data)/IDSize)
	for i := range ids {
		copy(ids[i][:], data[i*IDSize:])
	}
	return ids, nil
}
