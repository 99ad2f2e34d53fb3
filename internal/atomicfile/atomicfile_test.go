package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteToDirectory: a directory as the path is refused up front, as
// "is a directory", and write is never called.
func TestWriteToDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "inside"), []byte("x"), 0o600)
	called := false
	err := Write(dir, 0o600, func(io.Writer) error { called = true; return nil })
	if !errors.Is(err, syscall.EISDIR) || called {
		t.Fatalf("write to a directory: %v (write called: %v)", err, called)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory changed: %v", entries)
	}
	if err := WriteBytes(filepath.Join(dir, "file"), 0o600, []byte("ok")); err != nil {
		t.Fatal(err)
	}
}
