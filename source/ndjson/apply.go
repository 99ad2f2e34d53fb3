package ndjson

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/strata-backup/strata/repo"
)

// Changes is the net effect of a run of events: for each key touched, its
// final document, or that it was deleted.
type Changes struct {
	m map[string][]byte // nil value: deleted
}

// NewChanges returns an empty set of changes.
func NewChanges() *Changes { return &Changes{m: map[string][]byte{}} }

// Apply folds one event in; events must come in commit order. Key and Value
// are copied.
func (c *Changes) Apply(e *repo.Event) {
	switch e.Op {
	case repo.OpPut:
		c.m[string(e.Key)] = append([]byte{}, e.Value...) // never nil: nil means deleted
	case repo.OpDelete:
		c.m[string(e.Key)] = nil
	}
}

// Len returns the number of keys touched.
func (c *Changes) Len() int { return len(c.m) }

type change struct {
	key string
	doc []byte // nil: deleted
}

func (c *Changes) sorted() []change {
	out := make([]change, 0, len(c.m))
	for k, v := range c.m {
		out = append(out, change{k, v})
	}
	slices.SortFunc(out, func(a, b change) int { return strings.Compare(a.key, b.key) })
	return out
}

// ErrUnsorted is returned by Merge when the export's keys do not strictly
// ascend although its snapshot said they did.
var ErrUnsorted = errors.New("export is not sorted by key")

// Merge writes the export read from src with the changes applied, sorted by
// key: src's lines must be documents whose keys (field) strictly ascend. A
// changed document replaces the line with its key, a deleted one drops it,
// and new keys are inserted in order. Every output line ends in a newline;
// blank lines are dropped. It streams: memory is the changes, not the export.
// It writes a line at a time, through w itself when w is a *bufio.Writer
// (flushed at the end), else through a buffer of its own.
func Merge(src io.Reader, field string, ch *Changes, w io.Writer) error {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 1<<20)
	}
	changes := ch.sorted()
	ci := 0
	emit := func(doc []byte) {
		bw.Write(doc)
		bw.WriteByte('\n')
	}
	var prev []byte
	lineNo := 0
	err := eachLine(src, func(line []byte) error {
		lineNo++
		key, err := KeyOf(line, field)
		if err != nil {
			return fmt.Errorf("export line %d: %w", lineNo, err)
		}
		if lineNo > 1 && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("%w: line %d", ErrUnsorted, lineNo)
		}
		prev = append(prev[:0], key...)
		for ci < len(changes) && changes[ci].key < string(key) {
			if changes[ci].doc != nil {
				emit(changes[ci].doc)
			}
			ci++
		}
		if ci < len(changes) && changes[ci].key == string(key) {
			if changes[ci].doc != nil {
				emit(changes[ci].doc)
			}
			ci++
			return nil
		}
		emit(line)
		return nil
	})
	if err != nil {
		return err
	}
	for ; ci < len(changes); ci++ {
		if changes[ci].doc != nil {
			emit(changes[ci].doc)
		}
	}
	return bw.Flush()
}

// MergeUnsorted does what Merge does for an export in any order, by
// holding every document in memory. A later line with the same key as an
// earlier one wins.
func MergeUnsorted(src io.Reader, field string, ch *Changes, w io.Writer) error {
	all := NewChanges()
	lineNo := 0
	err := eachLine(src, func(line []byte) error {
		lineNo++
		key, err := KeyOf(line, field)
		if err != nil {
			return fmt.Errorf("export line %d: %w", lineNo, err)
		}
		all.Apply(&repo.Event{Op: repo.OpPut, Key: key, Value: line})
		return nil
	})
	if err != nil {
		return err
	}
	for k, v := range ch.m {
		if v == nil {
			delete(all.m, k)
		} else {
			all.m[k] = v
		}
	}
	return Merge(bytes.NewReader(nil), field, all, w)
}

// eachLine calls fn with each non-blank line of src, without its newline.
// The slice is valid only during the call.
func eachLine(src io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(src, 1<<20)
	var long []byte
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, b...)
			continue
		}
		if long != nil {
			b = append(long, b...)
		}
		if len(b) > 0 {
			line := bytes.TrimRight(b, "\r\n")
			if len(bytes.TrimSpace(line)) > 0 {
				if ferr := fn(line); ferr != nil {
					return ferr
				}
			}
		}
		long = nil
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
