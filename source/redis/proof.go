package redis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// The canonical record of a Redis key (FORMAT.md §11.1): key
// uvarint(db) || name, value one type byte then the type's canonical
// value. Keys with an expiry are left out: whether they still exist
// depends on when they are read, so neither a restore read back later nor
// a replay could agree with the backup about them.

func init() { source.RegisterStateProver("redis", proveState) }

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func canonicalList(elems [][]byte) []byte {
	b := binary.AppendUvarint([]byte{canonList}, uint64(len(elems)))
	for _, e := range elems {
		b = appendBytes(b, e)
	}
	return b
}

func canonicalSet(elems [][]byte) ([]byte, error) {
	slices.SortFunc(elems, bytes.Compare)
	b := binary.AppendUvarint([]byte{canonSet}, uint64(len(elems)))
	for i, e := range elems {
		if i > 0 && bytes.Equal(elems[i-1], e) {
			return nil, rdbErr("a set holds member %q twice", clip(e))
		}
		b = appendBytes(b, e)
	}
	return b, nil
}

type zmember struct {
	member []byte
	score  float64
}

func canonicalZset(ms []zmember) ([]byte, error) {
	slices.SortFunc(ms, func(a, b zmember) int { return bytes.Compare(a.member, b.member) })
	b := binary.AppendUvarint([]byte{canonZset}, uint64(len(ms)))
	for i, m := range ms {
		if i > 0 && bytes.Equal(ms[i-1].member, m.member) {
			return nil, rdbErr("a sorted set holds member %q twice", clip(m.member))
		}
		b = appendBytes(b, m.member)
		s := m.score
		if s == 0 {
			s = 0 // -0 reads back as 0
		}
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(s))
	}
	return b, nil
}

func canonicalHash(kv [][2][]byte) ([]byte, error) {
	slices.SortFunc(kv, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	b := binary.AppendUvarint([]byte{canonHash}, uint64(len(kv)))
	for i, p := range kv {
		if i > 0 && bytes.Equal(kv[i-1][0], p[0]) {
			return nil, rdbErr("a hash holds field %q twice", clip(p[0]))
		}
		b = appendBytes(appendBytes(b, p[0]), p[1])
	}
	return b, nil
}

type streamEntry struct {
	ms, seq uint64
	fields  [][2][]byte
}

func canonicalStream(es []streamEntry) ([]byte, error) {
	b := binary.AppendUvarint([]byte{canonStream}, uint64(len(es)))
	for i, e := range es {
		if i > 0 && (e.ms < es[i-1].ms || e.ms == es[i-1].ms && e.seq <= es[i-1].seq) {
			return nil, rdbErr("stream entry %d-%d does not follow %d-%d", e.ms, e.seq, es[i-1].ms, es[i-1].seq)
		}
		b = binary.AppendUvarint(b, e.ms)
		b = binary.AppendUvarint(b, e.seq)
		b = binary.AppendUvarint(b, uint64(len(e.fields)))
		for _, f := range e.fields {
			b = appendBytes(appendBytes(b, f[0]), f[1])
		}
	}
	return b, nil
}

// DigestRDB adds the canonical record of every key of the RDB without an
// expiry to d (FORMAT.md §11.1).
func DigestRDB(rd io.Reader, d *repo.Digester) error {
	return DecodeRDB(rd, func(k *RDBKey) error {
		if !k.Volatile {
			d.Add(k.RecordKey(), k.Value)
		}
		return nil
	})
}

// rdbProver digests the RDB of a base while the backup stores it: the
// export is teed into it, so the proof comes from the bytes stored.
type rdbProver struct {
	pw   *io.PipeWriter
	done chan error
	d    *repo.Digester
}

// proveRDB returns rd teed into a prover, which keeps reading to the end
// whatever it finds, so the backup never waits on it.
func proveRDB(r *repo.Repository, rd io.Reader) (io.Reader, *rdbProver) {
	pr, pw := io.Pipe()
	p := &rdbProver{pw: pw, done: make(chan error, 1), d: r.NewDigester()}
	go func() {
		err := DigestRDB(pr, p.d)
		io.Copy(io.Discard, pr)
		p.done <- err
	}()
	return io.TeeReader(rd, pw), p
}

// finish records the proof in snap when the RDB decoded; otherwise the
// snapshot stays unproven and logf says why.
func (p *rdbProver) finish(snap *repo.Snapshot, logf func(string, ...any)) {
	p.pw.Close()
	if err := <-p.done; err != nil {
		logf("the snapshot records no proof (it is unproven): %v", err)
		return
	}
	snap.SetProof(p.d.Proof())
}

// abort ends the prover of a backup that failed.
func (p *rdbProver) abort() {
	p.pw.CloseWithError(errors.New("backup failed"))
	<-p.done
}

// isBase reports whether a snapshot's export starts with a base header.
func isBase(ctx context.Context, r *repo.Repository, s index.SnapshotRef) (bool, error) {
	return engine.SnapshotHasPrefix(ctx, r, s, []byte(baseMagic))
}

var errProofStopped = errors.New("proof stopped")

// BaseProof recomputes the proof of a base snapshot from its stored RDB,
// verifying every byte as a restore does.
func BaseProof(ctx context.Context, r *repo.Repository, s index.SnapshotRef) (repo.Proof, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, r, s, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
		done <- err
	}()
	d := r.NewDigester()
	err := func() error {
		br := bufio.NewReaderSize(pr, 64<<10)
		head, _ := br.Peek(maxBaseHeader)
		_, n, err := ParseBaseHeader(head)
		if err != nil {
			return err
		}
		br.Discard(n)
		return DigestRDB(br, d)
	}()
	pr.CloseWithError(errProofStopped)
	// A restore error (a damaged blob) explains a truncated RDB better
	// than the decoder can.
	if rerr := <-done; rerr != nil && !errors.Is(rerr, errProofStopped) && (err == nil || errors.Is(err, ErrRDB)) {
		return repo.Proof{}, fmt.Errorf("snapshot %s: %w", s.ID.Short(), rerr)
	}
	if err != nil {
		return repo.Proof{}, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	return d.Proof(), nil
}

// proveState is the StateProver of Redis bases. Without a server it can
// give only a base's own state: commands are Redis's to apply, so a plan
// with commands after its base is unproven here and is proven by a
// restore into a scratch instance (drill --target).
func proveState(ctx context.Context, r *repo.Repository, p *index.Plan) (source.StateProof, error) {
	if p.Base.Format != engine.FormatRaw {
		return source.StateProof{}, source.ErrNotMine
	}
	if mine, err := isBase(ctx, r, p.Base); err != nil || !mine {
		if err == nil {
			err = source.ErrNotMine
		}
		return source.StateProof{}, err
	}
	reached := uint64(0)
	if p.Base.Position != nil {
		reached = *p.Base.Position
	}
	if len(p.Segments) > 0 {
		segs, err := engine.LoadPlanSegments(ctx, r, p)
		if err != nil {
			return source.StateProof{}, err
		}
		n := 0
		err = eachCommand(ctx, r, p, segs, ^uint64(0), func(seq uint64, t int64, c *Command) error {
			if !p.Applies(seq, t) {
				return errStopScan
			}
			n++
			return nil
		})
		if err != nil && !errors.Is(err, errStopScan) {
			return source.StateProof{}, err
		}
		if n > 0 {
			return source.StateProof{}, fmt.Errorf("%w: %d Redis commands after snapshot %s apply only through a server: drill with --target", source.ErrUnproven, n, p.Base.ID.Short())
		}
	}
	proof, err := BaseProof(ctx, r, p.Base)
	if err != nil {
		if errors.Is(err, ErrRDBUnsupported) {
			err = fmt.Errorf("%w: %v", source.ErrUnproven, err)
		}
		return source.StateProof{}, err
	}
	sp := source.StateProof{Proof: proof, Reached: reached}
	if want, ok := p.Base.Proof(); ok {
		return sp, want.Check("snapshot "+p.Base.ID.Short(), proof)
	}
	return sp, nil
}

// readPage is the number of keys or elements asked for per read-back call.
const readPage = 1000

// TargetProof reads every database of the instance back (SCAN, then one
// read per type) and returns the proof of what it holds: the canonical
// records of its keys without an expiry. Nobody should write to it while
// it is read; a key that vanishes mid-read counts as absent.
func TargetProof(ctx context.Context, conn *Conn, d *repo.Digester) error {
	spaces, err := conn.Keyspace()
	if err != nil {
		return err
	}
	dbs := make([]int, 0, len(spaces))
	for db := range spaces {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	defer conn.Do("SELECT", "0")
	for _, db := range dbs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := conn.Do("SELECT", strconv.Itoa(db)); err != nil {
			return err
		}
		names, err := scanAll(conn, "SCAN", "")
		if err != nil {
			return err
		}
		batch := make([]string, 0, readPage)
		flush := func() error {
			err := readKeys(conn, batch, func(name string, v []byte) {
				d.Add(recordKey(uint64(db), []byte(name)), v)
			})
			batch = batch[:0]
			if err != nil {
				return fmt.Errorf("db %d: %w", db, err)
			}
			return ctx.Err()
		}
		for name := range names {
			if batch = append(batch, name); len(batch) == readPage {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// readKeys reads a batch of keys, calling fn with the canonical value of
// each that exists and has no expiry. PTTL and TYPE of the whole batch,
// and the strings, are read in pipelines; collections one by one, in
// pages.
func readKeys(conn *Conn, names []string, fn func(name string, v []byte)) error {
	if len(names) == 0 {
		return nil
	}
	cmds := make([][]string, 0, 2*len(names))
	for _, n := range names {
		cmds = append(cmds, []string{"PTTL", n}, []string{"TYPE", n})
	}
	xs, err := conn.Pipeline(cmds)
	if err != nil {
		return err
	}
	var strs []string
	types := make([]string, len(names))
	for i, n := range names {
		for _, x := range xs[2*i : 2*i+2] {
			if err := x.Err(); err != nil {
				return fmt.Errorf("key %q: %w", clip([]byte(n)), err)
			}
		}
		if xs[2*i].Int != -1 {
			continue // -2: gone; ≥ 0: an expiry
		}
		types[i] = string(xs[2*i+1].Str)
		if types[i] == "string" {
			strs = append(strs, n)
		}
	}
	// Strings: the first 16 KiB of each in one pipeline (a batch holds at
	// most 16 MiB); longer ones are read alone.
	cmds = cmds[:0]
	for _, n := range strs {
		cmds = append(cmds, []string{"GETRANGE", n, "0", strconv.Itoa(pipelinePiece - 1)})
	}
	got := map[string][]byte{}
	if len(cmds) > 0 {
		xs, err := conn.Pipeline(cmds)
		if err != nil {
			return err
		}
		for i, x := range xs {
			if err := x.Err(); err != nil {
				return fmt.Errorf("key %q: %w", clip([]byte(strs[i])), err)
			}
			got[strs[i]] = x.Str
		}
	}
	for i, n := range names {
		var v []byte
		var ok bool
		switch t := types[i]; {
		case t == "":
			continue
		case t == "string" && len(got[n]) < pipelinePiece:
			v, ok = append([]byte{canonString}, got[n]...), true
		default:
			if v, ok, err = readKey(conn, n); err != nil {
				return fmt.Errorf("key %q: %w", clip([]byte(n)), err)
			}
		}
		if ok {
			fn(n, v)
		}
	}
	return nil
}

// stringPiece is the most of a string one read asks for: a reply stays
// well under the reply limit. pipelinePiece is the most of each string a
// pipelined batch asks for.
const (
	stringPiece   = maxReplyBulk / 4
	pipelinePiece = 16 << 10
)

// scanAll runs a SCAN-family command to the end and returns the distinct
// elements (SCAN may return one twice), for HSCAN and ZSCAN as pairs
// keyed by their first element.
func scanAll(conn *Conn, cmd, key string) (map[string]string, error) {
	out := map[string]string{}
	cursor := "0"
	pairs := cmd == "HSCAN" || cmd == "ZSCAN"
	for {
		args := []string{cmd}
		if key != "" {
			args = append(args, key)
		}
		x, err := conn.Do(append(args, cursor, "COUNT", strconv.Itoa(readPage))...)
		if err != nil {
			return nil, err
		}
		if x.Kind != '*' || len(x.Elems) != 2 || x.Elems[1].Kind != '*' {
			return nil, fmt.Errorf("%s: an unexpected reply", cmd)
		}
		els := x.Elems[1].Elems
		if pairs && len(els)%2 != 0 {
			return nil, fmt.Errorf("%s: an odd number of elements", cmd)
		}
		for i := 0; i < len(els); i++ {
			if pairs {
				out[string(els[i].Str)] = string(els[i+1].Str)
				i++
			} else {
				out[string(els[i].Str)] = ""
			}
		}
		cursor = string(x.Elems[0].Str)
		if cursor == "0" {
			return out, nil
		}
	}
}

// readKey returns a key's canonical value; ok is false for a key with an
// expiry or one that is gone.
func readKey(conn *Conn, name string) ([]byte, bool, error) {
	x, err := conn.Do("PTTL", name)
	if err != nil {
		return nil, false, err
	}
	if x.Int != -1 {
		return nil, false, nil // -2: gone; ≥ 0: volatile
	}
	x, err = conn.Do("TYPE", name)
	if err != nil {
		return nil, false, err
	}
	switch string(x.Str) {
	case "none":
		return nil, false, nil
	case "string":
		var v []byte
		for {
			start := len(v)
			x, err := conn.Do("GETRANGE", name, strconv.Itoa(start), strconv.Itoa(start+stringPiece-1))
			if err != nil {
				return nil, false, err
			}
			v = append(v, x.Str...)
			if len(x.Str) < stringPiece {
				return append([]byte{canonString}, v...), true, nil
			}
		}
	case "list":
		var elems [][]byte
		for start := 0; ; start += readPage {
			x, err := conn.Do("LRANGE", name, strconv.Itoa(start), strconv.Itoa(start+readPage-1))
			if err != nil {
				return nil, false, err
			}
			for _, e := range x.Elems {
				elems = append(elems, e.Str)
			}
			if len(x.Elems) < readPage {
				return canonicalList(elems), true, nil
			}
		}
	case "set":
		m, err := scanAll(conn, "SSCAN", name)
		if err != nil {
			return nil, false, err
		}
		elems := make([][]byte, 0, len(m))
		for k := range m {
			elems = append(elems, []byte(k))
		}
		v, err := canonicalSet(elems)
		return v, true, err
	case "zset":
		m, err := scanAll(conn, "ZSCAN", name)
		if err != nil {
			return nil, false, err
		}
		ms := make([]zmember, 0, len(m))
		for k, v := range m {
			s, err := parseScore([]byte(v))
			if err != nil {
				return nil, false, err
			}
			ms = append(ms, zmember{[]byte(k), s})
		}
		v, err := canonicalZset(ms)
		return v, true, err
	case "hash":
		m, err := scanAll(conn, "HSCAN", name)
		if err != nil {
			return nil, false, err
		}
		kv := make([][2][]byte, 0, len(m))
		for k, v := range m {
			kv = append(kv, [2][]byte{[]byte(k), []byte(v)})
		}
		v, err := canonicalHash(kv)
		return v, true, err
	case "stream":
		var es []streamEntry
		start := "-"
		for {
			x, err := conn.Do("XRANGE", name, start, "+", "COUNT", strconv.Itoa(readPage))
			if err != nil {
				return nil, false, err
			}
			for _, e := range x.Elems {
				if len(e.Elems) != 2 {
					return nil, false, errors.New("XRANGE: an unexpected reply")
				}
				ms, seq, ok := parseStreamID(e.Elems[0].Str)
				if !ok {
					return nil, false, fmt.Errorf("XRANGE: bad entry ID %q", clip(e.Elems[0].Str))
				}
				se := streamEntry{ms: ms, seq: seq}
				fv := e.Elems[1].Elems
				for i := 0; i+1 < len(fv); i += 2 {
					se.fields = append(se.fields, [2][]byte{fv[i].Str, fv[i+1].Str})
				}
				es = append(es, se)
				start = "(" + string(e.Elems[0].Str)
			}
			if len(x.Elems) < readPage {
				v, err := canonicalStream(es)
				return v, true, err
			}
		}
	}
	return nil, false, fmt.Errorf("%w: a key of type %q", ErrRDBUnsupported, x.Str)
}

func parseStreamID(b []byte) (ms, seq uint64, ok bool) {
	a, c, found := bytes.Cut(b, []byte("-"))
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(string(a), 10, 64)
	seq, err2 := strconv.ParseUint(string(c), 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}
