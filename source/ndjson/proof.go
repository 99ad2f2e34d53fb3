package ndjson

import (
	"bytes"
	"context"
	"fmt"
	"io"

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
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			i++ // the escaped byte cannot end the string
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return compactFrom(buf, b, i)
		}
	}
	return b
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

// Prove makes the checker digest every document it checks, for the
// snapshot's proof (ExportChecker.Proof).
func (c *ExportChecker) Prove(d *repo.Digester) { c.proof = d }

// Proof returns, once Close has returned nil, the proof of the export's
// documents, and false when it has none: an export with repeated keys
// (allowed by allowDuplicates) is a state only after dropping the earlier
// lines, which a stream cannot know, so its snapshot is unproven.
func (c *ExportChecker) Proof() (repo.Proof, bool) {
	if c.proof == nil || c.proofErr != nil || c.allowDup && !c.sorted {
		return repo.Proof{}, false
	}
	return c.proof.Proof(), true
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
