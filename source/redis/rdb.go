package redis

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// A small RDB decoder for the proof of a base (FORMAT.md §11.1, §20): it
// reads the encodings Redis 7.0 to 7.4 write and turns each key into its
// canonical record. No maintained Go RDB parser is served by the module
// proxy this project uses, and the decoder needs only the value encodings,
// not Redis's in-memory structures.

// ErrRDB is wrapped by every error about bytes the decoder cannot read: a
// truncated or malformed RDB.
var ErrRDB = errors.New("bad rdb")

// ErrRDBUnsupported is wrapped when an RDB holds something the decoder does
// not read (module types, the ziplist and zipmap encodings older Redis
// versions wrote): its snapshot records no proof.
var ErrRDBUnsupported = errors.New("rdb encoding not supported by the proof")

// RDB value types and opcodes (Redis rdb.h).
const (
	rdbTypeString          = 0
	rdbTypeList            = 1
	rdbTypeSet             = 2
	rdbTypeZset            = 3
	rdbTypeHash            = 4
	rdbTypeZset2           = 5
	rdbTypeSetIntset       = 11
	rdbTypeListQuicklist   = 14
	rdbTypeStreamLP        = 15
	rdbTypeHashListpack    = 16
	rdbTypeZsetListpack    = 17
	rdbTypeListQuicklist2  = 18
	rdbTypeStreamLP2       = 19
	rdbTypeSetListpack     = 20
	rdbTypeStreamLP3       = 21
	rdbOpSlotInfo          = 0xf4
	rdbOpFunction2         = 0xf5
	rdbOpModuleAux         = 0xf7
	rdbOpIdle              = 0xf8
	rdbOpFreq              = 0xf9
	rdbOpAux               = 0xfa
	rdbOpResizeDB          = 0xfb
	rdbOpExpireMS          = 0xfc
	rdbOpExpire            = 0xfd
	rdbOpSelectDB          = 0xfe
	rdbOpEOF               = 0xff
	rdbMaxVersion          = 12 // Redis 7.4
	rdbMaxString           = 512 << 20
	quicklistNodePlain     = 1
	quicklistNodePacked    = 2
	streamItemFlagDeleted  = 1
	streamItemFlagSameFlds = 2
)

// Canonical value types (FORMAT.md §11.1): the first byte of a record's value.
const (
	canonString = 1
	canonList   = 2
	canonSet    = 3
	canonZset   = 4
	canonHash   = 5
	canonStream = 6
)

// RDBKey is one key of an RDB as its canonical record.
type RDBKey struct {
	DB       uint64
	Name     []byte
	Volatile bool   // the key has an expiry time
	Value    []byte // canonical value (FORMAT.md §11.1)
}

// RecordKey is the key of the key's canonical record: uvarint(db) || name.
func (k *RDBKey) RecordKey() []byte { return recordKey(k.DB, k.Name) }

func recordKey(db uint64, name []byte) []byte {
	return append(binary.AppendUvarint(nil, db), name...)
}

type rdbReader struct {
	br *bufio.Reader
}

func rdbErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRDB, fmt.Sprintf(format, args...))
}

func (r *rdbReader) byte() (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, rdbErr("truncated")
	}
	return b, nil
}

// full reads n bytes without trusting n for the allocation: a truncated
// input fails before it has made room for what a length claims.
func (r *rdbReader) full(n uint64) ([]byte, error) {
	if n > rdbMaxString {
		return nil, rdbErr("a length of %d bytes", n)
	}
	out := make([]byte, 0, min(n, 64<<10))
	for uint64(len(out)) < n {
		chunk := min(n-uint64(len(out)), 1<<20)
		start := len(out)
		out = append(out, make([]byte, chunk)...)
		if _, err := io.ReadFull(r.br, out[start:]); err != nil {
			return nil, rdbErr("truncated")
		}
	}
	return out, nil
}

func (r *rdbReader) fixed(n int) ([]byte, error) { return r.full(uint64(n)) }

// length reads an RDB length; enc reports the special string encodings
// (11xxxxxx), whose low bits are returned instead.
func (r *rdbReader) length() (n uint64, enc bool, err error) {
	b, err := r.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		c, err := r.byte()
		return uint64(b&0x3f)<<8 | uint64(c), false, err
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		p, err := r.fixed(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case 0x81:
		p, err := r.fixed(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, rdbErr("bad length byte %#x", b)
}

func (r *rdbReader) count() (uint64, error) {
	n, enc, err := r.length()
	if err == nil && enc {
		err = rdbErr("an encoded string where a length belongs")
	}
	return n, err
}

// skipCounts reads n lengths whose values nothing needs.
func (r *rdbReader) skipCounts(n int) error {
	for range n {
		if _, err := r.count(); err != nil {
			return err
		}
	}
	return nil
}

// skipStrings reads n strings whose values nothing needs.
func (r *rdbReader) skipStrings(n int) error {
	for range n {
		if _, err := r.str(); err != nil {
			return err
		}
	}
	return nil
}

// str reads an RDB string: plain, an integer, or LZF-compressed.
func (r *rdbReader) str() ([]byte, error) {
	n, enc, err := r.length()
	if err != nil {
		return nil, err
	}
	if !enc {
		return r.full(n)
	}
	switch n {
	case 0, 1, 2:
		p, err := r.fixed(1 << n)
		if err != nil {
			return nil, err
		}
		var v int64
		switch n {
		case 0:
			v = int64(int8(p[0]))
		case 1:
			v = int64(int16(binary.LittleEndian.Uint16(p)))
		case 2:
			v = int64(int32(binary.LittleEndian.Uint32(p)))
		}
		return strconv.AppendInt(nil, v, 10), nil
	case 3:
		clen, err := r.count()
		if err != nil {
			return nil, err
		}
		ulen, err := r.count()
		if err != nil {
			return nil, err
		}
		if ulen > rdbMaxString {
			return nil, rdbErr("a compressed string of %d bytes", ulen)
		}
		c, err := r.full(clen)
		if err != nil {
			return nil, err
		}
		return lzfDecompress(c, int(ulen))
	}
	return nil, rdbErr("unknown string encoding %d", n)
}

// lzfDecompress expands LZF data (liblzf's format) to exactly n bytes.
func lzfDecompress(in []byte, n int) ([]byte, error) {
	out := make([]byte, 0, min(n, len(in)*8+64))
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // a literal run of ctrl+1 bytes
			l := ctrl + 1
			if i+l > len(in) || len(out)+l > n {
				return nil, rdbErr("lzf: literal past the end")
			}
			out = append(out, in[i:i+l]...)
			i += l
			continue
		}
		l := ctrl >> 5
		if l == 7 {
			if i >= len(in) {
				return nil, rdbErr("lzf: truncated")
			}
			l += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, rdbErr("lzf: truncated")
		}
		back := (ctrl&0x1f)<<8 + int(in[i]) + 1
		i++
		l += 2
		if back > len(out) || len(out)+l > n {
			return nil, rdbErr("lzf: back reference out of range")
		}
		for j := 0; j < l; j++ { // may overlap itself
			out = append(out, out[len(out)-back])
		}
	}
	if len(out) != n {
		return nil, rdbErr("lzf: %d bytes, want %d", len(out), n)
	}
	return out, nil
}

// DecodeRDB reads a whole RDB from rd (the bytes after a base's header)
// and calls fn with each key's canonical record, in file order. It checks
// the magic, the version (at most 12, Redis 7.4) and that the EOF opcode
// and the 8-byte checksum end it; the checksum itself is checked by the
// capture before a base is stored (FORMAT.md §20). Errors wrap ErrRDB
// (malformed or truncated) or ErrRDBUnsupported.
func DecodeRDB(rd io.Reader, fn func(k *RDBKey) error) error {
	r := &rdbReader{br: bufio.NewReaderSize(rd, 64<<10)}
	head, err := r.fixed(9)
	if err != nil {
		return err
	}
	if string(head[:5]) != "REDIS" {
		return rdbErr("no REDIS magic")
	}
	ver, err := strconv.Atoi(string(head[5:]))
	if err != nil || ver < 1 {
		return rdbErr("bad version %q", head[5:])
	}
	if ver > rdbMaxVersion {
		return fmt.Errorf("%w: RDB version %d (this decoder reads up to %d)", ErrRDBUnsupported, ver, rdbMaxVersion)
	}
	var db uint64
	volatile := false
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case rdbOpEOF:
			if ver >= 5 {
				if _, err := r.fixed(8); err != nil {
					return err
				}
			}
			if _, err := r.br.ReadByte(); err != io.EOF {
				return rdbErr("bytes after the checksum")
			}
			return nil
		case rdbOpSelectDB:
			if db, err = r.count(); err != nil {
				return err
			}
			continue
		case rdbOpResizeDB:
			if err := r.skipCounts(2); err != nil {
				return err
			}
			continue
		case rdbOpSlotInfo:
			if err := r.skipCounts(3); err != nil {
				return err
			}
			continue
		case rdbOpAux:
			if err := r.skipStrings(2); err != nil {
				return err
			}
			continue
		case rdbOpFunction2:
			if err := r.skipStrings(1); err != nil {
				return err
			}
			continue
		case rdbOpExpireMS:
			if _, err := r.fixed(8); err != nil {
				return err
			}
			volatile = true
			continue
		case rdbOpExpire:
			if _, err := r.fixed(4); err != nil {
				return err
			}
			volatile = true
			continue
		case rdbOpFreq:
			if _, err := r.byte(); err != nil {
				return err
			}
			continue
		case rdbOpIdle:
			if err := r.skipCounts(1); err != nil {
				return err
			}
			continue
		case rdbOpModuleAux:
			return fmt.Errorf("%w: module data", ErrRDBUnsupported)
		}
		name, err := r.str()
		if err != nil {
			return err
		}
		val, err := r.value(op)
		if err != nil {
			return fmt.Errorf("key %q: %w", clip(name), err)
		}
		if err := fn(&RDBKey{DB: db, Name: name, Volatile: volatile, Value: val}); err != nil {
			return err
		}
		volatile = false
	}
}

// value reads one value of type t and returns its canonical encoding.
func (r *rdbReader) value(t byte) ([]byte, error) {
	switch t {
	case rdbTypeString:
		s, err := r.str()
		return append([]byte{canonString}, s...), err
	case rdbTypeList, rdbTypeSet:
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		var elems [][]byte
		for range n {
			s, err := r.str()
			if err != nil {
				return nil, err
			}
			elems = append(elems, s)
		}
		if t == rdbTypeList {
			return canonicalList(elems), nil
		}
		return canonicalSet(elems)
	case rdbTypeSetIntset:
		b, err := r.str()
		if err != nil {
			return nil, err
		}
		elems, err := decodeIntset(b)
		if err != nil {
			return nil, err
		}
		return canonicalSet(elems)
	case rdbTypeSetListpack:
		b, err := r.str()
		if err != nil {
			return nil, err
		}
		elems, err := decodeListpack(b)
		if err != nil {
			return nil, err
		}
		return canonicalSet(elems)
	case rdbTypeZset, rdbTypeZset2:
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		var ms []zmember
		for range n {
			m, err := r.str()
			if err != nil {
				return nil, err
			}
			var score float64
			if t == rdbTypeZset2 {
				p, err := r.fixed(8)
				if err != nil {
					return nil, err
				}
				score = math.Float64frombits(binary.LittleEndian.Uint64(p))
			} else if score, err = r.oldScore(); err != nil {
				return nil, err
			}
			ms = append(ms, zmember{m, score})
		}
		return canonicalZset(ms)
	case rdbTypeZsetListpack:
		b, err := r.str()
		if err != nil {
			return nil, err
		}
		elems, err := decodeListpack(b)
		if err != nil {
			return nil, err
		}
		if len(elems)%2 != 0 {
			return nil, rdbErr("a sorted set listpack of %d elements", len(elems))
		}
		ms := make([]zmember, 0, len(elems)/2)
		for i := 0; i < len(elems); i += 2 {
			s, err := parseScore(elems[i+1])
			if err != nil {
				return nil, err
			}
			ms = append(ms, zmember{elems[i], s})
		}
		return canonicalZset(ms)
	case rdbTypeHash:
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		var kv [][2][]byte
		for range n {
			f, err := r.str()
			if err != nil {
				return nil, err
			}
			v, err := r.str()
			if err != nil {
				return nil, err
			}
			kv = append(kv, [2][]byte{f, v})
		}
		return canonicalHash(kv)
	case rdbTypeHashListpack:
		b, err := r.str()
		if err != nil {
			return nil, err
		}
		elems, err := decodeListpack(b)
		if err != nil {
			return nil, err
		}
		if len(elems)%2 != 0 {
			return nil, rdbErr("a hash listpack of %d elements", len(elems))
		}
		kv := make([][2][]byte, 0, len(elems)/2)
		for i := 0; i < len(elems); i += 2 {
			kv = append(kv, [2][]byte{elems[i], elems[i+1]})
		}
		return canonicalHash(kv)
	case rdbTypeListQuicklist2:
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		var elems [][]byte
		for range n {
			container, err := r.count()
			if err != nil {
				return nil, err
			}
			b, err := r.str()
			if err != nil {
				return nil, err
			}
			switch container {
			case quicklistNodePlain:
				elems = append(elems, b)
			case quicklistNodePacked:
				lp, err := decodeListpack(b)
				if err != nil {
					return nil, err
				}
				elems = append(elems, lp...)
			default:
				return nil, rdbErr("quicklist container %d", container)
			}
		}
		return canonicalList(elems), nil
	case rdbTypeStreamLP, rdbTypeStreamLP2, rdbTypeStreamLP3:
		return r.stream(t)
	}
	return nil, fmt.Errorf("%w: value type %d", ErrRDBUnsupported, t)
}

// oldScore reads a score of the pre-RDB-8 sorted set type: a length byte
// then ASCII (253 NaN, 254 +inf, 255 -inf).
func (r *rdbReader) oldScore() (float64, error) {
	l, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch l {
	case 253:
		return 0, rdbErr("a NaN score")
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	p, err := r.fixed(int(l))
	if err != nil {
		return 0, err
	}
	return parseScore(p)
}

func parseScore(p []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(p), 64)
	if err != nil || math.IsNaN(f) {
		return 0, rdbErr("bad score %q", clip(p))
	}
	return f, nil
}

// stream reads a stream value: its listpacks of entries, then its
// metadata and consumer groups, which are read past and left out of the
// canonical value (FORMAT.md §11.1).
func (r *rdbReader) stream(t byte) ([]byte, error) {
	nodes, err := r.count()
	if err != nil {
		return nil, err
	}
	var entries []streamEntry
	for range nodes {
		key, err := r.str()
		if err != nil {
			return nil, err
		}
		if len(key) != 16 {
			return nil, rdbErr("a stream node key of %d bytes", len(key))
		}
		lp, err := r.str()
		if err != nil {
			return nil, err
		}
		es, err := decodeStreamNode(binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:]), lp)
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
	}
	meta := 3 // length, last id
	if t >= rdbTypeStreamLP2 {
		meta += 5 // first id, max deleted id, entries added
	}
	if err := r.skipCounts(meta); err != nil {
		return nil, err
	}
	groups, err := r.count()
	if err != nil {
		return nil, err
	}
	for range groups {
		if _, err := r.str(); err != nil {
			return nil, err
		}
		n := 2 // last delivered id
		if t >= rdbTypeStreamLP2 {
			n++ // entries read
		}
		if err := r.skipCounts(n); err != nil {
			return nil, err
		}
		pel, err := r.count()
		if err != nil {
			return nil, err
		}
		for range pel {
			if _, err := r.fixed(16 + 8); err != nil { // id, delivery time
				return nil, err
			}
			if _, err := r.count(); err != nil { // delivery count
				return nil, err
			}
		}
		consumers, err := r.count()
		if err != nil {
			return nil, err
		}
		for range consumers {
			if _, err := r.str(); err != nil {
				return nil, err
			}
			times := 8 // seen time
			if t >= rdbTypeStreamLP3 {
				times += 8 // active time
			}
			if _, err := r.fixed(times); err != nil {
				return nil, err
			}
			pending, err := r.count()
			if err != nil {
				return nil, err
			}
			for range pending {
				if _, err := r.fixed(16); err != nil {
					return nil, err
				}
			}
		}
	}
	return canonicalStream(entries)
}

// decodeStreamNode reads the entries of one stream listpack whose master
// ID is ms-seq (Redis t_stream.c): a master entry (count, deleted, the
// master fields, a 0), then per entry flags, ID deltas, the fields and
// values (or the values only, with the master's fields) and a count.
func decodeStreamNode(ms, seq uint64, lp []byte) ([]streamEntry, error) {
	el, err := decodeListpack(lp)
	if err != nil {
		return nil, err
	}
	i := 0
	next := func() ([]byte, error) {
		if i >= len(el) {
			return nil, rdbErr("a stream listpack ends early")
		}
		i++
		return el[i-1], nil
	}
	num := func() (int64, error) {
		b, err := next()
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return 0, rdbErr("a stream listpack holds %q where a number belongs", clip(b))
		}
		return v, nil
	}
	count, err := num()
	if err != nil {
		return nil, err
	}
	deleted, err := num()
	if err != nil {
		return nil, err
	}
	nmaster, err := num()
	if err != nil {
		return nil, err
	}
	if count < 0 || deleted < 0 || nmaster < 0 || nmaster > int64(len(el)) || count+deleted > int64(len(el)) {
		return nil, rdbErr("a stream listpack header (%d, %d, %d)", count, deleted, nmaster)
	}
	master := make([][]byte, nmaster)
	for j := range master {
		if master[j], err = next(); err != nil {
			return nil, err
		}
	}
	if z, err := num(); err != nil || z != 0 {
		return nil, rdbErr("a stream listpack's master entry does not end in 0")
	}
	var out []streamEntry
	for k := int64(0); k < count+deleted; k++ {
		flags, err := num()
		if err != nil {
			return nil, err
		}
		dms, err := num()
		if err != nil {
			return nil, err
		}
		dseq, err := num()
		if err != nil {
			return nil, err
		}
		e := streamEntry{ms: ms + uint64(dms), seq: seq + uint64(dseq)}
		if flags&streamItemFlagSameFlds != 0 {
			for _, f := range master {
				v, err := next()
				if err != nil {
					return nil, err
				}
				e.fields = append(e.fields, [2][]byte{f, v})
			}
		} else {
			n, err := num()
			if err != nil {
				return nil, err
			}
			if n < 0 || n > int64(len(el)) {
				return nil, rdbErr("a stream entry of %d fields", n)
			}
			for range n {
				f, err := next()
				if err != nil {
					return nil, err
				}
				v, err := next()
				if err != nil {
					return nil, err
				}
				e.fields = append(e.fields, [2][]byte{f, v})
			}
		}
		if _, err := num(); err != nil { // lp-count
			return nil, err
		}
		if flags&streamItemFlagDeleted == 0 {
			out = append(out, e)
		}
	}
	if i != len(el) {
		return nil, rdbErr("%d elements after a stream listpack's entries", len(el)-i)
	}
	return out, nil
}

// decodeIntset returns an intset's members as decimal strings.
func decodeIntset(b []byte) ([][]byte, error) {
	if len(b) < 8 {
		return nil, rdbErr("an intset of %d bytes", len(b))
	}
	w := binary.LittleEndian.Uint32(b)
	n := binary.LittleEndian.Uint32(b[4:])
	if w != 2 && w != 4 && w != 8 || uint64(len(b)-8) != uint64(n)*uint64(w) {
		return nil, rdbErr("an intset of width %d and length %d in %d bytes", w, n, len(b))
	}
	out := make([][]byte, 0, n)
	for p := b[8:]; len(p) > 0; p = p[w:] {
		var v int64
		switch w {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(p)))
		case 8:
			v = int64(binary.LittleEndian.Uint64(p))
		}
		out = append(out, strconv.AppendInt(nil, v, 10))
	}
	return out, nil
}

// decodeListpack returns a listpack's elements, integers as decimal
// strings (Redis listpack.c): a 6-byte header (total bytes, count), the
// entries each followed by its back-length, and 0xFF.
func decodeListpack(b []byte) ([][]byte, error) {
	if len(b) < 7 || binary.LittleEndian.Uint32(b) != uint32(len(b)) || b[len(b)-1] != 0xff {
		return nil, rdbErr("a listpack of %d bytes with a bad header or end", len(b))
	}
	var out [][]byte
	p := b[6 : len(b)-1]
	for len(p) > 0 {
		c := p[0]
		var hdr, l int
		var v int64
		isInt := true
		switch {
		case c&0x80 == 0:
			hdr, v = 1, int64(c&0x7f)
		case c&0xc0 == 0x80:
			hdr, l, isInt = 1, int(c&0x3f), false
		case c&0xe0 == 0xc0:
			if len(p) < 2 {
				return nil, rdbErr("listpack: truncated entry")
			}
			hdr = 2
			v = int64(uint64(c&0x1f)<<8|uint64(p[1])) << 51 >> 51 // 13-bit signed
		case c&0xf0 == 0xe0:
			if len(p) < 2 {
				return nil, rdbErr("listpack: truncated entry")
			}
			hdr, l, isInt = 2, int(c&0x0f)<<8|int(p[1]), false
		case c == 0xf0:
			if len(p) < 5 {
				return nil, rdbErr("listpack: truncated entry")
			}
			n := binary.LittleEndian.Uint32(p[1:])
			if uint64(n) > uint64(len(p)) {
				return nil, rdbErr("listpack: a string of %d bytes", n)
			}
			hdr, l, isInt = 5, int(n), false
		case c >= 0xf1 && c <= 0xf4:
			w := map[byte]int{0xf1: 2, 0xf2: 3, 0xf3: 4, 0xf4: 8}[c]
			if len(p) < 1+w {
				return nil, rdbErr("listpack: truncated entry")
			}
			var u uint64
			for j := w; j >= 1; j-- {
				u = u<<8 | uint64(p[j])
			}
			hdr, v = 1+w, int64(u<<(64-8*w))>>(64-8*w)
		default:
			return nil, rdbErr("listpack: bad entry byte %#x", c)
		}
		size := hdr + l
		if size > len(p) {
			return nil, rdbErr("listpack: entry past the end")
		}
		if isInt {
			out = append(out, strconv.AppendInt(nil, v, 10))
		} else {
			out = append(out, append([]byte(nil), p[hdr:size]...))
		}
		bl := backlenSize(size)
		if size+bl > len(p) {
			return nil, rdbErr("listpack: entry past the end")
		}
		p = p[size+bl:]
	}
	if n := binary.LittleEndian.Uint16(b[4:]); n != 0xffff && int(n) != len(out) {
		return nil, rdbErr("listpack: %d entries, its header says %d", len(out), n)
	}
	return out, nil
}

// backlenSize is the size of the back-length after an entry of size bytes.
func backlenSize(size int) int {
	switch {
	case size <= 127:
		return 1
	case size < 16383:
		return 2
	case size < 2097151:
		return 3
	case size < 268435455:
		return 4
	}
	return 5
}
