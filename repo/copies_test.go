package repo_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
)

// A label that verifies: labels are checked by parsing.
var label = []byte(`{"version":1,"stream":"s","time":"2026-01-01T00:00:00Z","format":"raw","size":1,"new_blobs":1,"stored_bytes":1}`)

func names(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := s.List(t.Context(), prefix, func(oi repo.ObjectInfo) error { out = append(out, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopiesLayer: the contract of the copies layer (FORMAT.md §25).
func TestCopiesLayer(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	s := repo.WithCopies(inner)
	a, b := repo.LabelName(repo.ID{1}), repo.LabelName(repo.ID{2})
	for _, n := range []string{a, b, "data/01/" + repo.ID{1}.String() + ".0"} {
		if err := s.Put(ctx, n, label); err != nil {
			t.Fatal(err)
		}
	}
	// Metadata twice, shards once.
	if got, want := names(t, inner, ""), []string{repo.CopyName(a), repo.CopyName(b), "data/01/" + repo.ID{1}.String() + ".0", a, b}; !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	// A lost first copy is still listed and read; a damaged one is read around.
	inner.Delete(ctx, a)
	inner.Put(ctx, b, []byte("{"))
	if got := names(t, s, repo.LabelsPrefix); !slices.Equal(got, []string{a, b}) {
		t.Fatalf("listed %q", got)
	}
	if got := names(t, s, ""); !slices.Equal(got, []string{"data/01/" + repo.ID{1}.String() + ".0", a, b}) {
		t.Fatalf("listed everything as %q", got)
	}
	for _, n := range []string{a, b} {
		if got, err := s.Get(ctx, n); err != nil || !bytes.Equal(got, label) {
			t.Fatalf("get %s: %q %v", n, got, err)
		}
		if got, err := s.GetRange(ctx, n, 1, 9); err != nil || !bytes.Equal(got, label[1:10]) {
			t.Fatalf("get range %s: %q %v", n, got, err)
		}
		if oi, err := s.Stat(ctx, n); err != nil || oi.Name != n {
			t.Fatalf("stat %s: %+v %v", n, oi, err)
		}
	}
	// Both damaged: the object's own bytes, for the caller to report.
	inner.Put(ctx, repo.CopyName(b), []byte("}"))
	if got, err := s.Get(ctx, b); err != nil || string(got) != "{" {
		t.Fatalf("both damaged: %q %v", got, err)
	}
	// Delete removes both.
	if err := s.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

// TestCopiesLayerFailures: a store failure is not read around, and a
// failed write leaves no copy that readers would list.
func TestCopiesLayerFailures(t *testing.T) {
	ctx := t.Context()
	fs := faulty.New(mem.New())
	s := repo.WithCopies(fs)
	a := repo.LabelName(repo.ID{1})
	fs.FailOnce("Put", 2, faulty.ErrInjected) // the object, after its copy
	if err := s.Put(ctx, a, label); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("put: %v", err)
	}
	if got := names(t, fs, ""); len(got) > 0 {
		t.Fatalf("a failed put left %q", got)
	}
	fs.Reset()
	if err := s.Put(ctx, a, label); err != nil {
		t.Fatal(err)
	}
	fs.FailOnce("Get", 1, faulty.ErrInjected)
	if _, err := s.Get(ctx, a); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("a store failure was read around: %v", err)
	}
}

// retainingStore records RetainUntil calls.
type retainingStore struct {
	repo.Store
	retained []string
}

func (r *retainingStore) RetainUntil(_ context.Context, name string, _ time.Time) error {
	r.retained = append(r.retained, name)
	return nil
}

// TestCopiesLayerRetention: extending an object's retention extends its copy's.
func TestCopiesLayerRetention(t *testing.T) {
	rs := &retainingStore{Store: mem.New()}
	s := repo.WithCopies(rs)
	ret, ok := s.(repo.Retainer)
	if !ok {
		t.Fatal("the copies layer hides the store's retention")
	}
	a := repo.SnapshotName(repo.ID{1})
	if err := ret.RetainUntil(t.Context(), a, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rs.retained, []string{a, repo.CopyName(a)}) {
		t.Fatalf("retained %q", rs.retained)
	}
	if _, ok := repo.WithCopies(mem.New()).(repo.Retainer); ok {
		t.Fatal("the copies layer claims retention its store does not have")
	}
}

// TestInitOverLostConfig: a repository whose config survives only as its
// copy is still a repository: init refuses to overwrite it.
func TestInitOverLostConfig(t *testing.T) {
	s := mem.New()
	kdf := repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	if _, err := repo.Init(t.Context(), s, []byte("pw"), repo.InitOptions{KDF: kdf}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), repo.ConfigName); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(t.Context(), s, []byte("pw"), repo.InitOptions{KDF: kdf}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("init over a repository whose config is lost: %v", err)
	}
	if _, err := repo.Open(t.Context(), s, []byte("pw")); err != nil {
		t.Fatalf("open: %v", err)
	}
}

// TestCheckCopiesStrayNames: objects under a copied prefix whose names the
// format does not define are not findings of the copies check, nor a
// reason for it to fail.
func TestCheckCopiesStrayNames(t *testing.T) {
	s := mem.New()
	r, err := repo.Init(t.Context(), s, []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"logs/stray", "copies/logs/other", "configX", "keys/nothex"} {
		s.Put(t.Context(), n, []byte("x"))
	}
	found, err := r.CheckCopies(t.Context(), true)
	if err != nil || len(found) > 0 {
		t.Fatalf("check copies with stray names: %v %v", found, err)
	}
}

// TestCopiesRewriteKeepsSurvivor: rewriting an object whose first copy was
// lost, when the write fails, leaves the surviving copy in place.
func TestCopiesRewriteKeepsSurvivor(t *testing.T) {
	ctx := t.Context()
	fs := faulty.New(mem.New())
	s := repo.WithCopies(fs)
	a := repo.LabelName(repo.ID{1})
	if err := s.Put(ctx, a, label); err != nil {
		t.Fatal(err)
	}
	fs.Delete(ctx, a)
	fs.FailOnce("Put", 2, faulty.ErrInjected)
	if err := s.Put(ctx, a, label); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("put: %v", err)
	}
	if got, err := s.Get(ctx, a); err != nil || !bytes.Equal(got, label) {
		t.Fatalf("the surviving copy was taken back: %v", err)
	}
}
