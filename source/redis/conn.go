package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options say how to reach a Redis instance.
type Options struct {
	Addr     string // host:port
	User     string // ACL user; "" means the default user
	Password string // "" means none
	// Name identifies the instance in messages: the URL without its
	// password. The password itself never appears in an error.
	Name        string
	DialTimeout time.Duration // default 10 s
}

func (o Options) name() string {
	if o.Name != "" {
		return o.Name
	}
	return "redis://" + o.Addr
}

// Errors callers branch on.
var (
	// ErrAuth: the server refused the password, or wants one and got none.
	ErrAuth = errors.New("redis authentication failed")
	// ErrRefused: the server refused to serve a replica.
	ErrRefused = errors.New("redis refused replication")
)

// Conn is one connection to a Redis server: request/reply commands, and
// the replica side of the replication protocol. Writes are serialized, so
// an acknowledging goroutine may write while another reads.
type Conn struct {
	nc   net.Conn
	r    *Reader
	wmu  sync.Mutex
	bw   *bufio.Writer
	name string
	stop func() bool // ends the context watch
}

// Dial connects, authenticates when o has a password, and checks the
// server answers PING. The connection is closed when ctx ends.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: o.DialTimeout, KeepAlive: 15 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect: %w", o.name(), err)
	}
	c := &Conn{nc: nc, r: NewReader(nc), bw: bufio.NewWriterSize(nc, 64<<10), name: o.name()}
	c.stop = context.AfterFunc(ctx, func() { nc.Close() })
	fail := func(err error) (*Conn, error) {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", c.name, context.Cause(ctx))
		}
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(o.DialTimeout))
	if o.Password != "" {
		args := []string{"AUTH", o.Password}
		if o.User != "" {
			args = []string{"AUTH", o.User, o.Password}
		}
		x, err := c.do(args...)
		if err != nil {
			return fail(fmt.Errorf("%s: AUTH: %w", c.name, err))
		}
		if x.Kind == '-' {
			return fail(fmt.Errorf("%s: %w: the server refused the credentials (%s)", c.name, ErrAuth, firstWord(x.Str)))
		}
	}
	x, err := c.do("PING")
	if err != nil {
		return fail(fmt.Errorf("%s: PING: %w", c.name, err))
	}
	if x.Kind == '-' {
		msg := string(x.Str)
		if strings.HasPrefix(msg, "NOAUTH") {
			return fail(fmt.Errorf("%s: %w: the server requires a password (give it in the URL, STRATA_SOURCE_PASSWORD or STRATA_SOURCE_PASSWORD_FILE)", c.name, ErrAuth))
		}
		return fail(fmt.Errorf("%s: PING: %s", c.name, msg))
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// firstWord returns an error reply's code (WRONGPASS, NOAUTH, ERR): the
// rest of a reply about credentials is never echoed, in case it quotes them.
func firstWord(b []byte) string {
	s, _, _ := strings.Cut(string(b), " ")
	return s
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.stop()
	return c.nc.Close()
}

// LocalAddr is the local end of the connection: the address the server
// sees this process at.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Do sends one command and reads its reply. An error reply is returned as
// a *ServerError.
func (c *Conn) Do(args ...string) (Reply, error) {
	c.nc.SetDeadline(time.Now().Add(time.Minute))
	defer c.nc.SetDeadline(time.Time{})
	x, err := c.do(args...)
	if err != nil {
		return x, fmt.Errorf("%s: %s: %w", c.name, args[0], err)
	}
	if err := x.Err(); err != nil {
		return x, fmt.Errorf("%s: %s: %w", c.name, args[0], err)
	}
	return x, nil
}

// Pipeline sends the commands at once and reads their replies in order:
// one round trip for many small reads. Error replies are returned as
// replies (check each with Err); an error means the connection failed.
func (c *Conn) Pipeline(cmds [][]string) ([]Reply, error) {
	c.nc.SetDeadline(time.Now().Add(time.Minute))
	defer c.nc.SetDeadline(time.Time{})
	c.wmu.Lock()
	for _, args := range cmds {
		c.bw.Write(appendStrings(nil, args...))
	}
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	out := make([]Reply, 0, len(cmds))
	for range cmds {
		x, err := c.r.ReadReply()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		out = append(out, x)
	}
	return out, nil
}

func (c *Conn) do(args ...string) (Reply, error) {
	if err := c.send(args...); err != nil {
		return Reply{}, err
	}
	return c.r.ReadReply()
}

func (c *Conn) send(args ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bw.Write(appendStrings(nil, args...))
	return c.bw.Flush()
}

// Keyspace returns the number of keys in each database that has any, from
// INFO keyspace.
func (c *Conn) Keyspace() (map[int]int64, error) {
	x, err := c.Do("INFO", "keyspace")
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, line := range strings.Split(string(x.Str), "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		db, err := strconv.Atoi(name[2:])
		if err != nil {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "keys="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: INFO keyspace: bad line %q", c.name, line)
				}
				out[db] = n
			}
		}
	}
	return out, nil
}

// Info returns one section of INFO as field → value.
func (c *Conn) Info(section string) (map[string]string, error) {
	x, err := c.Do("INFO", section)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(x.Str), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}
