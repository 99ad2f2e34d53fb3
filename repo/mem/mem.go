package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/strata-backup/strata/repo"
)

var (
	_ repo.Store   = (*Store)(nil)
	_ repo.Creator = (*Store)(nil)
)

// errEmptyName is returned for an empty object name, which no repository uses.
var errEmptyName = errors.New("empty object name")

// Store is an in-memory repo.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	objects map[string][]byte
}

// New returns an empty store.
func New() *Store {
	return &Store{objects: make(map[string][]byte)}
}

// Len returns the number of objects held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.objects)
}

// Put stores a copy of data under name, replacing any existing object. It
// fails only for an empty name or a context that is already done.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := check(ctx, name); err != nil {
		return fmt.Errorf("mem store: put %s: %w", name, err)
	}
	// A non-nil copy even for empty data keeps Get's result non-nil.
	c := append(make([]byte, 0, len(data)), data...)
	s.mu.Lock()
	s.objects[name] = c
	s.mu.Unlock()
	return nil
}

// Create stores a copy of data under name unless the name exists, which
// gives an error wrapping repo.ErrObjectExists.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if err := check(ctx, name); err != nil {
		return fmt.Errorf("mem store: create %s: %w", name, err)
	}
	c := append(make([]byte, 0, len(data)), data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[name]; ok {
		return fmt.Errorf("mem store: create %s: %w", name, repo.ErrObjectExists)
	}
	s.objects[name] = c
	return nil
}

// Get returns a copy of the object; a missing object wraps repo.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := check(ctx, name); err != nil {
		return nil, fmt.Errorf("mem store: get %s: %w", name, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.objects[name]
	if !ok {
		return nil, fmt.Errorf("mem store: get %s: %w", name, repo.ErrNotFound)
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

// GetRange returns a copy of length bytes at offset. A missing object wraps
// repo.ErrNotFound; a range not wholly inside the object wraps
// io.ErrUnexpectedEOF; a negative offset or length is an error.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := check(ctx, name); err != nil {
		return nil, fmt.Errorf("mem store: get %s: %w", name, err)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("mem store: get %s: invalid range offset %d length %d", name, offset, length)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.objects[name]
	if !ok {
		return nil, fmt.Errorf("mem store: get %s: %w", name, repo.ErrNotFound)
	}
	size := int64(len(b))
	// Written so that offset+length cannot overflow.
	if offset > size || length > size-offset {
		return nil, fmt.Errorf("mem store: get %s: range %d+%d outside object of %d bytes: %w",
			name, offset, length, size, io.ErrUnexpectedEOF)
	}
	return append(make([]byte, 0, length), b[offset:offset+length]...), nil
}

// Stat returns the object's size; a missing object wraps repo.ErrNotFound.
func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := check(ctx, name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("mem store: stat %s: %w", name, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.objects[name]
	if !ok {
		return repo.ObjectInfo{}, fmt.Errorf("mem store: stat %s: %w", name, repo.ErrNotFound)
	}
	return repo.ObjectInfo{Name: name, Size: int64(len(b))}, nil
}

// List calls fn for every object whose name starts with prefix, in ascending
// byte order. It works on a snapshot taken when it starts and holds no lock
// while fn runs, so fn may call any method of the store, Delete included.
// It stops at and returns fn's first error, or the context's error.
func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem store: list %s: %w", prefix, err)
	}
	s.mu.RLock()
	infos := make([]repo.ObjectInfo, 0, len(s.objects))
	for name, b := range s.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, repo.ObjectInfo{Name: name, Size: int64(len(b))})
		}
	}
	s.mu.RUnlock()
	// Go compares strings bytewise, which is the order the contract asks for.
	slices.SortFunc(infos, func(a, b repo.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mem store: list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object; deleting a missing object returns nil.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return fmt.Errorf("mem store: delete %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.objects, name)
	s.mu.Unlock()
	return nil
}

func check(ctx context.Context, name string) error {
	if name == "" {
		return errEmptyName
	}
	return ctx.Err()
}
