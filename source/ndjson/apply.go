package ndjson

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/strata-backup/strata/repo"
)

// Changes is the net effect of a run of events: for each key touched, its
// final document, or that it was deleted.
type Changes struct {
	m map[string][]byte // nil value: deleted
	// With a spill (NewSpillingChanges): the bytes m holds, the bound past
	// which it is written out as a run, and the first spill error, which
	// Merge returns.
	held, bound int
	spill       *spill
	err         error
}

// NewChanges returns an empty set of changes.
func NewChanges() *Changes { return &Changes{m: map[string][]byte{}} }

// Apply folds one event in; events must come in commit order. Key and Value
// are copied.
func (c *Changes) Apply(e *repo.Event) {
	switch e.Op {
	case repo.OpPut:
		c.set(string(e.Key), append([]byte{}, e.Value...)) // never nil: nil means deleted
	case repo.OpDelete:
		c.set(string(e.Key), nil)
	}
}

func (c *Changes) set(key string, doc []byte) {
	old, present := c.m[key]
	c.m[key] = doc
	c.account(key, old, present, doc)
}

// Len returns the number of keys touched that it holds in memory: all of
// them unless it spilled (Merge counts those).
func (c *Changes) Len() int { return len(c.m) }

type change struct {
	key string
	doc []byte // nil: deleted
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
	_, err := mergeChanges(src, field, ch, w)
	return err
}

// mergeChanges is Merge; it also returns the number of keys the changes
// touch.
func mergeChanges(src io.Reader, field string, ch *Changes, w io.Writer) (int, error) {
	cs, err := ch.source()
	if err != nil {
		return 0, err
	}
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 1<<20)
	}
	keys := 0
	cur, more, err := cs.next()
	if err != nil {
		return 0, err
	}
	advance := func() error {
		keys++
		cur, more, err = cs.next()
		return err
	}
	emit := func(doc []byte) {
		bw.Write(doc)
		bw.WriteByte('\n')
	}
	var prev []byte
	lineNo := 0
	err = eachLine(src, func(line []byte) error {
		lineNo++
		key, err := KeyOf(line, field)
		if err != nil {
			return fmt.Errorf("export line %d: %w", lineNo, err)
		}
		if lineNo > 1 && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("%w: line %d", ErrUnsorted, lineNo)
		}
		prev = append(prev[:0], key...)
		for more && cur.key < string(key) {
			if cur.doc != nil {
				emit(cur.doc)
			}
			if err := advance(); err != nil {
				return err
			}
		}
		if more && cur.key == string(key) {
			if cur.doc != nil {
				emit(cur.doc)
			}
			return advance()
		}
		emit(line)
		return nil
	})
	if err != nil {
		return keys, err
	}
	for more {
		if cur.doc != nil {
			emit(cur.doc)
		}
		if err := advance(); err != nil {
			return keys, err
		}
	}
	return keys, bw.Flush()
}

// MergeUnsorted does what Merge does for an export in any order, by
// collecting every document first: in memory, or, when ch spills, in a
// spilling set of its own with ch's bound. A later line with the same key
// as an earlier one wins.
func MergeUnsorted(src io.Reader, field string, ch *Changes, w io.Writer) error {
	_, err := mergeUnsorted(src, field, ch, w)
	return err
}

func mergeUnsorted(src io.Reader, field string, ch *Changes, w io.Writer) (int, error) {
	all := NewChanges()
	if ch.spill != nil {
		all = NewSpillingChanges(ch.spill.dir, ch.bound)
	}
	defer all.Close()
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
		return 0, err
	}
	cs, err := ch.source()
	if err != nil {
		return 0, err
	}
	keys := 0
	for {
		c, ok, err := cs.next()
		if err != nil {
			return keys, err
		}
		if !ok {
			break
		}
		keys++
		all.set(c.key, c.doc)
	}
	_, err = mergeChanges(bytes.NewReader(nil), field, all, w)
	return keys, err
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
