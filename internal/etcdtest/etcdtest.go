package etcdtest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-backup/strata/internal/testenv"
)

// Server is one etcd member on loopback.
type Server struct {
	// Addr is the client address, "127.0.0.1:PORT".
	Addr string
	// URL is etcd://Addr, or etcd://root:PASSWORD@Addr once auth is on.
	URL string

	t       testing.TB
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}
	logs    *testenv.SyncBuffer

	mu       sync.Mutex
	user, pw string
}

// Binary returns the etcd binary (STRATA_ETCD_BIN, or etcd on PATH), or
// skips t (fails it when STRATA_REQUIRE_DATABASES=1).
func Binary(t testing.TB) string {
	t.Helper()
	return testenv.Binary(t, "STRATA_ETCD_BIN", "etcd", "install etcd-server and etcd-client (apt-get install etcd-server etcd-client)")
}

// Start runs a single-member etcd cluster and waits until it answers. It is
// stopped, and its data directory removed, when t ends. Flags are passed to
// etcd after the ones Start sets ("--max-request-bytes", "33554432").
func Start(t testing.TB, flags ...string) *Server {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	// Free ports are found by listening and closing; another process may
	// take one in between, so a failed start is retried on new ports.
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, flags)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, flags []string) (*Server, error) {
	cport, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	pport, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	cmd := exec.Command(bin, append([]string{
		"--name", "strata-test",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "strata-test=" + peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "error",
		// Progress notifications every second instead of every ten minutes,
		// so tests see them.
		"--experimental-watch-progress-notify-interval", "1s",
	}, flags...)...)
	logs := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(cport), t: t, dataDir: dir, cmd: cmd, exited: make(chan struct{}), logs: logs}
	s.URL = "etcd://" + s.Addr
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitHealthy(client, 20*time.Second); err != nil {
		s.kill()
		return nil, fmt.Errorf("%w\n%s", err, logs.String())
	}
	t.Cleanup(s.kill)
	return s, nil
}

func (s *Server) waitHealthy(client string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("etcd exited during start-up")
		default:
		}
		resp, err := hc.Get(client + "/health")
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if ok {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd on %s not healthy after %s", client, limit)
}

func (s *Server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.exited
}

// Stop kills the server now (it stays stopped).
func (s *Server) Stop() { s.kill() }

// Client returns a client of the server, closed when the test ends. Once
// auth is on it logs in as root.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	s.mu.Lock()
	user, pw := s.user, s.pw
	s.mu.Unlock()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"http://" + s.Addr}, DialTimeout: 5 * time.Second,
		Username: user, Password: pw, Logger: zap.NewNop(),
		// Tests may write revisions larger than the default 2 MiB request.
		MaxCallSendMsgSize: 64 << 20,
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// EnableAuth creates user root with password and the root role, and turns
// authentication on. Afterwards URL carries root's credentials.
func (s *Server) EnableAuth(t testing.TB, password string) {
	t.Helper()
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The root role may already exist; adding it again fails harmlessly.
	c.RoleAdd(ctx, "root")
	if _, err := c.UserAdd(ctx, "root", password); err != nil {
		t.Fatalf("etcd user add root: %v", err)
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcd grant root: %v", err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		t.Fatalf("etcd auth enable: %v", err)
	}
	s.mu.Lock()
	s.user, s.pw = "root", password
	s.mu.Unlock()
	s.URL = "etcd://root:" + password + "@" + s.Addr
}

// Compact compacts the server's history up to rev (physically, so the
// revisions before it are gone when Compact returns).
func (s *Server) Compact(t testing.TB, rev int64) {
	t.Helper()
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcd compact %d: %v", rev, err)
	}
}

// Revision returns the server's current revision.
func (s *Server) Revision(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.Client(t).Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcd get: %v", err)
	}
	return resp.Header.Revision
}

// Dump returns every key and value, and the revision they were read at.
func (s *Server) Dump(t testing.TB) (map[string]string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client(t).Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("etcd dump: %v", err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m, resp.Header.Revision
}

// Logs returns what the server printed so far.
func (s *Server) Logs() string { return s.logs.String() }
