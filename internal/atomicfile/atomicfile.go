package atomicfile

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with what write produces. It writes a temporary file
// in the same directory (so the rename cannot cross file systems) with mode
// perm from its creation on, buffers the writes, syncs the file, renames it
// into place and syncs the directory. On any error the temporary file is
// removed and path is untouched.
//
// A path that is a directory is refused before anything is written, with an
// error wrapping syscall.EISDIR (a rename onto it would fail only at the end,
// saying "file exists").
func Write(path string, perm fs.FileMode, write func(io.Writer) error) (err error) {
	if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
		return &fs.PathError{Op: "write", Path: path, Err: syscall.EISDIR}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".strata-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600; Chmod sets perm exactly, whatever the
	// umask, before any byte is written.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some systems cannot sync a directory; the rename has happened anyway.
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// WriteBytes replaces path with data, as Write.
func WriteBytes(path string, perm fs.FileMode, data []byte) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
