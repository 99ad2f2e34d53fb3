package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
)

// Options configure a server. The zero value is a plain server.
type Options struct {
	Password    string // requirepass
	BacklogSize string // repl-backlog-size, for example "16kb"; default Redis's 1mb
	// Diskless: full syncs stream the RDB without a length ($EOF: form);
	// otherwise the RDB is written to disk first and sent with its length.
	Diskless bool
	Args     []string // more "--name value" arguments
}

// Server is one redis-server on loopback.
type Server struct {
	Addr string // 127.0.0.1:PORT
	Dir  string
	o    Options
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the redis-server binary (STRATA_REDIS_BIN, or
// redis-server on PATH), or skips t (fails it when STRATA_REQUIRE_DATABASES=1).
func Binary(t testing.TB) string {
	t.Helper()
	return testenv.Binary(t, "STRATA_REDIS_BIN", "redis-server", "install redis-server (apt-get install redis-server)")
}

// Start runs a server and waits until it answers PING. It is stopped when
// t ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	var last error
	// A free port is found by listening and closing; another process may
	// take it in between, so a failed start is retried on a new port.
	for range 3 {
		s, err := start(t, bin, o)
		if err == nil {
			return s
		}
		last = err
	}
	t.Fatalf("redistest: %v", last)
	return nil
}

func start(t testing.TB, bin string, o Options) (*Server, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
		"--enable-debug-command", "yes",
		"--repl-diskless-sync-delay", "0",
		"--repl-diskless-sync", map[bool]string{true: "yes", false: "no"}[o.Diskless],
	}
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
	}
	if o.BacklogSize != "" {
		args = append(args, "--repl-backlog-size", o.BacklogSize)
	}
	args = append(args, o.Args...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, o: o, t: t, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.dial()
		if err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				t.Cleanup(s.Stop)
				return s, nil
			}
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server exited at start: %s", tail(log))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// Log returns the end of the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(tail(b))
}

// Stop terminates the server and waits for it; it may be called twice.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// URL is redis://[:PASSWORD@]Addr.
func (s *Server) URL() string {
	if s.o.Password != "" {
		return "redis://:" + s.o.Password + "@" + s.Addr
	}
	return "redis://" + s.Addr
}

func (s *Server) dial() (*Client, error) {
	nc, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{nc: nc, br: bufio.NewReader(nc)}
	if s.o.Password != "" {
		if _, err := c.Do("AUTH", s.o.Password); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Client returns a connection to the server, closed when t ends.
func (s *Server) Client(t testing.TB) *Client {
	t.Helper()
	c, err := s.dial()
	if err != nil {
		t.Fatalf("redistest: connect %s: %v", s.Addr, err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	return c
}

// Client is a minimal RESP client for tests.
type Client struct {
	nc net.Conn
	br *bufio.Reader
	t  testing.TB
}

// Close closes the connection.
func (c *Client) Close() error { return c.nc.Close() }

// Do sends a command and returns its reply: string (simple or bulk),
// int64, []any, nil, or an error reply as an error.
func (c *Client) Do(args ...any) (any, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		s := fmt.Sprint(a)
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s)
	}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(b.Bytes()); err != nil {
		return nil, err
	}
	return c.read()
}

// Must is Do failing the test on an error.
func (c *Client) Must(args ...any) any {
	if c.t != nil {
		c.t.Helper()
	}
	x, err := c.Do(args...)
	if err != nil {
		c.t.Fatalf("redis %v: %v", args, err)
	}
	return x
}

// ReplyError is an error reply.
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

func (c *Client) read() (any, error) {
	line, err := c.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, ReplyError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := readFull(c.br, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				if _, ok := err.(ReplyError); !ok {
					return nil, err
				}
				out[i] = err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := br.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Info returns one INFO section as field → value.
func (c *Client) Info(section string) map[string]string {
	out := map[string]string{}
	s, _ := c.Must("INFO", section).(string)
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// State describes the whole dataset exactly: DEBUG DIGEST (every key's
// type and value in every database) and each key's expiry time in ms,
// which the digest only marks as present.
func (c *Client) State() string {
	if c.t != nil {
		c.t.Helper()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "digest %v\n", c.Must("DEBUG", "DIGEST"))
	ks := c.Info("keyspace")
	var dbs []int
	for k := range ks {
		if n, err := strconv.Atoi(strings.TrimPrefix(k, "db")); err == nil {
			dbs = append(dbs, n)
		}
	}
	slices.Sort(dbs)
	for _, db := range dbs {
		c.Must("SELECT", db)
		var keys []string
		for _, k := range c.Must("KEYS", "*").([]any) {
			keys = append(keys, k.(string))
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "db%d: %d keys\n", db, len(keys))
		for _, k := range keys {
			if t := c.Must("PEXPIRETIME", k).(int64); t >= 0 {
				fmt.Fprintf(&b, "  %q expires at %d\n", k, t)
			}
		}
	}
	c.Must("SELECT", 0)
	return b.String()
}

// WaitReplicas waits until every connected replica has acknowledged the
// master's offset as it is now: a capture has received everything written
// before the call.
func (c *Client) WaitReplicas(timeout time.Duration) {
	if c.t != nil {
		c.t.Helper()
	}
	want, _ := strconv.ParseInt(c.Info("replication")["master_repl_offset"], 10, 64)
	deadline := time.Now().Add(timeout)
	for {
		info := c.Info("replication")
		n, _ := strconv.Atoi(info["connected_slaves"])
		ok := n > 0
		for i := range n {
			for _, f := range strings.Split(info[fmt.Sprintf("slave%d", i)], ",") {
				if v, found := strings.CutPrefix(f, "offset="); found {
					if off, _ := strconv.ParseInt(v, 10, 64); off < want {
						ok = false
					}
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: replicas did not reach offset %d within %s: %v", want, timeout, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
