package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections from its loopback address to a target. It is
// safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu       sync.Mutex
	links    map[*link]struct{}
	refuse   bool
	cutAfter int64 // byte budget of each new connection; < 0 for none
	closed   bool

	forwarded atomic.Int64
}

// link is one proxied connection: the client's and the server's side.
type link struct {
	client, server net.Conn
	budget         int64 // bytes the link may carry in both directions together; < 0 for no limit
	used           atomic.Int64
	pipes          atomic.Int32 // directions still copying
	once           sync.Once
}

// Start listens on a free loopback port and forwards what it accepts to
// target ("127.0.0.1:9000").
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, links: make(map[*link]struct{}), cutAfter: -1}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Forwarded returns how many bytes the proxy has passed on, both ways.
func (p *Proxy) Forwarded() int64 { return p.forwarded.Load() }

// CutAll cuts every open connection and returns how many it cut. New
// connections are forwarded as before.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.cut()
	}
	return len(links)
}

// Refuse makes the proxy reset new connections as soon as it accepts them
// (on) or forward them again (off). Open connections are not affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// CutAfter makes each connection accepted from now on be cut once it has
// carried n bytes, counting both directions; n < 0 forwards them whole again.
func (p *Proxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		refuse, budget, closed := p.refuse, p.cutAfter, p.closed
		p.mu.Unlock()
		if refuse || closed {
			reset(c)
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			reset(c)
			continue
		}
		l := &link{client: c, server: s, budget: budget}
		l.pipes.Store(2)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.cut()
			continue
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, s, c)
		go p.pipe(l, c, s)
	}
}

// pipe copies from src to dst within the link's budget. When src ends
// cleanly it half-closes dst; on any error, or when the budget is spent, it
// cuts the link.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		if l.pipes.Add(-1) > 0 {
			return
		}
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.once.Do(func() {
			_ = l.client.Close()
			_ = l.server.Close()
		})
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			allowed := int64(n)
			if l.budget >= 0 {
				used := l.used.Add(int64(n))
				allowed = max(0, min(int64(n), l.budget-(used-int64(n))))
			}
			if allowed > 0 {
				// Counted before the write: once the peer has read the bytes,
				// Forwarded must already include them.
				p.forwarded.Add(allowed)
				if w, werr := dst.Write(buf[:allowed]); werr != nil {
					p.forwarded.Add(int64(w) - allowed)
					l.cut()
					return
				}
			}
			if allowed < int64(n) {
				l.cut()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
		if err != nil {
			l.cut()
			return
		}
	}
}

func (l *link) cut() {
	l.once.Do(func() {
		reset(l.client)
		reset(l.server)
	})
}

// reset closes c so that the peer sees a connection reset.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
