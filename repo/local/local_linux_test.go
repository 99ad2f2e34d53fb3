package local_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestFullDisk fills a small tmpfs, which needs the privilege to mount.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	s := open(t, dir)
	ctx := t.Context()
	if err := s.Put(ctx, "config", []byte("small")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data/ab/big.0", "big"} {
		err := s.Put(ctx, name, make([]byte, 256<<10))
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Put(%q) of more than the disk holds: error = %v, want one wrapping syscall.ENOSPC", name, err)
		}
		if !strings.HasPrefix(err.Error(), "local store: put "+name+": ") {
			t.Errorf("error %q lacks the store's prefix", err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat(%q) after a failed Put: %v, want not found", name, err)
		}
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left on the full disk: %q", tmp)
	}
	if got, want := storeNames(t, s, ""), []string{"config"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	// The failed Puts gave their space back.
	if err := s.Put(ctx, "keys/k", make([]byte, 16<<10)); err != nil {
		t.Fatalf("Put after the failures: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
