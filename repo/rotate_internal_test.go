package repo

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// mapStore is a minimal in-memory Store for tests inside package repo,
// which cannot import repo/mem (it imports repo).
type mapStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMapStore() *mapStore { return &mapStore{m: map[string][]byte{}} }

func (s *mapStore) Put(_ context.Context, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = slices.Clone(data)
	return nil
}

func (s *mapStore) Get(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[name]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(b), nil
}

func (s *mapStore) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || offset+length > int64(len(b)) {
		return nil, errors.New("range outside the object")
	}
	return b[offset : offset+length], nil
}

func (s *mapStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	b, err := s.Get(ctx, name)
	return ObjectInfo{Name: name, Size: int64(len(b))}, err
}

func (s *mapStore) List(_ context.Context, prefix string, fn func(ObjectInfo) error) error {
	s.mu.Lock()
	var infos []ObjectInfo
	for n, b := range s.m {
		if strings.HasPrefix(n, prefix) {
			infos = append(infos, ObjectInfo{Name: n, Size: int64(len(b))})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, oi := range infos {
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

func (s *mapStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

var rotateKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// TestRotateWritesUnderNewGeneration: after a rotation, new metadata and
// frames are sealed under the new generation's keys (the master key's no
// longer open them), old objects still open, and every key file is
// version 2, the version builds without rotation refuse.
func TestRotateWritesUnderNewGeneration(t *testing.T) {
	ctx := t.Context()
	s := newMapStore()
	r, err := Init(ctx, s, []byte("a"), InitOptions{KDF: rotateKDF, Cipher: CipherAES256GCM})
	if err != nil {
		t.Fatal(err)
	}
	old, err := r.SaveIndex(ctx, &IndexFile{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range keyFileVersions(t, s) {
		if v != 1 {
			t.Fatalf("key file version %d before any rotation, want 1", v)
		}
	}
	if _, err := r.RotateKeys(ctx, [][]byte{[]byte("a")}); err != nil {
		t.Fatal(err)
	}
	for _, v := range keyFileVersions(t, s) {
		if v != 2 {
			t.Fatalf("key file version %d after rotating, want 2", v)
		}
	}
	root, err := deriveKeys(r.ring.Root(), CipherAES256GCM)
	if err != nil {
		t.Fatal(err)
	}
	frame := seal(nil, r.keys.data, []byte("frame"), adFrame)
	if _, err := open(nil, root.data, frame, adFrame); err == nil {
		t.Fatal("a frame written after rotation opens with generation 0's data key")
	}
	if p, err := r.keys.openData(frame, adFrame); err != nil || string(p) != "frame" {
		t.Fatalf("the keyring does not open its own frame: %v", err)
	}
	id, err := r.SaveIndex(ctx, &IndexFile{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Get(ctx, IndexName(id))
	if _, err := open(nil, root.metadata, b, adIndex); err == nil {
		t.Fatal("an index file written after rotation opens with generation 0's metadata key")
	}
	r2, err := Open(ctx, s, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []ID{old, id} {
		if _, err := r2.LoadIndex(ctx, x); err != nil {
			t.Fatalf("index %s after rotation: %v", x.Short(), err)
		}
	}
	if r2.keys.gen != 1 || len(r2.ring) != 2 {
		t.Fatalf("reopened at generation %d with %d generations, want 1 and 2", r2.keys.gen, len(r2.ring))
	}
}

// TestStaleKeyFile: a key file written by a client that opened the
// repository before a rotation (so without the new generation) does not
// open it, with ErrStaleKey; a rotation given its password brings it up to
// date.
func TestStaleKeyFile(t *testing.T) {
	ctx := t.Context()
	s := newMapStore()
	before, err := Init(ctx, s, []byte("a"), InitOptions{KDF: rotateKDF})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, s, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateKeys(ctx, [][]byte{[]byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := before.AddKey(ctx, []byte("late"), rotateKDF, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, s, []byte("late")); !errors.Is(err, ErrStaleKey) {
		t.Fatalf("open with a key file behind the rotation: %v, want ErrStaleKey", err)
	}
	rep, err := r.RotateKeys(ctx, [][]byte{[]byte("a"), []byte("late")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.To != 2 {
		t.Fatalf("rotation reached %d, want 2", rep.To)
	}
	if _, err := Open(ctx, s, []byte("late")); err != nil {
		t.Fatalf("open after the rotation re-wrapped the late key: %v", err)
	}
}

// TestDamagedKeyringIsDamage: a version-2 key file whose keyring is cut
// short is reported as damage, never as a wrong password.
func TestDamagedKeyringIsDamage(t *testing.T) {
	ctx := t.Context()
	s := newMapStore()
	r, err := Init(ctx, s, []byte("a"), InitOptions{KDF: rotateKDF})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateKeys(ctx, [][]byte{[]byte("a")}); err != nil {
		t.Fatal(err)
	}
	for _, name := range keyNames(t, s) {
		b, _ := s.Get(ctx, name)
		var kf KeyFile
		if err := json.Unmarshal(b, &kf); err != nil {
			t.Fatal(err)
		}
		kf.Wrapped = kf.Wrapped[:len(kf.Wrapped)-36]
		nb, _ := json.Marshal(&kf)
		s.Put(ctx, name, nb)
		s.Put(ctx, CopyName(name), nb)
	}
	_, err = Open(ctx, s, []byte("a"))
	if err == nil || errors.Is(err, ErrWrongPassword) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a damaged keyring: %v, want damage", err)
	}
}

func keyNames(t *testing.T, s Store) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), KeysPrefix, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no key files")
	}
	return names
}

func keyFileVersions(t *testing.T, s Store) []int {
	t.Helper()
	var vs []int
	for _, name := range keyNames(t, s) {
		b, err := s.Get(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		kf, err := decodeKeyFile(name, b)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, kf.Version)
	}
	return vs
}

// TestRotateKeysBounded: a keyring holds at most MaxKeyGenerations; the
// rotation past it is refused and the repository still opens.
func TestRotateKeysBounded(t *testing.T) {
	ctx := t.Context()
	s := newMapStore()
	r, err := Init(ctx, s, []byte("a"), InitOptions{KDF: rotateKDF})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < MaxKeyGenerations; i++ {
		if rep, err := r.RotateKeys(ctx, [][]byte{[]byte("a")}); err != nil || rep.To != uint32(i) {
			t.Fatalf("rotation %d: %+v %v", i, rep, err)
		}
	}
	if _, err := r.RotateKeys(ctx, [][]byte{[]byte("a")}); err == nil {
		t.Fatalf("rotation to generation %d accepted", MaxKeyGenerations)
	}
	r2, err := Open(ctx, s, []byte("a"))
	if err != nil || len(r2.ring) != MaxKeyGenerations || r2.keys.gen != MaxKeyGenerations-1 {
		t.Fatalf("reopen: %v", err)
	}
}
