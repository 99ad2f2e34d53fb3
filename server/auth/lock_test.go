package auth

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentCreate: many token creations and revocations on one file
// at once lose no update.
func TestConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if _, err := Create(path, "doomed", []Scope{{Kind: Read}}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = Create(path, fmt.Sprintf("t%02d", i), []Scope{{Kind: Read}})
		})
	}
	wg.Go(func() { errs[n] = Revoke(path, "doomed") })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	s, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Identities()); got != n {
		t.Fatalf("%d tokens in the file, want %d: updates were lost", got, n)
	}
}
