package ndjson

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// The canonical record of an ndjson document (FORMAT.md §11.1): its key as
// KeyOf returns it, and the document with JSON's insignificant whitespace
// removed (encoding/json's Compact), so the same document exported with
// other spacing, or carried by a change event, digests the same. Field
// order is kept: a document whose fields moved is a different line.

// addDoc adds one document line, which the caller has checked is a JSON
// object, to d.
func addDoc(d *repo.Digester, key, line []byte, buf *bytes.Buffer) error {
	d.Add(key, compactJSON(buf, line))
	return nil
}

// compactJSON returns valid JSON text without its insignificant whitespace
// (what encoding/json's Compact writes, for valid input): space, tab, CR
// and LF outside strings. Text without any is returned as is, without a
// copy; otherwise the result is in buf.
func compactJSON(buf *bytes.Buffer, b []byte) []byte {
	for i := 0; i < len(b); {
		switch b[i] {
		case '"':
			i = stringEnd(b, i+1)
		case ' ', '\t', '\r', '\n':
			return compactFrom(buf, b, i)
		default:
			i++
		}
	}
	return b
}

// stringEnd returns the index just past the quote that closes the string
// whose contents start at b[i], or len(b) when none does. Strings are most
// of a document's bytes, so it jumps from quote to quote (a vectorised
// search) and looks back at the backslashes before each: an odd run
// escapes the quote. The run cannot reach back past b[i], since b[i-1] is
// the opening quote or an escaped one.
func stringEnd(b []byte, i int) int {
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		k := q
		for k > i && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// compactFrom is compactJSON from b[i], the first whitespace outside a
// string.
func compactFrom(buf *bytes.Buffer, b []byte, i int) []byte {
	buf.Reset()
	buf.Write(b[:i])
	in := false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			buf.WriteByte(c)
			if i+1 < len(b) {
				i++
				buf.WriteByte(b[i])
			}
			continue
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			continue
		}
		buf.WriteByte(c)
	}
	return buf.Bytes()
}

// Proven reports whether s is an ndjson export of `strata backup` (the
// kind whose state RestoreAt writes and whose proof this package defines),
// rather than another source's ndjson-chunked base (mongodb://).
func Proven(s *repo.Snapshot) bool {
	return s.Format == engine.FormatNDJSON && s.KeyField != ""
}

// proofWriter digests the document lines written through it, and passes
// every byte on to w (nil: none).
type proofWriter struct {
	w     io.Writer
	d     *repo.Digester
	field string
	line  []byte
	buf   bytes.Buffer
	n     int64
	err   error
}

func newProofWriter(w io.Writer, d *repo.Digester, field string) *proofWriter {
	return &proofWriter{w: w, d: d, field: field}
}

func (p *proofWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.w != nil {
		if n, err := p.w.Write(b); err != nil {
			return n, err
		}
	}
	p.n += int64(len(b))
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			p.line = append(p.line, rest...)
			break
		}
		if len(p.line) > 0 {
			p.line = append(p.line, rest[:i]...)
			p.err = p.doc(p.line)
			p.line = p.line[:0]
		} else {
			p.err = p.doc(rest[:i])
		}
		if p.err != nil {
			return 0, p.err
		}
		rest = rest[i+1:]
	}
	return len(b), nil
}

func (p *proofWriter) doc(line []byte) error {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	key, err := KeyOf(line, p.field)
	if err != nil {
		return fmt.Errorf("proof of restored document %d: %w", p.d.Proof().Records+1, err)
	}
	return addDoc(p.d, key, line, &p.buf)
}

// proof returns the proof of everything written, the last line included
// when it has no newline.
func (p *proofWriter) proof() (repo.Proof, error) {
	if p.err == nil && len(p.line) > 0 {
		p.err = p.doc(p.line)
		p.line = nil
	}
	return p.d.Proof(), p.err
}

// Prove makes the checker digest every document it checks into d, for the
// snapshot's proof (ExportChecker.Proof). Documents are digested by
// GOMAXPROCS workers in batches, off the checker's own path; Close, or the
// end of a Reader's export, stops them.
func (c *ExportChecker) Prove(d *repo.Digester) {
	c.proof = &proofPool{d: d, ch: make(chan *docBatch, 4)}
	for range runtime.GOMAXPROCS(0) {
		w := d.Fork()
		c.proof.workers = append(c.proof.workers, w)
		c.proof.wg.Add(1)
		go c.proof.work(w)
	}
}

// Proof returns, once Close has returned nil, the proof of the export's
// documents, and false when it has none: an export with repeated keys
// (allowed by allowDuplicates) is a state only after dropping the earlier
// lines, which a stream cannot know, so its snapshot is unproven.
func (c *ExportChecker) Proof() (repo.Proof, bool) {
	if c.proof == nil || !c.proof.ended || c.allowDup && !c.sorted {
		return repo.Proof{}, false
	}
	return c.proof.d.Proof(), true
}

// endProof flushes the last batch, waits for the workers and merges their
// sums into the digester. It may be called more than once.
func (c *ExportChecker) endProof() {
	p := c.proof
	if p == nil || p.ended {
		return
	}
	p.ended = true
	p.flush()
	close(p.ch)
	p.wg.Wait()
	for _, w := range p.workers {
		p.d.Merge(w)
	}
}

// proofBatchBytes is how much of an export one batch carries to a worker.
const proofBatchBytes = 256 << 10

// docBatch is a run of documents: their keys and lines back to back in
// buf, ends[2i] the end of key i and ends[2i+1] the end of its line.
type docBatch struct {
	buf  []byte
	ends []int
}

// proofPool digests the documents of an export on several goroutines.
type proofPool struct {
	d       *repo.Digester
	workers []*repo.Digester
	ch      chan *docBatch
	wg      sync.WaitGroup
	cur     *docBatch
	ended   bool
}

// add queues one document; key and line are copied.
func (p *proofPool) add(key, line []byte) {
	if p.cur == nil {
		p.cur = &docBatch{buf: make([]byte, 0, proofBatchBytes+len(key)+len(line))}
	}
	b := p.cur
	b.buf = append(b.buf, key...)
	b.ends = append(b.ends, len(b.buf))
	b.buf = append(b.buf, line...)
	b.ends = append(b.ends, len(b.buf))
	if len(b.buf) >= proofBatchBytes {
		p.flush()
	}
}

func (p *proofPool) flush() {
	if p.cur != nil {
		p.ch <- p.cur
		p.cur = nil
	}
}

func (p *proofPool) work(d *repo.Digester) {
	defer p.wg.Done()
	var buf bytes.Buffer
	for b := range p.ch {
		start := 0
		for i := 0; i < len(b.ends); i += 2 {
			k, l := b.ends[i], b.ends[i+1]
			d.Add(b.buf[start:k], compactJSON(&buf, b.buf[k:l]))
			start = l
		}
	}
}

// RestoreSnapshot is engine.Restore of an ndjson snapshot, byte-exact to
// w, that also recomputes the snapshot's proof from what it wrote. When the
// snapshot records one and they differ it returns an error wrapping
// repo.ErrProofMismatch, after the bytes are written: the caller must not
// report success. proven is false when the snapshot records no proof.
func RestoreSnapshot(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, w io.Writer, o engine.RestoreOptions) (n int64, proven bool, err error) {
	want, ok := snap.Proof()
	if !ok || !Proven(snap.Snapshot) {
		n, err = engine.Restore(ctx, r, snap, w, o)
		return n, false, err
	}
	pw := newProofWriter(w, r.NewDigester(), snap.KeyField)
	n, err = engine.Restore(ctx, r, snap, pw, o)
	if err != nil {
		return n, false, err
	}
	got, err := pw.proof()
	if err != nil {
		return n, false, fmt.Errorf("%w: snapshot %s: %v", repo.ErrProofMismatch, snap.ID.Short(), err)
	}
	return n, true, want.Check("snapshot "+snap.ID.Short(), got)
}

func init() { source.RegisterStateProver("ndjson", proveState) }

// proveState is the StateProver of ndjson exports: RestoreAt into a sink.
func proveState(ctx context.Context, r *repo.Repository, p *index.Plan) (source.StateProof, error) {
	if !Proven(p.Base.Snapshot) {
		return source.StateProof{}, source.ErrNotMine
	}
	st, err := RestoreAt(ctx, r, p, nil, engine.RestoreOptions{})
	sp := source.StateProof{Proof: st.Proof, Reached: st.LastApplied, Events: st.EventsApplied}
	if st.LastApplied == 0 && p.Base.Position != nil {
		sp.Reached = *p.Base.Position
	}
	return sp, err
}
