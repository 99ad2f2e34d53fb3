package ndjson

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// A point-in-time restore folds a day of events into a set of changes and
// merges them into the base snapshot in key order. Held whole, that set is
// every changed document in memory (and an unsorted export is every
// document). Past a bound the set is written out instead, as runs sorted by
// key to a temporary file, and read back by a k-way merge in which a later
// run wins a key: an external sort whose memory is the bound plus a read
// buffer per run, whatever the size of the day.

// DefaultSpillBytes is the changes a point-in-time restore holds in memory
// before it spills them to a temporary file.
const DefaultSpillBytes = 8 << 20

// entryOverhead approximates the memory of one map entry beyond its key
// and document bytes (the map slot, the string and slice headers).
const entryOverhead = 64

// spill is the on-disk part of a Changes: runs in one temporary file.
type spill struct {
	dir  string // "" for os.TempDir
	f    *os.File
	w    *bufio.Writer
	size int64
	runs [][2]int64 // [start, end) of each run, oldest first
	// unlinked: the file's name was removed when it was made.
	unlinked bool
}

// NewSpillingChanges returns an empty set of changes that spills to a
// temporary file in dir ("" for the system's) once it holds more than
// bound bytes. Only Merge and MergeUnsorted read a spilled set; call Close
// to remove the file.
func NewSpillingChanges(dir string, bound int) *Changes {
	return &Changes{m: map[string][]byte{}, bound: bound, spill: &spill{dir: dir}}
}

// Close removes the temporary file of a spilled set; a set that never
// spilled has none.
func (c *Changes) Close() error {
	if c.spill == nil {
		return nil
	}
	return c.spill.remove()
}

// open creates the temporary file (named by pattern, as os.CreateTemp
// takes it) unless it exists.
func (s *spill) open(pattern string) error {
	if s.f != nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, pattern)
	if err != nil {
		return err
	}
	// Unlinked at once where the system allows it (the open file stays
	// usable): a process killed, or a backup abandoned before its reader
	// ends, then leaves no file behind.
	s.unlinked = os.Remove(f.Name()) == nil
	s.f, s.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// endRun ends the run that began at offset start (s.size when it began),
// whose bytes were written through s.w and counted into s.size.
func (s *spill) endRun(start int64) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.runs = append(s.runs, [2]int64{start, s.size})
	return nil
}

// readers returns a reader of each run, oldest first, each buffering
// bufSize bytes.
func (s *spill) readers(bufSize int) []*bufio.Reader {
	out := make([]*bufio.Reader, len(s.runs))
	for i, r := range s.runs {
		out[i] = bufio.NewReaderSize(io.NewSectionReader(s.f, r[0], r[1]-r[0]), bufSize)
	}
	return out
}

// remove closes and removes the temporary file, if one was made.
func (s *spill) remove() error {
	if s.f == nil {
		return nil
	}
	name, unlinked := s.f.Name(), s.unlinked
	err := s.f.Close()
	s.f, s.w, s.runs, s.size, s.unlinked = nil, nil, nil, 0, false
	if !unlinked {
		err = errors.Join(err, os.Remove(name))
	}
	return err
}

// account counts a put or delete of key into the bytes held, replacing old
// (present: whether the key was held already), and spills past the bound.
func (c *Changes) account(key string, old []byte, present bool, doc []byte) {
	if c.spill == nil {
		return
	}
	if present {
		c.held -= len(key) + len(old) + entryOverhead
	}
	c.held += len(key) + len(doc) + entryOverhead
	if c.held > c.bound && c.err == nil {
		c.err = c.spillRun()
	}
}

// spillRun writes the held changes, sorted by key, as one run. Record:
// uvarint key length, key, then 0 (deleted) or 1 + uvarint length + doc.
func (c *Changes) spillRun() error {
	s := c.spill
	if err := s.open("strata-changes-*"); err != nil {
		return fmt.Errorf("spill changes: %w", err)
	}
	start := s.size
	var hdr [2*binary.MaxVarintLen64 + 1]byte
	for _, ch := range c.sortedHeld() {
		n := binary.PutUvarint(hdr[:], uint64(len(ch.key)))
		s.w.Write(hdr[:n])
		s.w.WriteString(ch.key)
		if ch.doc == nil {
			s.w.WriteByte(0)
			s.size += int64(n + len(ch.key) + 1)
			continue
		}
		hdr[0] = 1
		m := binary.PutUvarint(hdr[1:], uint64(len(ch.doc)))
		s.w.Write(hdr[:1+m])
		s.w.Write(ch.doc)
		s.size += int64(n + len(ch.key) + 1 + m + len(ch.doc))
	}
	if err := s.endRun(start); err != nil {
		return fmt.Errorf("spill changes: %w", err)
	}
	clear(c.m)
	c.m = map[string][]byte{} // the old map's buckets are garbage now
	c.held = 0
	return nil
}

// sortedHeld returns the changes held in memory, sorted by key.
func (c *Changes) sortedHeld() []change {
	out := make([]change, 0, len(c.m))
	for k, v := range c.m {
		out = append(out, change{k, v})
	}
	slices.SortFunc(out, func(a, b change) int { return strings.Compare(a.key, b.key) })
	return out
}

// runRecord is a record of a spilled run: compare orders records, and a
// run holds them in strictly ascending order.
type runRecord[T any] interface {
	compare(T) int
}

// recordSource yields records in strictly ascending order.
type recordSource[T any] interface {
	next() (T, bool, error)
}

// changeSource yields changes in strictly ascending key order.
type changeSource = recordSource[change]

func (c change) compare(o change) int { return strings.Compare(c.key, o.key) }

// sliceSource yields a sorted slice.
type sliceSource[T any] struct {
	ch []T
	i  int
}

func (h *sliceSource[T]) next() (T, bool, error) {
	if h.i == len(h.ch) {
		var zero T
		return zero, false, nil
	}
	h.i++
	return h.ch[h.i-1], true, nil
}

// heldSource yields the sorted changes held in memory.
type heldSource = sliceSource[change]

// runSource reads one spilled run.
type runSource struct {
	r    *bufio.Reader
	name string
}

func (s *runSource) next() (change, bool, error) {
	klen, err := binary.ReadUvarint(s.r)
	if err == io.EOF {
		return change{}, false, nil
	}
	if err != nil {
		return change{}, false, s.bad(err)
	}
	if klen > maxSpillRecord {
		return change{}, false, s.bad(fmt.Errorf("key of %d bytes", klen))
	}
	key, err := readN(s.r, klen)
	if err != nil {
		return change{}, false, s.bad(err)
	}
	flag, err := s.r.ReadByte()
	if err != nil {
		return change{}, false, s.bad(err)
	}
	switch flag {
	case 0:
		return change{key: string(key)}, true, nil
	case 1:
	default:
		return change{}, false, s.bad(fmt.Errorf("flag %d", flag))
	}
	dlen, err := binary.ReadUvarint(s.r)
	if err != nil || dlen > maxSpillRecord {
		return change{}, false, s.bad(fmt.Errorf("document length %d: %v", dlen, err))
	}
	doc, err := readN(s.r, dlen)
	if err != nil {
		return change{}, false, s.bad(err)
	}
	return change{key: string(key), doc: doc}, true, nil
}

// readN reads n bytes, allocating as they arrive past 64 KiB, so a length
// that lies (a damaged run) costs what the file holds, not what it claims.
func readN(r io.Reader, n uint64) ([]byte, error) {
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var b bytes.Buffer
	if _, err := io.CopyN(&b, r, int64(n)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// maxSpillRecord bounds a key or document read back from a run; the runs
// are this process's own file, so a larger one means it was changed under us.
const maxSpillRecord = 1 << 30

func (s *runSource) bad(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read spilled changes %s: %w", s.name, err)
}

// mergeRuns merges sources (oldest first) into one ascending stream in
// which, for a record several hold (compare says equal), the newest
// source's wins and the others are skipped.
type mergeRuns[T runRecord[T]] struct {
	src  []recordSource[T]
	head []T
	ok   []bool
	init bool
}

// mergeSource merges changes: a later run wins a key.
type mergeSource = mergeRuns[change]

func (m *mergeRuns[T]) next() (T, bool, error) {
	var zero T
	if !m.init {
		m.init = true
		m.head = make([]T, len(m.src))
		m.ok = make([]bool, len(m.src))
		for i := range m.src {
			if err := m.advance(i); err != nil {
				return zero, false, err
			}
		}
	}
	best := -1
	for i := range m.src {
		if m.ok[i] && (best < 0 || m.head[i].compare(m.head[best]) <= 0) {
			best = i // on equal records the later (newer) source wins
		}
	}
	if best < 0 {
		return zero, false, nil
	}
	out := m.head[best]
	for i := range m.src {
		if m.ok[i] && m.head[i].compare(out) == 0 {
			if err := m.advance(i); err != nil {
				return zero, false, err
			}
		}
	}
	return out, true, nil
}

func (m *mergeRuns[T]) advance(i int) error {
	c, ok, err := m.src[i].next()
	if err != nil {
		return err
	}
	if ok && m.ok[i] && c.compare(m.head[i]) <= 0 {
		return errors.New("spilled run out of order (the temporary file changed under us)")
	}
	m.head[i], m.ok[i] = c, ok
	return nil
}

// source returns the changes in ascending key order, merged from the runs
// spilled and what is held, or the error a spill met.
func (c *Changes) source() (changeSource, error) {
	if c.err != nil {
		return nil, c.err
	}
	held := &heldSource{ch: c.sortedHeld()}
	if c.spill == nil || len(c.spill.runs) == 0 {
		return held, nil
	}
	srcs := make([]changeSource, 0, len(c.spill.runs)+1)
	for _, r := range c.spill.readers(32 << 10) {
		srcs = append(srcs, &runSource{r: r, name: c.spill.f.Name()})
	}
	return &mergeSource{src: append(srcs, held)}, nil
}
