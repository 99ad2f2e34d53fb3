package ndjson

import (
	"bytes"
	"fmt"
	"io"

	"github.com/strata-backup/strata/repo"
)

// DefaultKeyField is the document field that holds a document's key.
const DefaultKeyField = "_id"

// KeyOf returns the key of one document line: the value of its top-level
// field, decoded when a string, as text when a number. The result may alias
// line. A document without the field, or not an object, is an error.
func KeyOf(line []byte, field string) ([]byte, error) {
	var key []byte
	var kerr error
	found := false
	err := fields(line, func(name, v []byte) bool {
		if !nameIs(name, field) {
			return true
		}
		found = true
		key, kerr = keyValue(v)
		return false
	})
	switch {
	case kerr != nil:
		return nil, kerr
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("document has no %q field", field)
	}
	return key, nil
}

// OrderChecker watches an NDJSON export go by (it is an io.Writer, fed
// through a TeeReader) and tells whether every line is a document with a
// key and the keys strictly ascend. A restore at a point in time merges
// changes into such an export as it streams; any other export is sorted in
// memory.
type OrderChecker struct {
	field  string
	line   []byte // the unfinished line
	prev   []byte
	lines  int64
	sorted bool
	why    string
}

// NewOrderChecker returns a checker for documents keyed by field.
func NewOrderChecker(field string) *OrderChecker {
	return &OrderChecker{field: field, sorted: true}
}

// Write implements io.Writer; it never fails.
func (c *OrderChecker) Write(p []byte) (int, error) {
	n := len(p)
	if !c.sorted {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			break
		}
		if len(c.line) > 0 {
			c.line = append(c.line, p[:i]...)
			c.check(c.line)
			c.line = c.line[:0]
		} else {
			c.check(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (c *OrderChecker) check(line []byte) {
	if !c.sorted {
		return
	}
	c.lines++
	key, err := KeyOf(line, c.field)
	switch {
	case err != nil:
		c.sorted, c.why = false, fmt.Sprintf("line %d: %v", c.lines, err)
	case c.lines > 1 && bytes.Compare(key, c.prev) <= 0:
		c.sorted, c.why = false, fmt.Sprintf("line %d: key not above the line before", c.lines)
	default:
		c.prev = append(c.prev[:0], key...)
	}
}

// Sorted reports, once the export has ended, whether every line had a key
// and the keys strictly ascended; if not, why.
func (c *OrderChecker) Sorted() (bool, string) {
	if len(c.line) > 0 {
		c.check(c.line)
		c.line = nil
	}
	return c.sorted, c.why
}

// DescribeExport passes an export through a key-order check on its way to
// the engine: it returns the reader to back up and the hook for
// engine.BackupOptions.Describe that records the key field and whether the
// export was sorted by it (a point-in-time restore merges changes into a
// sorted export as it streams it).
func DescribeExport(src io.Reader, keyField string) (io.Reader, func(*repo.Snapshot)) {
	oc := NewOrderChecker(keyField)
	return io.TeeReader(src, oc), func(s *repo.Snapshot) {
		s.KeyField = keyField
		s.Sorted, _ = oc.Sorted()
	}
}
