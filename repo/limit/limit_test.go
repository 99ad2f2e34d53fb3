package limit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/storetest"
)

func TestConformance(t *testing.T) {
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) repo.Store { return limit.New(mem.New(), n) })
		})
	}
}

// gauge is a slow store that records how many calls were in flight at once.
type gauge struct {
	repo.Store
	delay time.Duration

	mu       sync.Mutex
	inFlight int
	peak     int
	until    map[string]time.Time
}

func (g *gauge) enter() func() {
	g.mu.Lock()
	g.inFlight++
	g.peak = max(g.peak, g.inFlight)
	g.mu.Unlock()
	time.Sleep(g.delay)
	return func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}
}

func (g *gauge) Put(ctx context.Context, name string, data []byte) error {
	defer g.enter()()
	return g.Store.Put(ctx, name, data)
}

func (g *gauge) Get(ctx context.Context, name string) ([]byte, error) {
	defer g.enter()()
	return g.Store.Get(ctx, name)
}

func (g *gauge) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	defer g.enter()()
	return g.Store.GetRange(ctx, name, offset, length)
}

func (g *gauge) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	defer g.enter()()
	return g.Store.Stat(ctx, name)
}

// List counts as in flight except while fn runs, as limit promises.
func (g *gauge) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	leave := g.enter()
	defer func() { leave() }()
	return g.Store.List(ctx, prefix, func(info repo.ObjectInfo) error {
		leave()
		err := fn(info)
		leave = g.enter()
		return err
	})
}

func (g *gauge) Delete(ctx context.Context, name string) error {
	defer g.enter()()
	return g.Store.Delete(ctx, name)
}

func (g *gauge) RetainUntil(_ context.Context, name string, until time.Time) error {
	defer g.enter()()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until == nil {
		g.until = make(map[string]time.Time)
	}
	g.until[name] = until
	return nil
}

func TestBoundsConcurrency(t *testing.T) {
	const n = 3
	g := &gauge{Store: mem.New(), delay: 2 * time.Millisecond}
	s := limit.New(g, n)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			name := string(rune('a' + w))
			var err error
			switch w % 6 {
			case 0:
				err = s.Put(ctx, name, []byte(name))
			case 1:
				_, err = s.Get(ctx, name)
			case 2:
				_, err = s.GetRange(ctx, name, 0, 0)
			case 3:
				_, err = s.Stat(ctx, name)
			case 4:
				err = s.List(ctx, "", func(repo.ObjectInfo) error {
					time.Sleep(time.Millisecond)
					return nil
				})
			case 5:
				err = s.(repo.Retainer).RetainUntil(ctx, name, time.Now())
			}
			if err != nil && !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if g.peak > n {
		t.Fatalf("%d calls in flight at once, want at most %d", g.peak, n)
	}
	if g.peak < 2 {
		t.Fatalf("at most %d call in flight: the limit serialises calls", g.peak)
	}
}

func TestListCallbackDoesNotHoldSlot(t *testing.T) {
	s := limit.New(mem.New(), 1)
	for _, name := range []string{"a", "b", "c"} {
		if err := s.Put(t.Context(), name, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := s.List(t.Context(), "", func(info repo.ObjectInfo) error {
		got = append(got, info.Name)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return s.Delete(ctx, info.Name)
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("List = %q", got)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	g := &gauge{Store: mem.New(), delay: 200 * time.Millisecond}
	s := limit.New(g, 1)
	go func() { _ = s.Put(context.Background(), "slow", nil) }()
	for {
		g.mu.Lock()
		busy := g.inFlight > 0
		g.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while the only slot is taken: %v, want one wrapping context.DeadlineExceeded", err)
	}
}

type tamperedStore struct{ repo.Store }

func (tamperedStore) TamperedObjects() []string { return []string{"config"} }

func TestForwardsOptionalInterfaces(t *testing.T) {
	tests := []struct {
		name                   string
		inner                  repo.Store
		isRetainer, isTampered bool
	}{
		{"plain", mem.New(), false, false},
		{"retainer", &gauge{Store: mem.New()}, true, false},
		{"tampered", tamperedStore{mem.New()}, false, true},
		{"both", tamperedStore{&gauge{Store: mem.New()}}, false, true}, // embedding an interface hides RetainUntil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := limit.New(tt.inner, 2)
			_, isRetainer := s.(repo.Retainer)
			tp, isTampered := s.(repo.Tampered)
			if isRetainer != tt.isRetainer || isTampered != tt.isTampered {
				t.Fatalf("Retainer %v, Tampered %v; want %v, %v", isRetainer, isTampered, tt.isRetainer, tt.isTampered)
			}
			if isTampered && !slices.Equal(tp.TamperedObjects(), []string{"config"}) {
				t.Fatalf("TamperedObjects = %q", tp.TamperedObjects())
			}
		})
	}
}

type both struct{ *gauge }

func (both) TamperedObjects() []string { return []string{"config"} }

func TestForwardsBoth(t *testing.T) {
	g := &gauge{Store: mem.New()}
	s := limit.New(both{g}, 2)
	r, ok := s.(repo.Retainer)
	if _, ok2 := s.(repo.Tampered); !ok || !ok2 {
		t.Fatalf("Retainer %v, Tampered %v; want both", ok, ok2)
	}
	until := time.Now()
	if err := r.RetainUntil(t.Context(), "x", until); err != nil {
		t.Fatal(err)
	}
	if !g.until["x"].Equal(until) {
		t.Fatal("RetainUntil did not reach the inner store")
	}
}
