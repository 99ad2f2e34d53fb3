package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartCompactAuth(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range []string{"a", "b", "a"} {
		if _, err := c.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	rev := s.Revision(t)
	if rev != 4 {
		t.Fatalf("revision %d after three puts, want 4", rev)
	}
	s.Compact(t, rev)
	if _, err := c.Get(ctx, "a", clientv3.WithRev(2)); err == nil {
		t.Fatal("a read below the compacted revision succeeded")
	}
	s.EnableAuth(t, "pw")
	m, _ := s.Dump(t)
	if len(m) != 2 || m["a"] != "v" {
		t.Fatalf("dump after auth: %v", m)
	}
}
