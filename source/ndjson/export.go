package ndjson

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync/atomic"
	"unicode/utf8"
)

// ErrBadExport is returned (wrapped, with the line number) for an ndjson
// export that a point-in-time restore could not use: a line that is not a
// JSON object in UTF-8, a document without a scalar key, or (unless
// allowed) a key that repeats.
var ErrBadExport = errors.New("invalid ndjson export")

// MaxExportLine bounds one line of an ndjson export: far above any
// database's largest document, and low enough that binary data with no
// newline in it is refused before it fills memory.
const MaxExportLine = 256 << 20

// ExportChecker validates an ndjson export as it streams by (it is an
// io.Writer, fed through an io.TeeReader in front of the chunker). Its
// Write fails at the first bad line, so the reader of the tee fails and the
// backup stops before its snapshot manifest is written. It also learns
// whether the keys strictly ascend (Sorted), which decides how a
// point-in-time restore merges changes into the export.
//
// Blank lines are allowed and ignored, as every reader of an export
// ignores them; a line may end in "\r\n".
//
// Duplicate keys in a sorted export are adjacent and refused as they come;
// in any other they are found by Close, from 128-bit hashes of every key
// (24 bytes a document until the export ends, spilled in sorted runs to a
// temporary file past DefaultKeyHashBytes, so memory stays bounded). With
// AllowDuplicates they are let
// through: the export is stored as it is, and every reader that treats it
// as a set of documents (point-in-time restores, get, history, diff) takes
// the last line with a key (FORMAT.md §16).
type ExportChecker struct {
	field    string
	allowDup bool
	maxLine  int // MaxExportLine; lowered by tests

	line    []byte // the unfinished line
	lineNo  int64  // lines begun, blank ones included
	docs    int64
	prev    []byte
	sorted  bool
	why     string
	hashes  *keyHashes // every key's, to find repeats in an unsorted export
	s1, s2  maphash.Seed
	err     error
	partial bool // c.line holds the start of line lineNo

	proof *proofPool // set by Prove
}

// NewExportChecker returns a checker for documents keyed by field. With
// allowDuplicates, a key may appear on several lines (the last one wins).
func NewExportChecker(field string, allowDuplicates bool) *ExportChecker {
	return &ExportChecker{
		field: field, allowDup: allowDuplicates, maxLine: MaxExportLine, sorted: true,
		s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), hashes: newKeyHashes("", DefaultKeyHashBytes),
	}
}

// Write implements io.Writer. It returns an error wrapping ErrBadExport at
// the first bad line, and the same error on every later call.
func (c *ExportChecker) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n := len(p)
	for len(p) > 0 {
		if !c.partial {
			c.lineNo++
			c.partial = true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			if len(c.line) > c.maxLine {
				c.err = fmt.Errorf("%w: line %d: longer than %d bytes (not an ndjson export?)", ErrBadExport, c.lineNo, c.maxLine)
				return 0, c.err
			}
			break
		}
		var line []byte
		if len(c.line) > 0 {
			c.line = append(c.line, p[:i]...)
			line = c.line
		} else {
			line = p[:i]
		}
		c.partial = false
		c.err = c.check(line)
		c.line = c.line[:0]
		if c.err != nil {
			return 0, c.err
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close checks the last line when the export does not end in a newline,
// and an unsorted export's keys for repeats. Call it once the export has
// been read to its end, or has failed: it also removes the temporary file
// of key hashes.
func (c *ExportChecker) Close() error {
	if c.err == nil && c.partial {
		c.partial = false
		c.err = c.check(c.line)
		c.line = nil
	}
	if c.err == nil {
		c.err = c.duplicates()
	}
	if err := c.hashes.close(); err != nil && c.err == nil {
		c.err = fmt.Errorf("remove key hashes: %w", err)
	}
	c.endProof()
	return c.err
}

// Reader returns src with c watching it: every byte read from it is
// checked, and where src ends the reader returns Close's error, if any,
// instead of io.EOF. A backup reading it therefore fails, before its
// snapshot manifest is written, on any bad line.
//
// The checking runs on a goroutine of its own, a few reads behind (so it
// costs the reader a copy, not a JSON scan); a bad line fails the next Read
// once it is found, and at the latest the Read that meets the end of src.
// Read the returned reader to its end (or its error) to stop the goroutine.
func (c *ExportChecker) Reader(src io.Reader) io.Reader {
	r := &checkedReader{src: src, c: c, work: make(chan []byte, checkAhead), free: make(chan []byte, checkAhead+2), done: make(chan struct{})}
	go r.check()
	return r
}

// checkAhead is how many reads the checking may trail behind the reader.
// Each is a copy of up to a read's length (the chunker reads ~1 MiB), so the
// bound is most of the checker's memory; two absorb the jitter of either
// side, and the buffers go round through free instead of to the collector.
const checkAhead = 2

type checkedReader struct {
	src    io.Reader
	c      *ExportChecker
	work   chan []byte // copies of what was read, in order; closed at the end
	free   chan []byte // buffers of checked copies, for the next reads
	done   chan struct{}
	failed atomic.Bool // the checker found a bad line
	ended  bool
	srcErr error // a read error of src, returned again on later reads
}

func (r *checkedReader) check() {
	defer close(r.done)
	for b := range r.work {
		if r.failed.Load() {
			continue // drain
		}
		if _, err := r.c.Write(b); err != nil {
			r.failed.Store(true)
		}
		select { // the checker keeps no reference to what it was given
		case r.free <- b[:0]:
		default:
		}
	}
	// On a bad export too: it stops the proof's workers and removes the
	// key hashes' file; the checker's error stays the first bad line.
	r.c.Close()
}

func (r *checkedReader) Read(p []byte) (int, error) {
	if r.ended {
		if r.srcErr != nil {
			return 0, r.srcErr
		}
		return 0, r.finish()
	}
	if r.failed.Load() {
		return 0, r.finish()
	}
	n, err := r.src.Read(p)
	if n > 0 {
		var b []byte
		select {
		case b = <-r.free:
		default:
		}
		r.work <- append(b, p[:n]...)
	}
	if err == io.EOF {
		return n, r.finish()
	}
	if err != nil {
		r.srcErr = err
		r.finish()
	}
	return n, err
}

// finish ends the checking and returns its verdict: the checker's error, or
// io.EOF when the whole export is good.
func (r *checkedReader) finish() error {
	if !r.ended {
		r.ended = true
		close(r.work)
	}
	<-r.done
	if r.c.err != nil {
		return r.c.err
	}
	return io.EOF
}

// Sorted reports, once Close has returned nil, whether the keys strictly
// ascended; if not, why.
func (c *ExportChecker) Sorted() (bool, string) { return c.sorted, c.why }

// Documents returns the number of documents (non-blank lines) seen.
func (c *ExportChecker) Documents() int64 { return c.docs }

func (c *ExportChecker) bad(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrBadExport, c.lineNo, fmt.Sprintf(format, args...))
}

func (c *ExportChecker) check(line []byte) error {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	c.docs++
	if !utf8.Valid(line) {
		return c.bad("not UTF-8 text (binary data?)")
	}
	// One pass over the whole line: KeyOf would stop at the key, and the
	// rest must be valid JSON too.
	var key []byte
	var kerr error
	found := false
	err := fields(line, func(name, v []byte) bool {
		if nameIs(name, c.field) {
			if found {
				// Readers differ on which of two wins: neither may.
				kerr = errors.New("appears twice in the document")
				return false
			}
			found = true
			key, kerr = keyValue(v)
		}
		return kerr == nil
	})
	switch {
	case kerr != nil:
		return c.bad("field %q: %v", c.field, kerr)
	case err != nil:
		return c.bad("%v", err)
	case !found:
		return c.bad("document has no %q field", c.field)
	}
	if c.sorted {
		switch order := bytes.Compare(key, c.prev); {
		case c.docs == 1 || order > 0:
			c.prev = append(c.prev[:0], key...)
		case order == 0:
			c.sorted, c.why = false, fmt.Sprintf("line %d: key repeats the line before", c.lineNo)
			if !c.allowDup {
				return c.bad("key %.60q repeats the line before (--allow-duplicate-keys lets the last one win)", key)
			}
		default:
			c.sorted, c.why = false, fmt.Sprintf("line %d: key below the line before", c.lineNo)
		}
	}
	if c.proof != nil {
		c.proof.add(key, line)
	}
	if !c.allowDup {
		// Whether the export stays sorted is known only at its end, and a
		// key out of order may repeat any earlier one: every key's hash is
		// kept until then.
		c.hashes.add(keyHash{maphash.Bytes(c.s1, key), maphash.Bytes(c.s2, key), c.lineNo})
	}
	return nil
}

// duplicates finds a repeated key in an unsorted export, naming both lines.
func (c *ExportChecker) duplicates() error {
	if c.sorted || c.allowDup {
		return nil // a sorted export's repeats were adjacent, and refused as they came
	}
	line, first, err := c.hashes.firstRepeat()
	if err != nil {
		return fmt.Errorf("check the export's keys for repeats: %w", err)
	}
	if line != 0 {
		return fmt.Errorf("%w: line %d: its key repeats line %d (--allow-duplicate-keys lets the last one win)", ErrBadExport, line, first)
	}
	return nil
}
