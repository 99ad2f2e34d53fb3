package spec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestRotateOlderRepositories (FORMAT.md §4.1): a version-1 repository is
// refused until it is upgraded, then rotates; the content written before
// the rotation (with version-1 key files, no keyring) restores after it.
func TestRotateOlderRepositories(t *testing.T) {
	s, v := version1Repository(t)
	ctx := t.Context()
	pw := []byte(v["password"])
	content := unhex(t, v["content hex"])
	r, err := repo.Open(ctx, s, pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateKeys(ctx, [][]byte{pw}); err == nil || !strings.Contains(err.Error(), "strata upgrade") {
		t.Fatalf("rotating a version-1 repository: %v, want a refusal that says to upgrade", err)
	}
	if _, err := r.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := r.RotateKeys(ctx, [][]byte{pw})
	if err != nil || rep.To != 1 {
		t.Fatalf("rotating the upgraded repository: %+v %v", rep, err)
	}
	r2, err := repo.Open(ctx, s, pw)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Config().KeyGeneration != 1 {
		t.Fatalf("reopened at generation %d, want 1", r2.Config().KeyGeneration)
	}
	if !bytes.Equal(restoreLatest(t, r2, v["stream"]), content) {
		t.Fatal("content written before the rotation restores wrong bytes after it")
	}
}
