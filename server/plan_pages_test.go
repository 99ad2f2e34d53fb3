package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// pagedServer is the fixture's server behind a front that counts the GETs
// of segment manifests and lets a test act on, or rewrite, plan requests.
type pagedServer struct {
	f         *fixture
	http      *httptest.Server
	manifests sync.Map // name → *atomic.Int64: GETs of logs/…
	// onPage, when set, runs before a plan request that has after=.
	onPage func(r *http.Request)
	// rewrite, when set, edits the query of every plan request.
	rewrite func(q map[string][]string)
	// answer, when set, edits every plan answer that has after=.
	answer func(p *wire.Plan)
}

func newPagedServer(f *fixture) *pagedServer {
	ps := &pagedServer{f: f}
	h := f.srv.Handler()
	ps.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := strings.CutPrefix(r.URL.Path, "/v1/objects/"); ok && r.Method == http.MethodGet && strings.HasPrefix(name, repo.LogsPrefix) {
			n, _ := ps.manifests.LoadOrStore(name, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		if r.URL.Path != "/v1/plan" {
			h.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		if q.Get("after") != "" && ps.onPage != nil {
			ps.onPage(r)
		}
		if ps.rewrite != nil {
			ps.rewrite(q)
			r.URL.RawQuery = q.Encode()
		}
		if q.Get("after") == "" || ps.answer == nil {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var p wire.Plan
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		ps.answer(&p)
		json.NewEncoder(w).Encode(p)
	}))
	f.t.Cleanup(ps.http.Close)
	return ps
}

// gets returns the GETs of each manifest seen so far.
func (ps *pagedServer) gets() map[string]int64 {
	out := map[string]int64{}
	ps.manifests.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// open returns a client asking for pages of page segments and the
// repository opened through it.
func (ps *pagedServer) open(t *testing.T, page int) (*client.Client, *repo.Repository) {
	t.Helper()
	c, err := client.New(ps.http.URL, ps.f.tokens["admin"], client.Options{Attempts: 1, PlanPage: page})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), c.Store(), password)
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}

// pagesLog backs up shop/users at position 0 and logs 7 segments of 10
// events after it, segment 2 beside a manifest it replaces (a twin).
func pagesLog(t *testing.T, f *fixture) {
	t.Helper()
	admin := f.open("admin")
	t0 := f.clock.Now().Add(-2 * time.Hour)
	if _, err := f.backup(admin, "shop/users", t0, 0, []byte("state at position 0")); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(7) {
		if err := f.log(admin, "shop/users", 1+10*i, 10+10*i, t0); err != nil {
			t.Fatal(err)
		}
	}
	replaceSegment(t, admin, 2)
}

// replaceSegment stores a manifest that replaces segment i of shop/users
// (a re-encryption cut short), its twin.
func replaceSegment(t *testing.T, r *repo.Repository, i int) {
	t.Helper()
	logs, err := index.ListLogs(t.Context(), r.Store(), "shop/users")
	if err != nil {
		t.Fatal(err)
	}
	k := logs["shop/users"].Segments[i]
	s, err := r.LoadSegment(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	n := *s
	n.Created = n.Created.Add(time.Second)
	n.Replaces = &k.ID
	if _, err := r.SaveSegment(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
}

// restoreEvents loads and verifies a plan's manifests and counts the
// events it applies, as a restore does.
func restoreEvents(t *testing.T, r *repo.Repository, p *index.Plan) int {
	t.Helper()
	segs, err := engine.LoadPlanSegments(t.Context(), r, p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := engine.EachPlanEvent(t.Context(), r, p, segs, func(repo.SegmentKey, *repo.Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func samePlan(t *testing.T, what string, got, want *index.Plan) {
	t.Helper()
	if got.Base.ID != want.Base.ID || got.From != want.From || !slices.Equal(got.Segments, want.Segments) {
		t.Fatalf("%s: base %s from %d, %d segments %v\nwant base %s from %d, %d segments %v", what,
			got.Base.ID.Short(), got.From, len(got.Segments), got.Segments, want.Base.ID.Short(), want.From, len(want.Segments), want.Segments)
	}
}

// TestPlanForPages: PlanFor in pages of 2 gives the plan PlanFor gives in
// one page and the whole plan's log decodes to; the manifests of the
// first page are fetched before the second page is answered (the restore
// starts after the first page), each manifest once, and the restore takes
// them from the prefetch rather than asking again.
func TestPlanForPages(t *testing.T) {
	f := newFixture(t)
	pagesLog(t, f)
	ps := newPagedServer(f)
	ctx := t.Context()
	at := index.Target{Position: 65, ByPos: true}

	var pagesAfterFirst atomic.Int64
	var early sync.Once
	ps.onPage = func(r *http.Request) {
		pagesAfterFirst.Add(1)
		early.Do(func() {
			// The first page's two manifests are asked for before the
			// second page is answered.
			deadline := time.Now().Add(10 * time.Second)
			for len(ps.gets()) < 2 {
				if time.Now().After(deadline) {
					t.Errorf("the first page's manifests were not fetched before the second page")
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	c, r := ps.open(t, 2)
	paged, err := c.PlanFor(ctx, r, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	pagedKeys := slices.Clone(paged.Segments)
	if n := pagesAfterFirst.Load(); n != 3 {
		t.Fatalf("%d pages after the first, want 3 (8 segments in pages of 2)", n)
	}
	// Every manifest is fetched ahead before the restore asks for one.
	listed := len(paged.Segments)
	deadline := time.Now().Add(10 * time.Second)
	for len(ps.gets()) < listed && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := restoreEvents(t, r, paged); n != 65 {
		t.Fatalf("restore from the paged plan applied %d events, want 65", n)
	}
	gets := ps.gets()
	if len(gets) != listed {
		t.Fatalf("%d manifests fetched, want %d", len(gets), listed)
	}
	for name, n := range gets {
		if n != 1 {
			t.Fatalf("%s fetched %d times: the restore did not take the prefetched manifest", name, n)
		}
	}

	// The same plan in one page, and the whole plan's log.
	cw, rw := ps.open(t, 1000)
	whole, err := cw.PlanFor(ctx, rw, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := cw.Plan(ctx, "shop/users", at)
	if err != nil || wp.Next != "" {
		t.Fatalf("whole plan: %+v, %v", wp, err)
	}
	keys, err := wire.DecodePlanLog("shop/users", wp.From, wp.Log)
	if err != nil || !slices.Equal(keys, whole.Segments) || !slices.Equal(keys, pagedKeys) || len(keys) != 8 {
		t.Fatalf("whole plan's log %v (%v), PlanFor's %v; want 7 segments and a twin", keys, err, whole.Segments)
	}
	paged.Segments = pagedKeys
	samePlan(t, "pages of 2", paged, whole)
}

// TestPlanForPagesOldServer: a server before pages ignores limit and
// answers the whole plan; the client takes it as the only page.
func TestPlanForPagesOldServer(t *testing.T) {
	f := newFixture(t)
	pagesLog(t, f)
	ps := newPagedServer(f)
	at := index.Target{Position: 65, ByPos: true}
	cw, rw := ps.open(t, 1000)
	whole, err := cw.PlanFor(t.Context(), rw, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	var pages atomic.Int64
	ps.rewrite = func(q map[string][]string) {
		pages.Add(1)
		delete(q, "limit")
		delete(q, "after")
	}
	c, r := ps.open(t, 2)
	p, err := c.PlanFor(t.Context(), r, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	samePlan(t, "an old server's plan", p, whole)
	if pages.Load() != 1 {
		t.Fatalf("%d plan requests, want 1", pages.Load())
	}
	if n := restoreEvents(t, r, p); n != 65 {
		t.Fatalf("restore applied %d events, want 65", n)
	}
}

// TestPlanForPagesChanged: a twin stored between two pages makes the
// server refuse the cursor; PlanFor starts over and gets the new plan,
// which restores.
func TestPlanForPagesChanged(t *testing.T) {
	f := newFixture(t)
	pagesLog(t, f)
	ps := newPagedServer(f)
	admin := f.open("admin")
	at := index.Target{Position: 65, ByPos: true}
	var once sync.Once
	ps.onPage = func(*http.Request) { once.Do(func() { replaceSegment(t, admin, 0) }) }
	c, r := ps.open(t, 2)
	p, err := c.PlanFor(t.Context(), r, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	cw, rw := ps.open(t, 1000)
	whole, err := cw.PlanFor(t.Context(), rw, "shop/users", at)
	if err != nil {
		t.Fatal(err)
	}
	samePlan(t, "pages across a change", p, whole)
	if len(p.Segments) != 9 {
		t.Fatalf("%d segments, want 7 and two twins", len(p.Segments))
	}
	if n := restoreEvents(t, r, p); n != 65 {
		t.Fatalf("restore applied %d events, want 65", n)
	}
}

// TestPlanForPagesRefused: pages that do not continue the first page's
// plan are refused, never joined into a plan: another base or from,
// segments that do not follow on, more segments than asked for, and an
// empty page that promises more.
func TestPlanForPagesRefused(t *testing.T) {
	f := newFixture(t)
	pagesLog(t, f)
	ps := newPagedServer(f)
	at := index.Target{Position: 65, ByPos: true}
	for _, c := range []struct {
		name   string
		answer func(p *wire.Plan)
		want   string
	}{
		{"another from", func(p *wire.Plan) { p.From++ }, "another plan"},
		{"another base", func(p *wire.Plan) { p.Base.ID = strings.Repeat("0", 64) }, "another plan"},
		{"another target", func(p *wire.Plan) { p.Target = "position 66" }, "another plan"},
		{"a page skipped", func(p *wire.Plan) {
			keys, _ := wire.DecodePlanLogAfter("shop/users", 21, 0, p.Log)
			for i := range keys {
				keys[i].First += 10
				keys[i].Last += 10
			}
			p.Log = wire.AppendPlanLogAfter(nil, 21, 0, keys)
		}, "out of order"},
		{"an empty page with more", func(p *wire.Plan) {
			if p.Next != "" {
				p.Log = wire.AppendPlanLog(nil, 1, nil)
			}
		}, "holds 0 segments"},
		{"a cursor over the limit", func(p *wire.Plan) {
			if p.Next != "" {
				p.Next = strings.Repeat("A", wire.MaxPlanCursor+1)
			}
		}, "over the limit"},
	} {
		ps.answer = c.answer
		cl, r := ps.open(t, 2)
		_, err := cl.PlanFor(t.Context(), r, "shop/users", at)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// A server that answers more segments than asked for, with more to come.
	ps.answer = nil
	ps.rewrite = func(q map[string][]string) {
		if len(q["after"]) > 0 {
			q["limit"] = []string{"3"}
		}
	}
	cl, r := ps.open(t, 2)
	if _, err := cl.PlanFor(t.Context(), r, "shop/users", at); err == nil || !strings.Contains(err.Error(), "holds 3 segments") {
		t.Errorf("a page over the limit: %v", err)
	}
}
