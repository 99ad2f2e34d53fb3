package location_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
	"github.com/strata-backup/strata/repo/mem"
)

// found is an optional interface only the innermost store has.
type found interface{ isInner() }

type innerStore struct{ *mem.Store }

func (innerStore) isInner() {}

func init() {
	location.Register(location.Backend{Name: "test", Schemes: []string{"testmem"}, Remote: true, Limit: 2,
		Open: func(_ context.Context, loc string, o location.Options) (repo.Store, error) {
			if o.Getenv("TEST_SETTING") != "on" {
				return nil, errors.New("setting not passed")
			}
			return innerStore{mem.New()}, nil
		}})
}

func TestOpenDecoratesAndStoreAsFindsTheBackend(t *testing.T) {
	env := func(name string) string {
		if name == "TEST_SETTING" {
			return "on"
		}
		return ""
	}
	s, err := location.Open(t.Context(), "testmem://x", location.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(found); ok {
		t.Fatal("a remote store came back without its decorators")
	}
	if _, ok := repo.StoreAs[found](s); !ok {
		t.Fatal("StoreAs does not find the backend's optional interface behind retry and limit")
	}
	if err := s.Put(t.Context(), "index/a", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesUnknownSchemesAndRetention(t *testing.T) {
	var le *location.Error
	if _, err := location.Open(t.Context(), "nope://x", location.Options{}); !errors.As(err, &le) {
		t.Fatalf("unknown scheme: %v, want a *location.Error", err)
	}
	if _, err := location.Open(t.Context(), "testmem://x", location.Options{Retention: time.Hour}); !errors.As(err, &le) {
		t.Fatalf("retention on a backend without it: %v, want a *location.Error", err)
	}
	if _, err := location.Open(t.Context(), "", location.Options{}); !errors.As(err, &le) {
		t.Fatalf("empty location: %v, want a *location.Error", err)
	}
}
