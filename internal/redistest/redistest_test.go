package redistest

import (
	"strings"
	"testing"
)

func TestStartStateStop(t *testing.T) {
	s := Start(t, Options{Password: "pw", BacklogSize: "16kb"})
	c := s.Client(t)
	empty := c.State()
	c.Must("SET", "k", "v", "PX", 100000000)
	c.Must("SELECT", 2)
	c.Must("SADD", "s", "m")
	st := c.State()
	if st == empty || !strings.Contains(st, "db2: 1 keys") || !strings.Contains(st, `"k" expires at`) {
		t.Fatalf("state %q", st)
	}
	if got := c.Info("replication")["role"]; got != "master" {
		t.Fatalf("role %q", got)
	}
	s.Stop()
	s.Stop()
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("a stopped server answered")
	}
}
