package repo

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"

	"github.com/zeebo/blake3"
)

// ctxProof derives the key of logical digests (FORMAT.md §2, §11.1).
const ctxProof = "strata v1 2026-12-05 logical digest"

// ErrProofMismatch is wrapped when restored content does not have the
// record count and logical digest it must have: a snapshot's own, or, for
// a replay, the next snapshot's. It is an integrity failure (exit code 3).
var ErrProofMismatch = errors.New("restored content does not match its proof")

// Proof is the record count and logical digest of a state (FORMAT.md §11.1).
// The digest is a sum, so the records may be added in any order, and the
// same set of records gives the same proof however it was produced.
type Proof struct {
	Records uint64
	Digest  [32]byte
}

// String prints the count and the first bytes of the digest; the digest is
// keyed, so it reveals nothing of the content.
func (p Proof) String() string {
	return fmt.Sprintf("%d records, digest %x…", p.Records, p.Digest[:6])
}

// Check compares got, a proof recomputed from restored content, with p,
// the recorded one. what names the state for the message. The error wraps
// ErrProofMismatch.
func (p Proof) Check(what string, got Proof) error {
	switch {
	case got.Records != p.Records:
		return fmt.Errorf("%w: %s: restored %d records, the proof records %d", ErrProofMismatch, what, got.Records, p.Records)
	case got.Digest != p.Digest:
		return fmt.Errorf("%w: %s: %d records as recorded, but their digest %x… differs from the recorded %x…", ErrProofMismatch, what, got.Records, got.Digest[:6], p.Digest[:6])
	}
	return nil
}

// Digester accumulates a Proof one record at a time. It is not safe for
// concurrent use. The zero value is not valid: use Repository.NewDigester.
type Digester struct {
	key [32]byte
	h   *blake3.Hasher // keyed with key; Reset between records
	n   uint64
	sum [4]uint64 // little-endian limbs of the 256-bit sum
	buf []byte
	out [32]byte
}

// NewDigester returns a digester keyed with the proof key derived from
// master (FORMAT.md §2); tests and spec vectors use it directly.
func NewDigester(master []byte) *Digester {
	d := &Digester{}
	blake3.DeriveKey(ctxProof, master, d.key[:])
	d.h, _ = blake3.NewKeyed(d.key[:]) // the key is 32 bytes: never fails
	return d
}

// NewDigester returns a digester keyed for this repository.
func (r *Repository) NewDigester() *Digester { return NewDigester(r.ring.Root()) }

// Add adds one canonical record: its key and its canonical value, both as
// the source defines them (FORMAT.md §11.1). The hash input is
// uvarint(len(key)) || key || value, so no two records share one.
func (d *Digester) Add(key, value []byte) {
	d.buf = binary.AppendUvarint(d.buf[:0], uint64(len(key)))
	d.buf = append(d.buf, key...)
	d.h.Reset()
	d.h.Write(d.buf)
	d.h.Write(value)
	sum := d.h.Sum(d.out[:0])
	var c uint64
	for i := range d.sum {
		d.sum[i], c = bits.Add64(d.sum[i], binary.LittleEndian.Uint64(sum[8*i:]), c)
	}
	d.n++
}

// Fork returns an empty digester with d's key, for a worker whose records
// are added back with Merge: the digest is a sum, so records may be
// digested in parallel.
func (d *Digester) Fork() *Digester {
	f := &Digester{key: d.key}
	f.h, _ = blake3.NewKeyed(f.key[:])
	return f
}

// Merge adds the records of o, a Fork of d, to d.
func (d *Digester) Merge(o *Digester) {
	var c uint64
	for i := range d.sum {
		d.sum[i], c = bits.Add64(d.sum[i], o.sum[i], c)
	}
	d.n += o.n
}

// Proof returns the count and digest of the records added so far.
func (d *Digester) Proof() Proof {
	p := Proof{Records: d.n}
	for i, l := range d.sum {
		binary.LittleEndian.PutUint64(p.Digest[8*i:], l)
	}
	return p
}

// Proof returns the snapshot's recorded proof, and false when it has none
// (an export kind without one, or a writer that did not record it): such a
// snapshot is unproven, never proven.
func (s *Snapshot) Proof() (Proof, bool) {
	if s.Records == nil || s.Digest == "" {
		return Proof{}, false
	}
	var p Proof
	p.Records = *s.Records
	if n, err := hex.Decode(p.Digest[:], []byte(s.Digest)); err != nil || n != 32 {
		return Proof{}, false // DecodeSnapshot refuses this; a hand-built value is unproven
	}
	return p, true
}

// SetProof records p in the snapshot.
func (s *Snapshot) SetProof(p Proof) {
	n := p.Records
	s.Records = &n
	s.Digest = hex.EncodeToString(p.Digest[:])
}

// validProof checks the proof fields of a decoded manifest: both or neither,
// and a digest of 64 lower-case hex digits.
func (s *Snapshot) validProof() error {
	if (s.Records == nil) != (s.Digest == "") {
		return errors.New("records and digest come together")
	}
	if s.Digest != "" {
		b, err := hex.DecodeString(s.Digest)
		if err != nil || len(b) != 32 || hex.EncodeToString(b) != s.Digest {
			return errors.New("digest is not 64 lower-case hex digits")
		}
	}
	return nil
}
