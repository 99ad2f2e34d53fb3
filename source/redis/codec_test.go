package redis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadCommand(t *testing.T) {
	cases := []struct {
		in    string
		want  []string // nil with err
		n     int64
		err   error
		large bool
	}{
		{in: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", want: []string{"SET", "k", ""}, n: 26},
		{in: "*1\r\n$4\r\nPING\r\n", want: []string{"PING"}, n: 14},
		{in: "\n", want: []string{}, n: 1},
		{in: "PING x\r\n", want: []string{"PING", "x"}, n: 8},
		{in: "*0\r\n", want: []string{}, n: 4},
		{in: "*2\r\n$3\r\nSET\r\n$40\r\n" + strings.Repeat("v", 40) + "\r\n", large: true, n: 60},
		{in: "*1\r\n$3\r\nSET\r", err: io.ErrUnexpectedEOF},
		{in: "*1\r\n$3\r\nSETxx", err: ErrProtocol},
		{in: "*1\r\n:3\r\n", err: ErrProtocol},
		{in: "*-2\r\n", err: ErrProtocol},
		{in: "*1\r\n$-1\r\n", err: ErrProtocol},
		{in: "*99999999999999999999\r\n", err: ErrProtocol},
		{in: "*1\r\n$3\r\nab", err: io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		r := NewReader(iotest.HalfReader(strings.NewReader(tc.in)))
		argv, n, err := r.ReadCommand(32)
		var tl *TooLargeError
		switch {
		case tc.large:
			if !errors.As(err, &tl) || tl.Name != "SET" || tl.Bytes != tc.n || n != tc.n {
				t.Errorf("%q: %v %d, want a too-large SET of %d bytes", tc.in, err, n, tc.n)
			}
			continue
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: err %v, want %v", tc.in, err, tc.err)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		got := make([]string, len(argv))
		for i, a := range argv {
			got[i] = string(a)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || n != tc.n || r.Consumed() != tc.n {
			t.Errorf("%q: %q %d, want %q %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}

func TestReadReply(t *testing.T) {
	in := "+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n*1\r\n+x\r\n"
	r := NewReader(strings.NewReader(in))
	var got []string
	for {
		x, err := r.ReadReply()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%c%s%d%v%d", x.Kind, x.Str, x.Int, x.Nil, len(x.Elems)))
	}
	if want := "[+OK0false0 -ERR no0false0 :42false0 $abc0false0 $0true0 *0false2]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	deep := strings.Repeat("*1\r\n", maxReplyNest+2) + ":1\r\n"
	if _, err := NewReader(strings.NewReader(deep)).ReadReply(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("deep nesting: %v", err)
	}
}

func TestCRCJones(t *testing.T) {
	// The check value Redis's own crc64 test uses.
	if got := crcUpdate(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64 jones = %016x", got)
	}
}

// rdb builds a minimal RDB with a correct (or zero) trailer.
func rdb(body string, checksum bool) []byte {
	b := append([]byte("REDIS0010"+body), 0xff)
	var sum uint64
	if checksum {
		sum = crcUpdate(0, b)
	}
	for i := range 8 {
		b = append(b, byte(sum>>(8*i)))
	}
	return b
}

func TestRDBForms(t *testing.T) {
	body := rdb(strings.Repeat("x", 5000), true)
	mark := strings.Repeat("m", 40)
	next := "*1\r\n$4\r\nPING\r\n"
	cases := []struct {
		name, wire string
		err        error
	}{
		{"bulk", fmt.Sprintf("\n\n$%d\r\n%s%s", len(body), body, next), nil},
		{"eof", fmt.Sprintf("$EOF:%s\r\n%s%s%s", mark, body, mark, next), nil},
		{"no checksum", fmt.Sprintf("$%d\r\n%s%s", len(rdb("", false)), rdb("", false), next), nil},
		{"bulk cut", fmt.Sprintf("$%d\r\n%s", len(body), body[:3000]), io.ErrUnexpectedEOF},
		{"eof cut", fmt.Sprintf("$EOF:%s\r\n%s", mark, body[:3000]), io.ErrUnexpectedEOF},
		{"damaged", fmt.Sprintf("$%d\r\n%s%s", len(body), bytes.Replace(body, []byte("xx"), []byte("xy"), 1), next), ErrBadRDB},
		{"not rdb", fmt.Sprintf("$%d\r\nHELLO%s%s", len(body), body[5:], next), ErrBadRDB},
	}
	for _, tc := range cases {
		for _, half := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.wire)
			if half {
				src = iotest.OneByteReader(src)
			}
			c := &Conn{r: NewReader(src), name: "test"}
			rd, err := c.RDB()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got, err := io.ReadAll(rd)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("%s (one byte reads %v): err %v, want %v", tc.name, half, err, tc.err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, body) && tc.name != "no checksum" {
				t.Errorf("%s (one byte reads %v): %v, %d bytes", tc.name, half, err, len(got))
				continue
			}
			argv, _, err := c.ReadCommand(100)
			if err != nil || len(argv) != 1 || string(argv[0]) != "PING" {
				t.Errorf("%s: the command after the RDB: %q %v", tc.name, argv, err)
			}
		}
	}
}

func TestCommandEventRoundTrip(t *testing.T) {
	id := strings.Repeat("a1", 20)
	for _, c := range []Command{
		{ReplID: id, Start: 0, End: 31, DB: -1, Argv: [][]byte{[]byte("SELECT"), []byte("1")}},
		{ReplID: id, Start: 1 << 40, End: 1<<40 + 9, DB: 15, Argv: [][]byte{[]byte("SET"), []byte("k"), {}}},
	} {
		v := AppendCommandEvent(nil, &c)
		got, err := DecodeCommandEvent(v)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c) {
			t.Fatalf("round trip: %v %v, want %v", got, err, c)
		}
		for i := range v {
			if _, err := DecodeCommandEvent(v[:i]); err == nil {
				t.Fatalf("truncated to %d bytes: decoded", i)
			}
		}
	}
}

func TestBaseHeader(t *testing.T) {
	b := Base{ReplID: strings.Repeat("f", 40), Offset: 12345}
	h := AppendBaseHeader(nil, b)
	got, n, err := ParseBaseHeader(append(h, "REDIS0010"...))
	if err != nil || got != b || n != len(h) {
		t.Fatalf("%v %d %v", got, n, err)
	}
	if _, _, err := ParseBaseHeader([]byte("REDIS0010")); !errors.Is(err, ErrNotBase) {
		t.Fatalf("an RDB without header: %v", err)
	}
}

func FuzzReadCommand(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), 8)
	f.Add([]byte("PING\r\n\n*1\r\n$100\r\nx"), 50)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		limit = max(0, min(limit, 1<<20))
		r := NewReader(bytes.NewReader(b))
		for range 100 {
			argv, n, err := r.ReadCommand(limit)
			if n < 0 || r.Consumed() > int64(len(b)) {
				t.Fatalf("consumed %d of %d", r.Consumed(), len(b))
			}
			if err != nil {
				var tl *TooLargeError
				if !errors.As(err, &tl) {
					return
				}
				continue
			}
			// Re-encoded, an array command reads back the same.
			enc := AppendCommand(nil, argv...)
			again, m, err := NewReader(bytes.NewReader(enc)).ReadCommand(1 << 30)
			if err != nil || m != int64(len(enc)) || fmt.Sprint(again) != fmt.Sprint(argv) {
				t.Fatalf("re-read %q: %q %v", argv, again, err)
			}
		}
	})
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte("*2\r\n+OK\r\n$3\r\nabc\r\n"))
	f.Add([]byte(":-5\r\n$-1\r\n*-1\r\n-ERR x\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range 100 {
			if _, err := r.ReadReply(); err != nil {
				return
			}
		}
	})
}

func FuzzDecodeCommandEvent(f *testing.F) {
	c := Command{ReplID: strings.Repeat("0", 40), Start: 5, End: 20, DB: 0, Argv: [][]byte{[]byte("DEL"), []byte("k")}}
	f.Add(AppendCommandEvent(nil, &c))
	f.Fuzz(func(t *testing.T, v []byte) {
		c, err := DecodeCommandEvent(v)
		if err != nil {
			return
		}
		if c.End <= c.Start || len(c.Argv) == 0 || c.DB < -1 {
			t.Fatalf("decoded an invalid command %+v", c)
		}
		if again := AppendCommandEvent(nil, &c); !bytes.Equal(again, v) {
			t.Fatalf("re-encoding differs: %x vs %x", again, v)
		}
	})
}

func FuzzParseBaseHeader(f *testing.F) {
	f.Add(AppendBaseHeader(nil, Base{ReplID: strings.Repeat("a", 40), Offset: 7}))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, n, err := ParseBaseHeader(p)
		if err != nil {
			return
		}
		if n > len(p) || !bytes.Equal(AppendBaseHeader(nil, b), p[:n]) {
			t.Fatalf("header %+v (%d bytes) does not re-encode to its input", b, n)
		}
	})
}

func FuzzRDB(f *testing.F) {
	f.Add([]byte("$18\r\n" + string(rdb("", true))))
	f.Add([]byte("$EOF:" + strings.Repeat("m", 40) + "\r\n" + string(rdb("ab", true)) + strings.Repeat("m", 40)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Conn{r: NewReader(bytes.NewReader(b)), name: "fuzz"}
		rd, err := c.RDB()
		if err != nil {
			return
		}
		got, err := io.ReadAll(io.LimitReader(rd, 1<<20))
		if err == nil && (len(got) < rdbHeaderLen+9 || !bytes.HasPrefix(got, []byte("REDIS"))) {
			t.Fatalf("accepted %d bytes that are no RDB", len(got))
		}
	})
}

// TestFormatExample checks the worked example of FORMAT.md section 20.
func TestFormatExample(t *testing.T) {
	argv := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	c := Command{ReplID: strings.Repeat("a", 40), Start: 0, End: int64(len(AppendCommand(nil, argv...))), DB: 0, Argv: argv}
	want := "01" + strings.Repeat("61", 40) + "001b010303534554016b0176"
	if got := fmt.Sprintf("%x", AppendCommandEvent(nil, &c)); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
