package mongodb

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Base encoding (FORMAT.md §23.1): lines, each ending in '\n', so the
// record chunker cuts between documents and an unchanged document keeps
// its chunk from one day's base to the next:
//
//	"strata-mongodb-base 1"
//	"C " base64(BSON {ns, options, indexes})    a collection; its documents follow
//	"D " base64(BSON document)                  in ascending _id order
//	"O " base64(BSON oplog entry)               entries after start through end
//	"E " base64(BSON trailer)                   {start, end, collections, documents, oplog, fullImageUpdates}
//
// base64 is the standard alphabet with padding.
const (
	baseMagic = "strata-mongodb-base 1"
	// maxLine bounds one line: a 16 MiB BSON document is under 22.4 MiB
	// in base64; a decoder must not grow a buffer without end.
	maxLine = 24 << 20
)

// Collection is the metadata of one collection of a base.
type Collection struct {
	NS      string     `bson:"ns"`      // "db.collection"
	Options bson.Raw   `bson:"options"` // listCollections' options (capped, validator, collation, ...)
	Indexes []bson.Raw `bson:"indexes"` // listIndexes' specifications, _id_ included
}

// DB and Name split NS.
func (c *Collection) DB() string   { db, _, _ := strings.Cut(c.NS, "."); return db }
func (c *Collection) Name() string { _, n, _ := strings.Cut(c.NS, "."); return n }

// Trailer ends a base.
type Trailer struct {
	Start       bson.Timestamp `bson:"start"` // the newest oplog entry before the dump began
	End         bson.Timestamp `bson:"end"`   // the newest after it ended: the base is the state at End
	Collections int64          `bson:"collections"`
	Documents   int64          `bson:"documents"`
	Oplog       int64          `bson:"oplog"`
	// FullImageUpdates is set when the source logs every update as the
	// whole new document (FerretDB); see OpsOptions.
	FullImageUpdates bool `bson:"fullImageUpdates"`
}

// BaseWriter encodes a base.
type BaseWriter struct {
	w   *bufio.Writer
	t   Trailer
	err error
	buf []byte
	// inColl: a collection was started, so documents may follow.
	inColl bool
	last   Timestamp
}

// NewBaseWriter writes the header line to w.
func NewBaseWriter(w io.Writer) *BaseWriter {
	bw := &BaseWriter{w: bufio.NewWriterSize(w, 256<<10)}
	_, bw.err = bw.w.WriteString(baseMagic + "\n")
	return bw
}

func (bw *BaseWriter) line(tag byte, b []byte) error {
	if bw.err != nil {
		return bw.err
	}
	n := base64.StdEncoding.EncodedLen(len(b))
	if n+3 > maxLine {
		bw.err = fmt.Errorf("mongodb base: a record of %d bytes is over the limit", len(b))
		return bw.err
	}
	bw.buf = append(append(bw.buf[:0], tag, ' '), make([]byte, n)...)
	base64.StdEncoding.Encode(bw.buf[2:], b)
	bw.buf = append(bw.buf, '\n')
	_, bw.err = bw.w.Write(bw.buf)
	return bw.err
}

// Collection starts a collection; its documents follow.
func (bw *BaseWriter) Collection(c *Collection) error {
	b, err := bson.Marshal(c)
	if err != nil {
		return fmt.Errorf("mongodb base: collection %s: %w", c.NS, err)
	}
	bw.inColl = true
	bw.t.Collections++
	return bw.line('C', b)
}

// Document adds one document of the current collection.
func (bw *BaseWriter) Document(doc bson.Raw) error {
	if !bw.inColl {
		return errors.New("mongodb base: a document before any collection")
	}
	bw.t.Documents++
	return bw.line('D', doc)
}

// Oplog adds an oplog entry written during the dump; entries must come in
// oplog order.
func (bw *BaseWriter) Oplog(e *Entry) error {
	if bw.t.Oplog > 0 && !e.TS.After(bw.last) {
		return fmt.Errorf("mongodb base: oplog entry %s after %s", e.TS, bw.last)
	}
	bw.last = e.TS
	bw.inColl = false
	bw.t.Oplog++
	return bw.line('O', e.Raw)
}

// Close writes the trailer and flushes. start and end bound the entries
// added with Oplog.
func (bw *BaseWriter) Close(start, end Timestamp, fullImage bool) (Trailer, error) {
	bw.t.Start, bw.t.End, bw.t.FullImageUpdates = start.bson(), end.bson(), fullImage
	b, err := bson.Marshal(&bw.t)
	if err != nil {
		return bw.t, err
	}
	if err := bw.line('E', b); err != nil {
		return bw.t, err
	}
	if err := bw.w.Flush(); err != nil {
		return bw.t, err
	}
	return bw.t, nil
}

// BaseReader decodes a base, checking it as it goes.
type BaseReader struct {
	r    *bufio.Reader
	coll *Collection
	t    Trailer
	n    Trailer // counts so far
	done bool
	last Timestamp
	line int
}

// NewBaseReader reads and checks the header line.
func NewBaseReader(r io.Reader) (*BaseReader, error) {
	br := &BaseReader{r: bufio.NewReaderSize(r, 1<<20)}
	l, err := br.readLine()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: base: empty", ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if string(l) != baseMagic {
		return nil, fmt.Errorf("%w: base: not a MongoDB base (header %.40q)", ErrCorrupt, l)
	}
	return br, nil
}

func (br *BaseReader) readLine() ([]byte, error) {
	br.line++
	var out []byte
	for {
		frag, err := br.r.ReadSlice('\n')
		if len(out)+len(frag) > maxLine+1 {
			return nil, fmt.Errorf("%w: base line %d is over %d bytes", ErrCorrupt, br.line, maxLine)
		}
		out = append(out, frag...)
		if err == nil {
			return out[:len(out)-1], nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			if len(out) == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w: base line %d does not end in a newline (truncated)", ErrCorrupt, br.line)
		}
		return nil, err
	}
}

// Record is one decoded line: exactly one of its fields is set.
type Record struct {
	Collection *Collection
	Document   bson.Raw
	Oplog      *Entry
}

// Next returns the next record, or io.EOF after the trailer (see Trailer).
// A base that ends without its trailer, or whose trailer miscounts, is
// ErrCorrupt: never a smaller database.
func (br *BaseReader) Next() (Record, error) {
	if br.done {
		return Record{}, io.EOF
	}
	l, err := br.readLine()
	if err == io.EOF {
		return Record{}, fmt.Errorf("%w: base ends without its trailer (truncated)", ErrCorrupt)
	}
	if err != nil {
		return Record{}, err
	}
	if len(l) < 2 || l[1] != ' ' {
		return Record{}, fmt.Errorf("%w: base line %d: no record tag", ErrCorrupt, br.line)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(l)-2))
	n, err := base64.StdEncoding.Strict().Decode(b, l[2:])
	if err != nil {
		return Record{}, fmt.Errorf("%w: base line %d: %v", ErrCorrupt, br.line, err)
	}
	doc := bson.Raw(b[:n])
	if err := doc.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: base line %d: %v", ErrCorrupt, br.line, err)
	}
	switch l[0] {
	case 'C':
		if br.n.Oplog > 0 {
			return Record{}, fmt.Errorf("%w: base line %d: a collection after the oplog", ErrCorrupt, br.line)
		}
		var c Collection
		if err := bson.Unmarshal(doc, &c); err != nil {
			return Record{}, fmt.Errorf("%w: base line %d: collection: %v", ErrCorrupt, br.line, err)
		}
		if db, name, ok := strings.Cut(c.NS, "."); !ok || db == "" || name == "" {
			return Record{}, fmt.Errorf("%w: base line %d: namespace %q is not db.collection", ErrCorrupt, br.line, c.NS)
		}
		br.coll = &c
		br.n.Collections++
		return Record{Collection: &c}, nil
	case 'D':
		if br.coll == nil || br.n.Oplog > 0 {
			return Record{}, fmt.Errorf("%w: base line %d: a document outside a collection", ErrCorrupt, br.line)
		}
		if _, err := doc.LookupErr("_id"); err != nil {
			return Record{}, fmt.Errorf("%w: base line %d: a document without _id", ErrCorrupt, br.line)
		}
		br.n.Documents++
		return Record{Document: doc}, nil
	case 'O':
		e, err := parseEntryDoc(doc, true)
		if err != nil {
			return Record{}, fmt.Errorf("base line %d: %w", br.line, err)
		}
		if br.n.Oplog > 0 && !e.TS.After(br.last) {
			return Record{}, fmt.Errorf("%w: base line %d: oplog entry %s after %s", ErrCorrupt, br.line, e.TS, br.last)
		}
		br.last = e.TS
		br.n.Oplog++
		return Record{Oplog: e}, nil
	case 'E':
		if err := bson.Unmarshal(doc, &br.t); err != nil {
			return Record{}, fmt.Errorf("%w: base trailer: %v", ErrCorrupt, err)
		}
		t := br.t
		if t.Collections != br.n.Collections || t.Documents != br.n.Documents || t.Oplog != br.n.Oplog {
			return Record{}, fmt.Errorf("%w: base trailer counts %d collections, %d documents, %d oplog entries; the base holds %d, %d, %d",
				ErrCorrupt, t.Collections, t.Documents, t.Oplog, br.n.Collections, br.n.Documents, br.n.Oplog)
		}
		start, end := Timestamp{t.Start.T, t.Start.I}, Timestamp{t.End.T, t.End.I}
		if start.After(end) || br.n.Oplog > 0 && (!br.last.After(start) || br.last.After(end)) {
			return Record{}, fmt.Errorf("%w: base trailer: oplog entries outside (%s, %s]", ErrCorrupt, start, end)
		}
		if _, err := br.readLine(); err != io.EOF {
			return Record{}, fmt.Errorf("%w: bytes after the base trailer", ErrCorrupt)
		}
		br.done = true
		return Record{}, io.EOF
	default:
		return Record{}, fmt.Errorf("%w: base line %d: unknown tag %q", ErrCorrupt, br.line, l[0])
	}
}

// Trailer returns the trailer once Next has returned io.EOF.
func (br *BaseReader) Trailer() Trailer { return br.t }

// End is the trailer's end as a Timestamp.
func (t Trailer) EndTS() Timestamp { return Timestamp{t.End.T, t.End.I} }
