package local_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/storetest"
)

func open(t *testing.T, dir string) *local.Store {
	t.Helper()
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store { return open(t, t.TempDir()) })
}

// tempFiles returns the paths of Put's temporary files below dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestLayoutAndNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				name := fmt.Sprintf("data/%02x/%d.%d", i%4, w, i)
				if err := s.Put(t.Context(), name, []byte(name)); err != nil {
					t.Error(err)
				}
				// Identical rewrites, as retries do.
				if err := s.Put(t.Context(), "config", []byte("config")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left after Puts: %q", tmp)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "03", "7.19"))
	if err != nil {
		t.Fatalf("object not at the path of its name: %v", err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want {
		t.Errorf("object file mode = %v, want %v", got, want)
	}
	fi, err = os.Stat(filepath.Join(dir, "data", "03"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o700); got != want {
		t.Errorf("directory mode = %v, want %v", got, want)
	}
}

func TestInvalidNames(t *testing.T) {
	root := t.TempDir()
	s := open(t, filepath.Join(root, "store"))
	ctx := t.Context()
	names := []string{
		"", "/abs", "../escape", "a/../../escape", "a/./b", "a//b", "a/", ".", "..",
		"a\\b", "..\\escape", "a\x00b", ".tmp-x", "data/.tmp-x/y", "data/ab/.tmp-123",
	}
	for _, name := range names {
		errs := map[string]error{"Put": s.Put(ctx, name, []byte("x")), "Delete": s.Delete(ctx, name)}
		_, errs["Get"] = s.Get(ctx, name)
		_, errs["GetRange"] = s.GetRange(ctx, name, 0, 1)
		_, errs["Stat"] = s.Stat(ctx, name)
		for method, err := range errs {
			if !errors.Is(err, local.ErrInvalidName) {
				t.Errorf("%s(%q) error = %v, want one wrapping local.ErrInvalidName", method, name, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a Put escaped the store's directory: stat: %v", err)
	}
	if got := storeNames(t, s, ""); len(got) != 0 {
		t.Fatalf("invalid names left objects: %q", got)
	}
}

func storeNames(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), prefix, func(info repo.ObjectInfo) error {
		names = append(names, info.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "nested")
	data := bytes.Repeat([]byte("durable "), 1000)
	if err := open(t, dir).Put(t.Context(), "data/ab/ab.0", data); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, dir).Get(t.Context(), "data/ab/ab.0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("reopened store returned different bytes")
	}
}

func TestOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Open(p); err == nil {
		t.Fatal("Open of a regular file succeeded")
	}
	if _, err := local.Open(""); err == nil {
		t.Fatal("Open of an empty path succeeded")
	}
}

func TestListSkipsTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for _, name := range []string{"config", "data/ab/x.0"} {
		if err := s.Put(t.Context(), name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	// What a crash between writing and renaming leaves behind.
	for _, p := range []string{".tmp-123", "data/ab/.tmp-456", "data/.tmp-789"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := storeNames(t, s, ""), []string{"config", "data/ab/x.0"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	for _, prefix := range []string{".tmp", "data/.tmp-", "data/ab/.t"} {
		if got := storeNames(t, s, prefix); len(got) != 0 {
			t.Fatalf("List(%q) = %q, want nothing", prefix, got)
		}
	}
}

func TestDeleteDirectoryName(t *testing.T) {
	s := open(t, t.TempDir())
	if err := s.Put(t.Context(), "data/ab/x.0", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data/ab", "data"} {
		if err := s.Delete(t.Context(), name); err != nil {
			t.Fatalf("Delete(%q) of a directory: %v, want nil", name, err)
		}
	}
	if _, err := s.Get(t.Context(), "data/ab/x.0"); err != nil {
		t.Fatalf("Delete of its directory's name removed an object: %v", err)
	}
}

func TestDirectoryRemovedBehindStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Put(t.Context(), "data/ab/x.0", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "data/ab/y.0", []byte("y")); err != nil {
		t.Fatalf("Put after its directory was removed: %v", err)
	}
	if got, want := storeNames(t, s, ""), []string{"data/ab/y.0"}; !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

// TestStoreDirectoryGone checks that a vanished store directory, as with
// an unmounted disk, is not silently recreated in its place.
func TestStoreDirectoryGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	s := open(t, dir)
	if err := s.Put(t.Context(), "data/ab/x.0", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config", "data/ab/y.0", "keys/k"} {
		if err := s.Put(t.Context(), name, []byte("x")); err == nil {
			t.Errorf("Put(%q) into a removed store directory succeeded", name)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("store directory was recreated: stat: %v", err)
	}
	if got := storeNames(t, s, ""); len(got) != 0 {
		t.Fatalf("List of a removed directory = %q", got)
	}
}

func TestPutReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: directory permissions do not stop root, so a read-only directory cannot make Put fail")
	}
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Put(t.Context(), "data/ab/x.0", []byte("x")); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "data", "ab")
	if err := os.Chmod(sub, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(sub, 0o700) })
	err := s.Put(t.Context(), "data/ab/y.0", []byte("y"))
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Put into a read-only directory: error = %v, want one wrapping fs.ErrPermission", err)
	}
	if !strings.HasPrefix(err.Error(), "local store: put data/ab/y.0: ") {
		t.Errorf("error %q lacks the store's prefix", err)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left: %q", tmp)
	}
	if _, err := s.Stat(t.Context(), "data/ab/y.0"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat after failed Put: %v, want not found", err)
	}
}
