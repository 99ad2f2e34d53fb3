package tcpproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/tcpproxy"
)

// echo starts a loopback server that echoes each connection's bytes.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *tcpproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestForwards(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	msg := bytes.Repeat([]byte("strata"), 10000)
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo through the proxy differs")
	}
	if got, want := p.Forwarded(), int64(2*len(msg)); got != want {
		t.Fatalf("Forwarded = %d, want %d", got, want)
	}
}

func TestCutAll(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if n := p.CutAll(); n != 1 {
		t.Fatalf("CutAll cut %d connections, want 1", n)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err == nil {
		t.Fatal("read after CutAll succeeded")
	}
	// New connections still work.
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestRefuse(t *testing.T) {
	p := start(t)
	p.Refuse(true)
	// The reset may come so fast that the dial itself fails.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err == nil {
			t.Fatal("a refused connection answered")
		}
	}
	p.Refuse(false)
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestCutAfter(t *testing.T) {
	p := start(t)
	p.CutAfter(1000) // 600 out and back is 1200: the echo is cut at 400
	c := dial(t, p)
	if _, err := c.Write(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("ReadAll after the budget: %d bytes, error %v; want a reset", len(got), err)
	}
	if len(got) > 400 {
		t.Fatalf("read %d bytes, want at most 400", len(got))
	}
}
