package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/strata-backup/strata/repo"
)

var (
	_ repo.Store       = (*Store)(nil)
	_ repo.Creator     = (*Store)(nil)
	_ repo.BatchPutter = (*Store)(nil)
)

// ErrInvalidName is wrapped by the error for a name that is not a valid
// object name (see the package documentation).
var ErrInvalidName = errors.New("invalid object name")

// tmpPrefix starts the file name of every temporary file Put writes.
const tmpPrefix = ".tmp-"

// Store is a repo.Store in a directory. It is safe for concurrent use, also
// by several Stores and processes on the same directory.
type Store struct {
	dir string

	mu sync.Mutex
	// synced holds the directories, as slash-separated paths relative to
	// dir ("" is dir itself), whose own entry in their parent this Store has
	// made durable. Only the first Put into a directory pays for syncing
	// its ancestors.
	synced map[string]bool
	// dirs coordinates the directory fsyncs of concurrent writes into
	// each directory, by its file path (syncDirShared).
	dirs map[string]*dirSync
}

// Open returns the store in dir, creating dir and its missing parents if
// needed. The objects already in dir are the store's objects.
func Open(dir string) (*Store, error) {
	return open(dir, true)
}

// OpenExisting returns the store in dir, which must exist: it never creates
// a directory, so a mistyped location fails (wrapping repo.ErrNotRepository)
// instead of leaving an empty directory behind.
func OpenExisting(dir string) (*Store, error) {
	return open(dir, false)
}

func open(dir string, create bool) (*Store, error) {
	if dir == "" {
		return nil, errors.New("local store: open: empty directory name")
	}
	// Absolute, so that a later os.Chdir does not move the store.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store: open: %w", err)
	}
	if create {
		if err := mkdirAllSync(dir); err != nil {
			return nil, fmt.Errorf("local store: open %s: %w", dir, err)
		}
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local store: open %s: the directory does not exist: %w", dir, repo.ErrNotRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("local store: open %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local store: open %s: not a directory", dir)
	}
	return &Store{dir: dir, synced: map[string]bool{"": true}, dirs: map[string]*dirSync{}}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Put writes data to a temporary file in the object's directory, syncs it
// and renames it over name, then syncs the directory, so that the object is
// durable and whole when Put returns nil. Concurrent Puts into one
// directory (the k+m shards of a pack share data/<2 hex>/) share that
// directory fsync: each waits for one that started after its rename. On failure the temporary file is
// removed; a full disk gives an error wrapping syscall.ENOSPC. A context
// already done stops Put before it writes; once writing, Put completes.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := s.put(ctx, name, data); err != nil {
		return fmt.Errorf("local store: put %s: %w", name, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, name string, data []byte) error {
	return s.write(ctx, name, data, false)
}

// Create writes data to a temporary file as Put does, then links it to
// name, which fails when name exists: link(2), like O_EXCL, is atomic on
// local file systems (and on NFSv3 and later), so of two processes
// creating one name exactly one succeeds. An existing name gives an error
// wrapping repo.ErrObjectExists.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if err := s.write(ctx, name, data, true); err != nil {
		return fmt.Errorf("local store: create %s: %w", name, err)
	}
	return nil
}

// write stores data under name through a synced temporary file: renamed
// over name, or with exclusive, linked to name and then removed.
func (s *Store) write(ctx context.Context, name string, data []byte, exclusive bool) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := s.writeTemp(name, data)
	if err != nil {
		return err
	}
	dir := filepath.Dir(tmp)
	if exclusive {
		err := os.Link(tmp, s.path(name))
		_ = os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return repo.ErrObjectExists
		}
		if err != nil {
			return err
		}
		return s.syncDirShared(dir)
	}
	if err := os.Rename(tmp, s.path(name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return s.syncDirShared(dir)
}

// writeTemp writes data to a new temporary file in the directory of the
// valid object name, making the directory if needed, syncs and closes the
// file, and returns its path. On failure no temporary file is left.
func (s *Store) writeTemp(name string, data []byte) (string, error) {
	rel := path.Dir(name)
	if rel == "." {
		rel = ""
	}
	if err := s.ensureDir(rel); err != nil {
		return "", err
	}
	dir := s.path(rel)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed the directory since this Store made it.
		s.forget()
		if err := s.ensureDir(rel); err != nil {
			return "", err
		}
		f, err = os.CreateTemp(dir, tmpPrefix+"*")
	}
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	if err := writeSync(f, data); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// PutBatch stores each data[i] under names[i] as Put does, but syncs each
// directory once for the whole batch instead of once per object: every
// object is first written to its own temporary file and synced (all at
// once), and only when every one is does PutBatch rename them over their
// names and then sync their directories, once each. A pack's k+m shards
// share data/<2 hex>/, so a pack costs k+m file fsyncs and one directory
// fsync rather than 2(k+m).
//
// Crash consistency: an object's data is durable before its rename, so
// whatever a crash leaves is each object whole or absent; an object is
// only guaranteed to survive a crash once PutBatch returned nil, which is
// after the directory syncs. A failure while writing renames nothing and
// leaves no temporary file; a failure while renaming leaves the objects
// renamed before it (not synced), which the caller MUST NOT reference, as
// for any failed batch (repo.BatchPutter).
func (s *Store) PutBatch(ctx context.Context, names []string, data [][]byte) error {
	if err := s.putBatch(ctx, names, data); err != nil {
		return fmt.Errorf("local store: put batch of %d objects: %w", len(names), err)
	}
	return nil
}

func (s *Store) putBatch(ctx context.Context, names []string, data [][]byte) error {
	if len(names) != len(data) {
		return fmt.Errorf("%d names for %d objects", len(names), len(data))
	}
	for _, n := range names {
		if err := validName(n); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The directories first, each once: the writers below then find
	// them made and synced, rather than all racing to sync their parent.
	var rels []string
	for _, n := range names {
		if rel := parentRel(n); !slices.Contains(rels, rel) {
			rels = append(rels, rel)
			if err := s.ensureDir(rel); err != nil {
				return err
			}
		}
	}
	tmps := make([]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			var err error
			if tmps[i], err = s.writeTemp(names[i], data[i]); err != nil {
				errs[i] = fmt.Errorf("%s: %w", names[i], err)
			}
		})
	}
	wg.Wait()
	remove := func(tmps []string) {
		for _, t := range tmps {
			if t != "" {
				_ = os.Remove(t)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		remove(tmps)
		return err
	}
	var dirs []string // in order of first use
	for i, name := range names {
		if err := os.Rename(tmps[i], s.path(name)); err != nil {
			remove(tmps[i:])
			return fmt.Errorf("%s: %w", name, err)
		}
		if d := filepath.Dir(tmps[i]); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := s.syncDirShared(d); err != nil {
			return err
		}
	}
	return nil
}

// dirSync is the state of one directory's shared fsyncs: at most one runs
// at a time, numbered in the order they start.
type dirSync struct {
	mu      sync.Mutex
	cond    sync.Cond // on mu: a sync ended
	running bool
	started uint64 // syncs started
	ended   uint64 // syncs ended; they end in the order they start
	err     error  // the error of the last sync that ended
}

// syncDirShared makes the entries of dir changed before the call durable,
// as syncDir does, but lets concurrent callers share fsyncs (group commit):
// a caller needs an fsync that starts after it called, so it waits for
// the one running (which may have started before its rename) to end, and
// then either starts the next one itself or finds that another waiter
// already did and waits for that. Every caller that arrives while one
// fsync runs is covered by the single next one. An error of that fsync
// (or of a later one, which also started after the call) is returned.
func (s *Store) syncDirShared(dir string) error {
	s.mu.Lock()
	d := s.dirs[dir]
	if d == nil {
		d = &dirSync{}
		d.cond.L = &d.mu
		s.dirs[dir] = d
	}
	s.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	need := d.started + 1 // the first sync to start from now on
	for d.ended < need {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		d.started++
		n := d.started
		d.mu.Unlock()
		err := syncDirFn(dir)
		d.mu.Lock()
		d.running, d.ended, d.err = false, n, err
		d.cond.Broadcast()
	}
	return d.err
}

// writeSync writes data to f, syncs and closes it; f is closed in any case.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// ensureDir makes the directory rel and its missing parents below the
// store's directory, and makes every new directory entry on the way durable.
// It never recreates the store's directory itself: if that is gone (an
// unmounted disk, say), Put fails rather than write elsewhere.
func (s *Store) ensureDir(rel string) error {
	s.mu.Lock()
	var chain []string // rel and its ancestors not yet synced, deepest first
	for d := rel; !s.synced[d]; d = parentRel(d) {
		chain = append(chain, d) // ends at latest at "", which is always synced
	}
	s.mu.Unlock()
	for _, d := range slices.Backward(chain) {
		if err := os.Mkdir(s.path(d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		// Sync the parent whether this call made d or a concurrent one did,
		// which may not have synced it yet; concurrent writers into a new
		// directory share the sync.
		if err := s.syncDirShared(s.path(parentRel(d))); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, d := range chain {
		s.synced[d] = true
	}
	s.mu.Unlock()
	return nil
}

// forget empties the synced set but for the store's directory itself: a
// directory vanished, and which of its ancestors went with it is unknown.
func (s *Store) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.synced)
	s.synced[""] = true
}

// Get returns the whole object; a missing object wraps repo.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := s.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("local store: get %s: %w", name, err)
	}
	return b, nil
}

func (s *Store) get(ctx context.Context, name string) ([]byte, error) {
	f, size, err := s.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// GetRange returns length bytes at offset. A missing object wraps
// repo.ErrNotFound; a range not wholly inside the object wraps
// io.ErrUnexpectedEOF; a negative offset or length is an error.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := s.getRange(ctx, name, offset, length)
	if err != nil {
		return nil, fmt.Errorf("local store: get %s: %w", name, err)
	}
	return b, nil
}

func (s *Store) getRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("invalid range offset %d length %d", offset, length)
	}
	f, size, err := s.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Written so that offset+length cannot overflow.
	if offset > size || length > size-offset {
		return nil, fmt.Errorf("range %d+%d outside object of %d bytes: %w", offset, length, size, io.ErrUnexpectedEOF)
	}
	b := make([]byte, length)
	n, err := f.ReadAt(b, offset)
	if n == len(b) {
		return b, nil // ReadAt may report io.EOF along with a read ending at the end
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// open opens the object's file for reading and returns its size.
func (s *Store) open(ctx context.Context, name string) (*os.File, int64, error) {
	if err := validName(name); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, 0, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", repo.ErrNotFound, f.Name())
	}
	return f, fi.Size(), nil
}

// Stat returns the object's size; a missing object, or a directory, wraps
// repo.ErrNotFound.
func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	info, err := s.stat(ctx, name)
	if err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("local store: stat %s: %w", name, err)
	}
	return info, nil
}

func (s *Store) stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := validName(name); err != nil {
		return repo.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, err
	}
	p := s.path(name)
	fi, err := os.Stat(p)
	if err != nil {
		return repo.ObjectInfo{}, notFound(err)
	}
	if !fi.Mode().IsRegular() {
		return repo.ObjectInfo{}, fmt.Errorf("%w: %s is not a regular file", repo.ErrNotFound, p)
	}
	return repo.ObjectInfo{Name: name, Size: fi.Size()}, nil
}

// List calls fn for every object whose name starts with prefix, in
// ascending byte order of names. It reads only the directories that can
// hold such names, reads each directory once before calling fn for its
// entries, and calls fn without holding any lock, so fn may use the store.
// Temporary files are skipped, as are objects deleted before List reaches
// them. It stops at and returns fn's first error.
func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	// The prefix is a directory part ending in '/' and a file name part
	// that may end mid-segment: "data/a" lists entries of data/ whose names
	// start with "a".
	dirPart, namePart := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirPart, namePart = prefix[:i+1], prefix[i+1:]
		if validName(dirPart[:i]) != nil {
			return nil // no object name starts with this prefix
		}
	}
	err := s.walk(ctx, dirPart, namePart, fn)
	var fnErr callbackError
	if errors.As(err, &fnErr) {
		return fnErr.err
	}
	if err != nil {
		return fmt.Errorf("local store: list %s: %w", prefix, err)
	}
	return nil
}

// callbackError carries List's callback error through walk unwrapped.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// walk reports the objects below the directory rel ("" or ending in '/')
// whose file name, at the first level only, starts with namePart.
func (s *Store) walk(ctx context.Context, rel, namePart string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(s.path(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // nothing there, or removed while listing
		}
		return err
	}
	type entry struct {
		key   string // the name's bytes as they sort in a full object name
		isDir bool
		de    fs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, de := range entries {
		n := de.Name()
		if !strings.HasPrefix(n, namePart) || validSegment(n) != nil {
			continue
		}
		isDir := de.IsDir()
		if de.Type()&fs.ModeSymlink != 0 {
			// Follow links as Get does, so a linked directory lists too.
			fi, err := os.Stat(s.path(rel + n))
			if err != nil {
				continue
			}
			isDir = fi.IsDir()
		}
		if isDir {
			// A directory's objects all start with "name/"; sorting by that
			// key puts "a.x" before "a/b", as '.' < '/' in full names.
			list = append(list, entry{key: n + "/", isDir: true, de: de})
		} else {
			list = append(list, entry{key: n, de: de})
		}
	}
	// Sibling keys never are prefixes of each other except where the
	// shorter one is a file, so sorting keys orders every name below them.
	slices.SortFunc(list, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	for _, e := range list {
		name := rel + e.key
		if e.isDir {
			if err := s.walk(ctx, name, "", fn); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(s.path(name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(repo.ObjectInfo{Name: name, Size: fi.Size()}); err != nil {
			return callbackError{err}
		}
	}
	return nil
}

// Delete removes the object and syncs its directory, so a deletion is not
// undone by a crash after Delete returns. Deleting a missing object, or a
// name that is a directory, returns nil.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.delete(ctx, name); err != nil {
		return fmt.Errorf("local store: delete %s: %w", name, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	if fi.IsDir() {
		return nil // not an object; os.Remove would delete an empty directory
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return nil // a concurrent Delete won
		}
		return err
	}
	return s.syncDirShared(filepath.Dir(p))
}

// path returns the file path of the slash-separated relative name rel.
func (s *Store) path(rel string) string {
	return filepath.Join(s.dir, filepath.FromSlash(rel))
}

// parentRel returns the parent of the relative directory d ("" for the root).
func parentRel(d string) string {
	i := strings.LastIndexByte(d, '/')
	if i < 0 {
		return ""
	}
	return d[:i]
}

// validName reports whether name is a valid object name (package
// documentation, "Names"), so that it maps to a path below the directory.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w %q: %w", ErrInvalidName, name, err)
		}
	}
	return nil
}

func validSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q", seg)
	case strings.ContainsAny(seg, "\\\x00"):
		return errors.New("backslash or NUL byte")
	case strings.HasPrefix(seg, tmpPrefix):
		return fmt.Errorf("segment starts with %q, reserved for temporary files", tmpPrefix)
	}
	return nil
}

// isNotExist reports errors meaning there is no file at a path, including a
// path through a regular file ("a/b" where "a" is an object).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notFound wraps a missing file's error with repo.ErrNotFound, keeping the
// original for the operator.
func notFound(err error) error {
	if isNotExist(err) {
		return fmt.Errorf("%w: %w", repo.ErrNotFound, err)
	}
	return err
}

// syncDirFn is the directory sync syncDirShared runs; tests count and
// time it.
var syncDirFn = syncDir

// syncDir makes the directory's entries durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing; NTFS renames are journaled
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil // the file system does not sync directories (some network file systems)
	}
	return errors.Join(err, d.Close())
}

// mkdirAllSync is os.MkdirAll that also makes each created directory's
// entry in its parent durable.
func mkdirAllSync(dir string) error {
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range slices.Backward(missing) {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}
