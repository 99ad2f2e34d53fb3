package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary returns the program named by the environment variable envVar, or
// name on PATH. When there is neither, t fails if STRATA_REQUIRE_DATABASES
// is 1 (CI installs every server, so a missing one is a broken setup) and
// is skipped otherwise; install says how to get it.
func Binary(t testing.TB, envVar, name, install string) string {
	t.Helper()
	bin := os.Getenv(envVar)
	if bin == "" {
		bin, _ = exec.LookPath(name)
	}
	if bin == "" {
		if os.Getenv("STRATA_REQUIRE_DATABASES") == "1" {
			t.Fatalf("%s not found and STRATA_REQUIRE_DATABASES=1: %s", name, install)
		}
		t.Skipf("%s not found: %s to run these tests", name, install)
	}
	return bin
}

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the caller binds it; servers started on it
// are checked to answer.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SyncBuffer is a bytes.Buffer safe for one writer goroutine (a child's
// output copied by os/exec) and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RepoRoot returns the directory of the module's go.mod, above the test's
// working directory: where tests that run the README or the runbooks find
// the files they read.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
