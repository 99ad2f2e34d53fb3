package mem_test

import (
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) repo.Store { return mem.New() })
}

func TestLen(t *testing.T) {
	s := mem.New()
	for _, name := range []string{"a", "b", "a"} {
		if err := s.Put(t.Context(), name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.Len(), 2; got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
}
