package ndjson

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// An unsorted export's repeated keys are found from a 128-bit hash of every
// key, kept until the export ends (a key out of order may repeat any key
// before it, however early). Held whole, that is 24 bytes a document, so
// memory grew with the export. Past a bound the hashes are sorted and
// written as a run to a temporary file instead, and Close merges the runs
// (the same external sort a point-in-time restore's changes use): memory
// is the bound plus a read buffer per run, whatever the export's size. A
// sorted export never reads its runs back, and the file goes at Close.

// DefaultKeyHashBytes is the key hashes an ExportChecker holds in memory
// before it spills them to a temporary file.
const DefaultKeyHashBytes = 2 << 20

// keyHashSize is a keyHash in a run: h1, h2, line, little-endian.
const keyHashSize = 24

// keyHashReadBuffer is each run's read buffer while the runs are merged.
const keyHashReadBuffer = 8 << 10

// keyHash is 128 bits of a key's hash and the line it is on. Two keys
// collide with probability about n²/2¹²⁹ for n documents: never, in practice.
type keyHash struct {
	h1, h2 uint64
	line   int64
}

// compare orders by hash, then line: a key's lines are adjacent and
// ascend. Lines are unique, so no two hashes of one export compare equal.
func (a keyHash) compare(b keyHash) int {
	if a.h1 != b.h1 {
		return cmp.Compare(a.h1, b.h1)
	}
	if a.h2 != b.h2 {
		return cmp.Compare(a.h2, b.h2)
	}
	return cmp.Compare(a.line, b.line)
}

// keyHashes holds an export's key hashes, spilling sorted runs of them to
// a temporary file in dir ("" for the system's) past limit entries.
type keyHashes struct {
	held  []keyHash
	limit int
	spill spill
	err   error // the first spill's failure; add does nothing after it
}

func newKeyHashes(dir string, boundBytes int) *keyHashes {
	return &keyHashes{limit: max(boundBytes/keyHashSize, 1), spill: spill{dir: dir}}
}

func (k *keyHashes) add(h keyHash) {
	if k.err != nil {
		return
	}
	k.held = append(k.held, h)
	if len(k.held) >= k.limit {
		k.err = k.spillRun()
	}
}

// spillRun writes the held hashes, sorted, as one run.
func (k *keyHashes) spillRun() error {
	s := &k.spill
	if err := s.open("strata-keys-*"); err != nil {
		return fmt.Errorf("spill key hashes: %w", err)
	}
	slices.SortFunc(k.held, keyHash.compare)
	start := s.size
	var b [keyHashSize]byte
	for _, h := range k.held {
		binary.LittleEndian.PutUint64(b[0:], h.h1)
		binary.LittleEndian.PutUint64(b[8:], h.h2)
		binary.LittleEndian.PutUint64(b[16:], uint64(h.line))
		s.w.Write(b[:]) // a failure sticks in s.w; endRun's Flush returns it
	}
	s.size += int64(len(k.held)) * keyHashSize
	if err := s.endRun(start); err != nil {
		return fmt.Errorf("spill key hashes: %w", err)
	}
	k.held = k.held[:0]
	return nil
}

// firstRepeat returns the earliest line whose key repeats an earlier
// line's, and the line it repeats (the nearest before it with that key);
// 0, 0 when no key repeats.
func (k *keyHashes) firstRepeat() (line, first int64, err error) {
	if k.err != nil {
		return 0, 0, k.err
	}
	slices.SortFunc(k.held, keyHash.compare)
	var src recordSource[keyHash] = &sliceSource[keyHash]{ch: k.held}
	if len(k.spill.runs) > 0 {
		srcs := make([]recordSource[keyHash], 0, len(k.spill.runs)+1)
		for _, r := range k.spill.readers(keyHashReadBuffer) {
			srcs = append(srcs, &keyHashRun{r: r, name: k.spill.f.Name()})
		}
		src = &mergeRuns[keyHash]{src: append(srcs, src)}
	}
	var prev keyHash
	for i := 0; ; i++ {
		h, ok, err := src.next()
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return line, first, nil
		}
		if i > 0 && h.h1 == prev.h1 && h.h2 == prev.h2 && (line == 0 || h.line < line) {
			line, first = h.line, prev.line
		}
		prev = h
	}
}

// close drops the hashes and removes the temporary file, if any.
func (k *keyHashes) close() error {
	k.held = nil
	return k.spill.remove()
}

// keyHashRun reads one spilled run of key hashes.
type keyHashRun struct {
	r    *bufio.Reader
	name string
}

func (s *keyHashRun) next() (keyHash, bool, error) {
	var b [keyHashSize]byte
	switch _, err := io.ReadFull(s.r, b[:]); err {
	case nil:
	case io.EOF:
		return keyHash{}, false, nil
	default:
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("a run ends inside a record: %w", err)
		}
		return keyHash{}, false, fmt.Errorf("read spilled key hashes %s: %w", s.name, err)
	}
	return keyHash{
		h1:   binary.LittleEndian.Uint64(b[0:]),
		h2:   binary.LittleEndian.Uint64(b[8:]),
		line: int64(binary.LittleEndian.Uint64(b[16:])),
	}, true, nil
}
