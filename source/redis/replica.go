package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"math/bits"
	"net"
	"strconv"
	"strings"
	"time"
)

// Sync is the master's answer to PSYNC.
type Sync struct {
	// Full: the master sends an RDB (read it with Conn.RDB), consistent at
	// Offset. Otherwise the stream continues right after the offset asked for.
	Full   bool
	ReplID string
	Offset int64 // the offset the replica is at once the sync is done
}

// Replicate makes c a replica: REPLCONF, then PSYNC. With replID "" it
// asks for a full sync; otherwise it asks to continue after offset (the
// last byte applied). The master may answer with a full sync anyway, when
// its backlog no longer holds offset+1 or its history differs.
func (c *Conn) Replicate(replID string, offset int64) (Sync, error) {
	c.nc.SetDeadline(time.Now().Add(time.Minute))
	defer c.nc.SetDeadline(time.Time{})
	port := "0"
	if a, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port) // tells this replica apart in the master's INFO
	}
	for _, args := range [][]string{{"REPLCONF", "listening-port", port}, {"REPLCONF", "capa", "eof", "capa", "psync2"}} {
		x, err := c.do(args...)
		if err != nil {
			return Sync{}, fmt.Errorf("%s: %s %s: %w", c.name, args[0], args[1], err)
		}
		if x.Kind == '-' {
			return Sync{}, fmt.Errorf("%s: %w: %s %s: %s", c.name, ErrRefused, args[0], args[1], x.Str)
		}
	}
	args := []string{"PSYNC", "?", "-1"}
	if replID != "" {
		args = []string{"PSYNC", replID, strconv.FormatInt(offset+1, 10)}
	}
	if err := c.send(args...); err != nil {
		return Sync{}, fmt.Errorf("%s: PSYNC: %w", c.name, err)
	}
	var line []byte
	for {
		// A master preparing an RDB sends bare newlines to keep the link alive.
		l, err := c.r.line()
		if err != nil {
			return Sync{}, fmt.Errorf("%s: PSYNC: %w", c.name, err)
		}
		if len(l) > 0 {
			line = l
			break
		}
	}
	switch f := strings.Fields(string(line)); {
	case len(f) == 3 && f[0] == "+FULLRESYNC":
		off, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || off < 0 || !validReplID(f[1]) {
			return Sync{}, fmt.Errorf("%s: %w: bad FULLRESYNC line %q", c.name, ErrProtocol, clip(line))
		}
		return Sync{Full: true, ReplID: f[1], Offset: off}, nil
	case len(f) >= 1 && f[0] == "+CONTINUE":
		if replID == "" {
			return Sync{}, fmt.Errorf("%s: %w: CONTINUE to a full sync request", c.name, ErrProtocol)
		}
		s := Sync{ReplID: replID, Offset: offset}
		if len(f) == 2 {
			// The master's history was renamed (a failover); offsets go on.
			if !validReplID(f[1]) {
				return Sync{}, fmt.Errorf("%s: %w: bad CONTINUE line %q", c.name, ErrProtocol, clip(line))
			}
			s.ReplID = f[1]
		}
		return s, nil
	case line[0] == '-':
		return Sync{}, fmt.Errorf("%s: %w: PSYNC: %.200s", c.name, ErrRefused, line[1:])
	}
	return Sync{}, fmt.Errorf("%s: %w: unexpected PSYNC reply %q", c.name, ErrProtocol, clip(line))
}

func validReplID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// RDB returns the RDB of a full sync: a reader of exactly its bytes that
// fails, rather than ending early, if the connection breaks, if the data
// is not an RDB, or if the RDB's checksum does not match. Read it to its
// end before reading commands.
func (c *Conn) RDB() (io.Reader, error) {
	var head []byte
	for {
		l, err := c.r.line()
		if err != nil {
			return nil, fmt.Errorf("%s: waiting for the RDB: %w", c.name, err)
		}
		if len(l) > 0 {
			head = l
			break
		}
	}
	if len(head) < 2 || head[0] != '$' {
		return nil, fmt.Errorf("%s: %w: expected the RDB's length, got %q", c.name, ErrProtocol, clip(head))
	}
	if mark, ok := bytes.CutPrefix(head[1:], []byte("EOF:")); ok {
		if len(mark) != eofMarkLen {
			return nil, fmt.Errorf("%s: %w: bad diskless RDB marker %q", c.name, ErrProtocol, clip(head))
		}
		return newRDBCheck(&eofReader{r: c.r, mark: append([]byte(nil), mark...)}, c.name), nil
	}
	n, ok := parseInt(head[1:])
	if !ok || n < 0 {
		return nil, fmt.Errorf("%s: %w: bad RDB length %q", c.name, ErrProtocol, clip(head))
	}
	return newRDBCheck(&bulkReader{r: c.r, left: n, total: n}, c.name), nil
}

// ReadCommand reads the next command of the replication stream; see
// Reader.ReadCommand.
func (c *Conn) ReadCommand(limit int) ([][]byte, int64, error) {
	return c.r.ReadCommand(limit)
}

// Ack tells the master the replica has processed the stream through offset.
func (c *Conn) Ack(offset int64) error {
	return c.send("REPLCONF", "ACK", strconv.FormatInt(offset, 10))
}

// bulkReader reads an RDB sent with its length up front.
type bulkReader struct {
	r           *Reader
	left, total int64
}

func (b *bulkReader) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.left)]
	n, err := b.r.br.Read(p)
	b.r.n += int64(n)
	b.left -= int64(n)
	if err == io.EOF {
		err = fmt.Errorf("the connection ended %d bytes into an RDB of %d: %w", b.total-b.left, b.total, io.ErrUnexpectedEOF)
	}
	return n, err
}

const eofMarkLen = 40

// eofReader reads a diskless RDB: no length up front, the end marked by
// 40 random bytes the master named in the header. The mark is searched
// for everywhere, not only at the end of a network read, so commands the
// master sends right after it are left for the stream.
type eofReader struct {
	r    *Reader
	mark []byte
	hold []byte // up to 39 bytes that may begin the mark
	out  []byte // bytes ready for the caller
	done bool
	read int64
}

func (e *eofReader) Read(p []byte) (int, error) {
	for {
		if len(e.out) > 0 {
			n := copy(p, e.out)
			e.out = e.out[n:]
			return n, nil
		}
		if e.done {
			return 0, io.EOF
		}
		if e.r.br.Buffered() == 0 {
			if _, err := e.r.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, fmt.Errorf("the connection ended %d bytes into a diskless RDB: %w", e.read, err)
			}
		}
		b, _ := e.r.br.Peek(e.r.br.Buffered())
		w := make([]byte, 0, len(e.hold)+len(b))
		w = append(append(w, e.hold...), b...)
		if i := bytes.Index(w, e.mark); i >= 0 {
			used := i + eofMarkLen - len(e.hold)
			e.r.discard(int64(used))
			e.out, e.hold, e.done = w[:i], nil, true
			e.read += int64(i)
			continue
		}
		e.r.discard(int64(len(b)))
		keep := min(eofMarkLen-1, len(w))
		e.out = w[:len(w)-keep]
		e.hold = append([]byte(nil), w[len(w)-keep:]...)
		e.read += int64(len(e.out))
	}
}

// crcJones is the CRC-64 Redis uses for RDB files (Jones polynomial,
// reflected, no inversion). Go's crc64 takes the reversed polynomial and
// inverts before and after, which crcUpdate undoes.
var crcJones = crc64.MakeTable(bits.Reverse64(0xad93d23594c935a9))

func crcUpdate(crc uint64, p []byte) uint64 { return ^crc64.Update(^crc, crcJones, p) }

// ErrBadRDB is wrapped by errors about an RDB that fails its checks.
var ErrBadRDB = errors.New("bad RDB")

// rdbCheck passes an RDB through, checking its magic and version at the
// start and its CRC-64 trailer at the end (a zero trailer means the
// master has rdbchecksum off). A failed check is an error in place of EOF,
// so a backup reading it never stores a damaged RDB.
type rdbCheck struct {
	src   io.Reader
	name  string
	crc   uint64
	tail  [8]byte // the last bytes read, not yet in crc: the trailer, at the end
	ntail int
	head  []byte
	total int64
	err   error
}

func newRDBCheck(src io.Reader, name string) *rdbCheck { return &rdbCheck{src: src, name: name} }

// rdbHeaderLen is "REDIS" and four version digits.
const rdbHeaderLen = 9

func (c *rdbCheck) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.src.Read(p)
	c.consume(p[:n])
	if c.err == nil && c.head != nil && len(c.head) >= rdbHeaderLen {
		c.err = checkRDBHeader(c.head)
		c.head = c.head[:0:0]
	}
	if err == io.EOF {
		if c.err == nil {
			c.err = c.finish()
		}
		if c.err == nil {
			c.err = io.EOF
		}
	} else if err != nil {
		c.err = err
	}
	if c.err != nil && c.err != io.EOF {
		c.err = fmt.Errorf("%s: %w", c.name, c.err)
	}
	return n, c.err
}

func (c *rdbCheck) consume(b []byte) {
	if c.total < rdbHeaderLen {
		c.head = append(c.head, b[:min(len(b), rdbHeaderLen-int(c.total))]...)
	}
	c.total += int64(len(b))
	if len(b) >= 8 {
		c.crc = crcUpdate(c.crc, c.tail[:c.ntail])
		c.crc = crcUpdate(c.crc, b[:len(b)-8])
		copy(c.tail[:], b[len(b)-8:])
		c.ntail = 8
		return
	}
	var w [16]byte
	all := append(append(w[:0], c.tail[:c.ntail]...), b...)
	if len(all) > 8 {
		c.crc = crcUpdate(c.crc, all[:len(all)-8])
		all = all[len(all)-8:]
	}
	c.ntail = copy(c.tail[:], all)
}

func checkRDBHeader(h []byte) error {
	if !bytes.HasPrefix(h, []byte("REDIS")) {
		return fmt.Errorf("%w: the data does not begin with the RDB magic \"REDIS\"", ErrBadRDB)
	}
	if _, ok := parseInt(h[5:9]); !ok {
		return fmt.Errorf("%w: bad RDB version %q", ErrBadRDB, h[5:9])
	}
	return nil
}

func (c *rdbCheck) finish() error {
	if c.total < rdbHeaderLen+1+8 {
		return fmt.Errorf("%w: %d bytes is too short for an RDB", ErrBadRDB, c.total)
	}
	want := binary.LittleEndian.Uint64(c.tail[:])
	if want != 0 && want != c.crc {
		return fmt.Errorf("%w: the RDB's CRC-64 is %016x, its trailer says %016x (damaged in transit?)", ErrBadRDB, c.crc, want)
	}
	return nil
}
