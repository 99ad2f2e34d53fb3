package mongotest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-backup/strata/internal/testenv"
)

// Version is the FerretDB release internal/ferretdb pins.
const Version = "v1.24.2"

// Server is one FerretDB on loopback.
type Server struct {
	// Addr is "127.0.0.1:PORT"; URI is mongodb://Addr/.
	Addr, URI string
	// Client is connected to it, for the test's own reads and writes.
	Client *mongo.Client

	t    testing.TB
	cmd  *exec.Cmd
	logs *testenv.SyncBuffer
	done chan struct{}
}

// Options tune Start.
type Options struct {
	// OplogBytes and OplogDocs cap local.oplog.rs (default 64 MiB, no
	// count limit). The oplog is trimmed to them only by Trim: the
	// embedded server runs no cleanup of its own.
	OplogBytes int64
	OplogDocs  int64
}

// Binary returns the FerretDB helper binary, or skips t (fails it when
// STRATA_REQUIRE_DATABASES=1).
func Binary(t testing.TB) string {
	t.Helper()
	if os.Getenv("STRATA_FERRETDB_BIN") == "" {
		cache := os.Getenv("STRATA_CACHE")
		if cache == "" {
			if home, err := os.UserHomeDir(); err == nil {
				cache = filepath.Join(home, ".cache", "strata")
			}
		}
		bin := filepath.Join(cache, "ferretdb-"+Version, "strata-ferretdb")
		if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
			return bin
		}
	}
	return testenv.Binary(t, "STRATA_FERRETDB_BIN", "strata-ferretdb", "build it with scripts/ferretdb.sh build (from the Go module proxy, once)")
}

// Start runs a FerretDB with an oplog and waits until it answers. It is
// stopped, and its data removed, when t ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	if o.OplogBytes <= 0 {
		o.OplogBytes = 64 << 20
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, filepath.Join(dir, fmt.Sprint(attempt)))
		if err != nil {
			lastErr = err
			continue
		}
		if err := s.createOplog(o); err != nil {
			t.Fatalf("mongotest: create the oplog: %v", err)
		}
		return s
	}
	t.Fatalf("mongotest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir string) (*Server, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{Addr: addr, URI: "mongodb://" + addr + "/", t: t, logs: &testenv.SyncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "-listen", addr, "-dir", dir)
	s.cmd.Stderr = s.logs
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	go func() { s.cmd.Wait(); close(s.done) }()
	select {
	case ok := <-ready:
		if !ok {
			<-s.done
			return nil, fmt.Errorf("strata-ferretdb exited before it was ready: %s", s.logs.String())
		}
	case <-time.After(60 * time.Second):
		s.kill()
		return nil, fmt.Errorf("strata-ferretdb not ready after 60 s: %s", s.logs.String())
	}
	t.Cleanup(s.Stop)
	s.Client, err = mongo.Connect(options.Client().ApplyURI(s.URI).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) createOplog(o Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	co := options.CreateCollection().SetCapped(true).SetSizeInBytes(o.OplogBytes)
	if o.OplogDocs > 0 {
		co.SetMaxDocuments(o.OplogDocs)
	}
	return s.Client.Database("local").CreateCollection(ctx, "oplog.rs", co)
}

// Trim removes the oldest oplog entries beyond the oplog's caps, as a
// real server does continuously (FerretDB's compact with force runs its
// capped-collection cleanup, which drops about 10% past the cap).
func (s *Server) Trim(ctx context.Context) error {
	return s.Client.Database("local").RunCommand(ctx, bson.D{{Key: "compact", Value: "oplog.rs"}, {Key: "force", Value: true}}).Err()
}

// Logs returns what the server wrote to stderr.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.done
}

// Stop ends the server: SIGTERM, then SIGKILL after 10 s.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	if s.Client != nil {
		s.Client.Disconnect(context.Background())
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
	}
}
