package etcd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is wrapped by every error about bytes that do not decode: a
// snapshot or revision event that was damaged or was not written by this
// package.
var ErrCorrupt = errors.New("etcd encoding corrupt")

// KeyValue is one key of a snapshot with its metadata.
type KeyValue struct {
	Key, Value     []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64 // 0 when the key is bound to no lease
}

// Snapshot encoding (FORMAT.md §21.1):
//
//	magic "strata-etcd-snapshot 1\n" (23 bytes)
//	uvarint revision | uvarint cluster ID
//	records, keys strictly ascending:
//	  'K' | uvarint len(key) | key | uvarint len(value) | value
//	      | uvarint create_revision | uvarint mod_revision | uvarint version | uvarint lease
//	trailer:
//	  'E' | uvarint number of 'K' records
//
// Nothing follows the trailer. The trailer makes a truncated export an
// error rather than a smaller keyspace.
const (
	snapshotMagic = "strata-etcd-snapshot 1\n"
	recKV         = 'K'
	recEnd        = 'E'
	// Decoders refuse longer keys and values: etcd's own request limit is
	// far below (1.5 MiB by default), and a bad length must not allocate
	// gigabytes.
	maxKey   = 16 << 20
	maxValue = 64 << 20
)

// SnapshotWriter encodes a snapshot. Keys must be added in strictly
// ascending byte order, as a range read returns them.
type SnapshotWriter struct {
	w     *bufio.Writer
	rev   int64
	n     uint64
	last  []byte
	err   error
	buf   []byte
	ended bool
}

// NewSnapshotWriter writes the header of a snapshot at revision rev of
// cluster clusterID to w.
func NewSnapshotWriter(w io.Writer, rev int64, clusterID uint64) *SnapshotWriter {
	sw := &SnapshotWriter{w: bufio.NewWriterSize(w, 256<<10), rev: rev}
	b := []byte(snapshotMagic)
	b = binary.AppendUvarint(b, uint64(rev))
	b = binary.AppendUvarint(b, clusterID)
	_, sw.err = sw.w.Write(b)
	return sw
}

// Add appends one key-value. It fails on keys out of order, an empty key,
// and metadata a revision-rev snapshot cannot hold.
func (sw *SnapshotWriter) Add(kv *KeyValue) error {
	if sw.err != nil {
		return sw.err
	}
	if err := checkKV(kv, sw.rev); err != nil {
		return err
	}
	if sw.n > 0 && bytes.Compare(kv.Key, sw.last) <= 0 {
		return fmt.Errorf("etcd snapshot: key %q after %q: keys must ascend", kv.Key, sw.last)
	}
	b := append(sw.buf[:0], recKV)
	b = binary.AppendUvarint(b, uint64(len(kv.Key)))
	b = append(b, kv.Key...)
	b = binary.AppendUvarint(b, uint64(len(kv.Value)))
	b = append(b, kv.Value...)
	b = binary.AppendUvarint(b, uint64(kv.CreateRevision))
	b = binary.AppendUvarint(b, uint64(kv.ModRevision))
	b = binary.AppendUvarint(b, uint64(kv.Version))
	b = binary.AppendUvarint(b, uint64(kv.Lease))
	sw.buf = b
	sw.last = append(sw.last[:0], kv.Key...)
	sw.n++
	_, sw.err = sw.w.Write(b)
	return sw.err
}

// Close writes the trailer and flushes. It does not close the underlying writer.
func (sw *SnapshotWriter) Close() error {
	if sw.err != nil {
		return sw.err
	}
	if sw.ended {
		return nil
	}
	sw.ended = true
	b := binary.AppendUvarint([]byte{recEnd}, sw.n)
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	return sw.w.Flush()
}

// Count returns how many key-values were added.
func (sw *SnapshotWriter) Count() uint64 { return sw.n }

func checkKV(kv *KeyValue, rev int64) error {
	switch {
	case len(kv.Key) == 0:
		return fmt.Errorf("%w: empty key", ErrCorrupt)
	case len(kv.Key) > maxKey || len(kv.Value) > maxValue:
		return fmt.Errorf("%w: key %.40q: key or value too long", ErrCorrupt, kv.Key)
	case kv.CreateRevision < 1 || kv.ModRevision < kv.CreateRevision || kv.ModRevision > rev:
		return fmt.Errorf("%w: key %.40q: revisions create %d, mod %d do not fit snapshot revision %d", ErrCorrupt, kv.Key, kv.CreateRevision, kv.ModRevision, rev)
	case kv.Version < 1 || kv.Lease < 0:
		return fmt.Errorf("%w: key %.40q: version %d, lease %d", ErrCorrupt, kv.Key, kv.Version, kv.Lease)
	}
	return nil
}

// SnapshotReader decodes a snapshot.
type SnapshotReader struct {
	r         *bufio.Reader
	Revision  int64
	ClusterID uint64
	off       int64
	n         uint64
	last      []byte
	done      bool
}

// NewSnapshotReader reads the header. It fails, wrapping ErrCorrupt, when r
// does not start with an etcd snapshot.
func NewSnapshotReader(r io.Reader) (*SnapshotReader, error) {
	sr := &SnapshotReader{r: bufio.NewReaderSize(r, 256<<10)}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr.r, magic); err != nil || string(magic) != snapshotMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: not an etcd snapshot (it does not start with %q; was it made by backup --source etcd://?)", ErrCorrupt, snapshotMagic)
	}
	sr.off = int64(len(magic))
	rev, err := sr.uvarint("revision")
	if err != nil {
		return nil, err
	}
	if rev < 1 || rev > math.MaxInt64 {
		return nil, sr.corrupt("revision %d", rev)
	}
	sr.Revision = int64(rev)
	if sr.ClusterID, err = sr.uvarint("cluster ID"); err != nil {
		return nil, err
	}
	return sr, nil
}

func (sr *SnapshotReader) corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: etcd snapshot at byte %d: %s", ErrCorrupt, sr.off, fmt.Sprintf(format, a...))
}

func (sr *SnapshotReader) readByte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, sr.corrupt("truncated (no trailer)")
		}
		return 0, err
	}
	sr.off++
	return c, nil
}

func (sr *SnapshotReader) uvarint(what string) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := sr.readByte()
		if err != nil {
			return 0, err
		}
		// One encoding per number: no overflow, no needless zero bytes.
		if i == binary.MaxVarintLen64-1 && c > 1 || i > 0 && c == 0 {
			break
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, sr.corrupt("bad %s", what)
}

func (sr *SnapshotReader) bytes(what string, limit int) ([]byte, error) {
	l, err := sr.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if l > uint64(limit) {
		return nil, sr.corrupt("%s of %d bytes (limit %d)", what, l, limit)
	}
	// Grow with what actually arrives, so a damaged length cannot make a
	// large allocation by itself.
	var b bytes.Buffer
	n, err := io.CopyN(&b, sr.r, int64(l))
	sr.off += n
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, sr.corrupt("truncated %s", what)
		}
		return nil, err
	}
	return b.Bytes(), nil
}

// Next returns the next key-value, or io.EOF after the trailer. Errors
// other than the reader's wrap ErrCorrupt. The key-value is fresh memory.
func (sr *SnapshotReader) Next() (*KeyValue, error) {
	if sr.done {
		return nil, io.EOF
	}
	tag, err := sr.readByte()
	if err != nil {
		return nil, err
	}
	switch tag {
	case recEnd:
		n, err := sr.uvarint("count")
		if err != nil {
			return nil, err
		}
		if n != sr.n {
			return nil, sr.corrupt("trailer counts %d keys, %d were read", n, sr.n)
		}
		if _, err := sr.r.ReadByte(); err == nil {
			return nil, sr.corrupt("bytes after the trailer")
		} else if !errors.Is(err, io.EOF) {
			return nil, err
		}
		sr.done = true
		return nil, io.EOF
	case recKV:
	default:
		return nil, sr.corrupt("unknown record %q", tag)
	}
	kv := &KeyValue{}
	if kv.Key, err = sr.bytes("key", maxKey); err != nil {
		return nil, err
	}
	if kv.Value, err = sr.bytes("value", maxValue); err != nil {
		return nil, err
	}
	var meta [4]uint64
	for i, what := range []string{"create revision", "mod revision", "version", "lease"} {
		if meta[i], err = sr.uvarint(what); err != nil {
			return nil, err
		}
		if meta[i] > math.MaxInt64 {
			return nil, sr.corrupt("%s %d", what, meta[i])
		}
	}
	kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease = int64(meta[0]), int64(meta[1]), int64(meta[2]), int64(meta[3])
	if err := checkKV(kv, sr.Revision); err != nil {
		return nil, fmt.Errorf("etcd snapshot at byte %d: %w", sr.off, err)
	}
	if sr.n > 0 && bytes.Compare(kv.Key, sr.last) <= 0 {
		return nil, sr.corrupt("key %.40q does not ascend", kv.Key)
	}
	sr.last = append(sr.last[:0], kv.Key...)
	sr.n++
	return kv, nil
}
