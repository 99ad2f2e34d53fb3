package redis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Limits on what a Reader accepts from the network, so a broken or hostile
// peer cannot make it allocate without bound.
const (
	maxLine      = 64 << 10  // a RESP header or inline line
	maxReplyBulk = 64 << 20  // one bulk string of a control reply (INFO is a few KiB)
	maxReplyElem = 1 << 20   // elements of one reply array
	maxReplyNest = 8         // nesting of reply arrays
	maxArgs      = 1 << 24   // arguments of one command (each takes at least 6 bytes)
	readBufSize  = 256 << 10 // the buffered reader's size: big enough for pipelined streams
)

// ErrProtocol is wrapped by every error about bytes that are not RESP.
var ErrProtocol = errors.New("redis protocol error")

// TooLargeError reports a command longer than the reader's limit. The
// command's bytes have been consumed, so the stream is still in step.
type TooLargeError struct {
	Bytes int64 // the command's length on the wire
	Limit int
	Name  string // the command's name, when it fit
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("a %s command of %d bytes exceeds the %d bytes one log event holds", e.Name, e.Bytes, e.Limit)
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// Reader reads RESP from a connection and counts the bytes it consumes,
// which is how replication offsets advance.
type Reader struct {
	br *bufio.Reader
	n  int64 // bytes consumed
	// scratch holds the arguments of the last command read; the argv slices
	// ReadCommand returns alias it until the next call.
	scratch []byte
	argv    [][]byte
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, readBufSize)}
}

// Consumed returns the number of bytes read so far.
func (r *Reader) Consumed() int64 { return r.n }

// Buffered returns how many bytes are read from the connection but not yet consumed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// line reads one line ending in "\n" and returns it without "\r\n" or "\n".
func (r *Reader) line() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	r.n += int64(len(b))
	if err == bufio.ErrBufferFull || len(b) > maxLine {
		return nil, protoErr("a line longer than %d bytes", maxLine)
	}
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b, nil
}

// parseInt parses a RESP integer strictly: an optional '-' and 1–18 digits.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// full reads exactly len(p) bytes.
func (r *Reader) full(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.n += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) discard(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := r.br.Discard(k)
		r.n += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// crlf consumes the "\r\n" after a bulk string.
func (r *Reader) crlf() error {
	var b [2]byte
	if err := r.full(b[:]); err != nil {
		return err
	}
	if b != [2]byte{'\r', '\n'} {
		return protoErr("a bulk string not followed by CRLF")
	}
	return nil
}

// ReadCommand reads one command: a RESP array of bulk strings, or an inline
// line of space-separated words. It returns the arguments, which alias the
// Reader until the next call, and the command's length in bytes. An empty
// inline line returns no arguments. A command whose arguments exceed limit
// bytes in total is consumed and reported as a *TooLargeError.
func (r *Reader) ReadCommand(limit int) ([][]byte, int64, error) {
	start := r.n
	r.scratch, r.argv = r.scratch[:0], r.argv[:0]
	head, err := r.line()
	if err != nil {
		return nil, r.n - start, err
	}
	if len(head) == 0 || head[0] != '*' {
		// Inline: masters never send it after the sync, but replicas and
		// redis-cli may, and an empty line is a keepalive.
		for _, w := range bytes.Fields(head) {
			off := len(r.scratch)
			r.scratch = append(r.scratch, w...)
			r.argv = append(r.argv, r.scratch[off:len(r.scratch):len(r.scratch)])
		}
		return r.argv, r.n - start, nil
	}
	argc, ok := parseInt(head[1:])
	if !ok || argc < 0 || argc > maxArgs {
		return nil, r.n - start, protoErr("bad array header %q", clip(head))
	}
	ends := make([]int, 0, min(argc, 64))
	var tooLarge *TooLargeError
	total := 0
	for i := int64(0); i < argc; i++ {
		h, err := r.line()
		if err != nil {
			return nil, r.n - start, err
		}
		if len(h) == 0 || h[0] != '$' {
			return nil, r.n - start, protoErr("array element %d is not a bulk string: %q", i, clip(h))
		}
		l, ok := parseInt(h[1:])
		if !ok || l < 0 {
			return nil, r.n - start, protoErr("bad bulk length %q", clip(h))
		}
		total += int(min(l, int64(limit)+1))
		if tooLarge == nil && total > limit {
			tooLarge = &TooLargeError{Limit: limit}
			if len(ends) > 0 {
				tooLarge.Name = string(clip(r.scratch[:ends[0]]))
			}
		}
		if tooLarge != nil {
			if err := r.discard(l + 2); err != nil {
				return nil, r.n - start, err
			}
			continue
		}
		off := len(r.scratch)
		r.scratch = slices.Grow(r.scratch, int(l))[:off+int(l)]
		if err := r.full(r.scratch[off:]); err != nil {
			return nil, r.n - start, err
		}
		if err := r.crlf(); err != nil {
			return nil, r.n - start, err
		}
		ends = append(ends, len(r.scratch))
	}
	if tooLarge != nil {
		tooLarge.Bytes = r.n - start
		return nil, r.n - start, tooLarge
	}
	prev := 0
	for _, e := range ends {
		r.argv = append(r.argv, r.scratch[prev:e:e])
		prev = e
	}
	return r.argv, r.n - start, nil
}

// Reply is one RESP reply. Kind is '+', '-', ':', '$' or '*'; Nil marks a
// null bulk string or array.
type Reply struct {
	Kind  byte
	Str   []byte // simple string, error or bulk string
	Int   int64
	Elems []Reply
	Nil   bool
}

// Err returns the reply as an error if it is one.
func (x Reply) Err() error {
	if x.Kind == '-' {
		return &ServerError{Msg: string(x.Str)}
	}
	return nil
}

// ServerError is an error reply from the server.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return e.Msg }

// ReadReply reads one reply, bounded in size and nesting.
func (r *Reader) ReadReply() (Reply, error) { return r.reply(0) }

func (r *Reader) reply(depth int) (Reply, error) {
	h, err := r.line()
	if err != nil {
		return Reply{}, err
	}
	if len(h) == 0 {
		return Reply{}, protoErr("empty reply line")
	}
	x := Reply{Kind: h[0]}
	switch h[0] {
	case '+', '-':
		x.Str = append([]byte(nil), h[1:]...)
	case ':':
		n, ok := parseInt(h[1:])
		if !ok {
			return x, protoErr("bad integer reply %q", clip(h))
		}
		x.Int = n
	case '$':
		l, ok := parseInt(h[1:])
		switch {
		case !ok || l < -1 || l > maxReplyBulk:
			return x, protoErr("bad bulk length %q", clip(h))
		case l == -1:
			x.Nil = true
			return x, nil
		}
		x.Str = make([]byte, l)
		if err := r.full(x.Str); err != nil {
			return x, err
		}
		if err := r.crlf(); err != nil {
			return x, err
		}
	case '*':
		n, ok := parseInt(h[1:])
		switch {
		case !ok || n < -1 || n > maxReplyElem:
			return x, protoErr("bad array length %q", clip(h))
		case n == -1:
			x.Nil = true
			return x, nil
		case depth >= maxReplyNest:
			return x, protoErr("arrays nested deeper than %d", maxReplyNest)
		}
		for i := int64(0); i < n; i++ {
			e, err := r.reply(depth + 1)
			if err != nil {
				return x, err
			}
			x.Elems = append(x.Elems, e)
		}
	default:
		return x, protoErr("unknown reply type %q", clip(h))
	}
	return x, nil
}

// AppendCommand appends argv as a RESP array of bulk strings.
func AppendCommand(b []byte, argv ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(argv)), 10)
	b = append(b, '\r', '\n')
	for _, a := range argv {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// appendStrings is AppendCommand for string arguments.
func appendStrings(b []byte, argv ...string) []byte {
	bs := make([][]byte, len(argv))
	for i, a := range argv {
		bs[i] = []byte(a)
	}
	return AppendCommand(b, bs...)
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
