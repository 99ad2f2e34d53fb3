package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/server/wire"
)

// pagesFixture is a server over a catalog of names only: one snapshot at
// position 0 and a log of 30 segments of 10 events and 10 s with a
// time-uncertain span (segments 8 to 11), a replacement twin (segment
// 15's name twice) and leased segments from 20 on, the keys a plan log
// spells differently (times going back, a negative first − next, epochs).
type pagesFixture struct {
	srv   *Server
	token string
	keys  []repo.SegmentKey // as listed: the twin after its sibling
}

func newPagesFixture(t *testing.T) *pagesFixture {
	t.Helper()
	ctx := t.Context()
	st := mem.New()
	const stream = "shop/users"
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	pos := uint64(0)
	received := time.Unix(0, t0).UTC()
	l := &repo.Label{Version: 1, Stream: stream, Time: time.Unix(0, t0-int64(time.Second)).UTC(), Position: &pos, Format: "ndjson",
		Size: 1 << 20, NewBlobs: 10, StoredBytes: 1 << 10, Received: &received, By: "test"}
	b, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var snap repo.ID
	snap[0] = 0xaa
	if err := st.Put(ctx, repo.LabelName(snap), b); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, repo.SnapshotsPrefix+snap.String(), []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	f := &pagesFixture{}
	for i := range 30 {
		k := repo.SegmentKey{Stream: stream, First: 1 + uint64(i)*10, Last: uint64(i+1) * 10,
			FirstTime: t0 + int64(i)*10e9, LastTime: t0 + int64(i)*10e9 + 9e9}
		if i >= 8 && i <= 11 {
			k.Uncertain, k.FirstTime = true, t0+8*10e9 // one span: its segments share the first time
		}
		if i >= 20 {
			k.Epoch = 3
		}
		binary.BigEndian.PutUint32(k.ID[:], uint32(i+1))
		f.keys = append(f.keys, k)
		if i == 15 {
			twin := k
			twin.ID[31] = 1
			f.keys = append(f.keys, twin)
		}
	}
	for _, k := range f.keys {
		if err := st.Put(ctx, k.Name(), []byte("manifest")); err != nil {
			t.Fatal(err)
		}
	}
	// A gap after the log's end, so coverage has every part.
	gap := repo.SegmentKey{Stream: stream, First: 1001, Last: 1010, FirstTime: t0 + 400e9, LastTime: t0 + 410e9, Epoch: 3}
	gap.ID[0] = 0xee
	if err := st.Put(ctx, gap.Name(), []byte("manifest")); err != nil {
		t.Fatal(err)
	}
	f.srv, f.token = newBenchServer(t, st)
	f.srv.o.Now = func() time.Time { return time.Unix(0, t0).Add(12*time.Hour + 345678*time.Microsecond) }
	return f
}

// get sends GET path and returns the status and body.
func (f *pagesFixture) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func planPath(stream, target string, limit int, after string) string {
	q := url.Values{"stream": {stream}}
	k, v, _ := strings.Cut(target, "=")
	q.Set(k, v)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	return "/v1/plan?" + q.Encode()
}

// whole fetches a plan in one answer and decodes its keys.
func (f *pagesFixture) whole(t *testing.T, target string) (int, wire.Plan, []repo.SegmentKey) {
	t.Helper()
	code, body := f.get(t, planPath("shop/users", target, 0, ""))
	var p wire.Plan
	if code != http.StatusOK {
		return code, p, nil
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Next != "" {
		t.Fatalf("a whole plan with next %q", p.Next)
	}
	keys, err := wire.DecodePlanLog("shop/users", p.From, p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return code, p, keys
}

// paged fetches a plan limit segments at a time, following next.
func (f *pagesFixture) paged(t *testing.T, target string, limit int) (int, wire.Plan, []repo.SegmentKey) {
	t.Helper()
	var first wire.Plan
	var keys []repo.SegmentKey
	after := ""
	for page := 0; ; page++ {
		code, body := f.get(t, planPath("shop/users", target, limit, after))
		if code != http.StatusOK {
			if page > 0 {
				t.Fatalf("%s, pages of %d: page %d: %d %s", target, limit, page, code, body)
			}
			return code, first, nil
		}
		var p wire.Plan
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if page == 0 {
			first = p
		} else if p.Stream != first.Stream || p.Target != first.Target || p.Base.ID != first.Base.ID || p.From != first.From {
			t.Fatalf("%s, pages of %d: page %d is of another plan: %+v", target, limit, page, p)
		}
		next, prev := p.From, int64(0)
		if n := len(keys); n > 0 {
			next, prev = keys[n-1].Last+1, keys[n-1].LastTime
		}
		got, err := wire.DecodePlanLogAfter("shop/users", next, prev, p.Log)
		if err != nil {
			t.Fatalf("%s, pages of %d: page %d: %v", target, limit, page, err)
		}
		if len(got) > limit || p.Next != "" && len(got) != limit {
			t.Fatalf("%s, pages of %d: page %d holds %d segments (next %q)", target, limit, page, len(got), p.Next)
		}
		keys = append(keys, got...)
		if p.Next == "" {
			first.Log = nil
			return code, first, keys
		}
		after = p.Next
	}
}

// TestPlanPages: a plan fetched in pages of every size is the plan fetched
// whole, head and segments, for targets by position and time all along
// a log with a time-uncertain span, a twin and leased segments, so pages
// begin and end inside each of them.
func TestPlanPages(t *testing.T) {
	f := newPagesFixture(t)
	t0 := f.keys[0].FirstTime
	var targets []string
	for p := uint64(1); p <= 300; p += 7 {
		targets = append(targets, "position="+strconv.FormatUint(p, 10))
	}
	for s := int64(0); s <= 300; s += 11 {
		targets = append(targets, "at="+time.Unix(0, t0+s*1e9).UTC().Format(time.RFC3339Nano))
	}
	planned, twins := 0, 0
	for _, target := range targets {
		code, wp, want := f.whole(t, target)
		for _, limit := range []int{1, 2, 3, 4, 5, 7, 16, 31, 32, 100} {
			pcode, pp, got := f.paged(t, target, limit)
			if pcode != code {
				t.Fatalf("%s: whole %d, pages of %d: %d", target, code, limit, pcode)
			}
			if code != http.StatusOK {
				continue
			}
			wp.Log = nil
			if pp.Stream != wp.Stream || pp.Target != wp.Target || pp.Base.ID != wp.Base.ID || pp.From != wp.From {
				t.Fatalf("%s, pages of %d: head %+v, whole %+v", target, limit, pp, wp)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s, pages of %d: %d segments\n%+v\nwhole: %d\n%+v", target, limit, len(got), got, len(want), want)
			}
		}
		if code == http.StatusOK {
			planned++
			if slices.ContainsFunc(want, func(k repo.SegmentKey) bool { return k.ID[31] == 1 }) {
				twins++
			}
		}
	}
	if planned < len(targets)/2 || twins == 0 {
		t.Fatalf("%d of %d targets planned, %d through the twin: the test does not test pages", planned, len(targets), twins)
	}
}

// TestPlanPageCursorRefused: an altered cursor, a cursor of another
// target or stream, one at or past the plan's end, and one whose plan
// changed since it was handed out are each a 400 that says to start over,
// never a page; a limit out of range is a 400 too.
func TestPlanPageCursorRefused(t *testing.T) {
	f := newPagesFixture(t)
	const target = "position=250"
	code, body := f.get(t, planPath("shop/users", target, 4, ""))
	var p wire.Plan
	if code != http.StatusOK || json.Unmarshal(body, &p) != nil || p.Next == "" {
		t.Fatalf("first page: %d %s", code, body)
	}
	refused := func(what, path string) {
		t.Helper()
		code, body := f.get(t, path)
		var e wire.Error
		if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error.Code != wire.CodeBadRequest {
			t.Fatalf("%s: %d %s, want 400 bad_request", what, code, body)
		}
		if !strings.Contains(e.Error.Message, "after:") && !strings.Contains(e.Error.Message, "limit:") {
			t.Fatalf("%s: message %q does not name the parameter", what, e.Error.Message)
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.Next)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for bit := range 8 {
			b := slices.Clone(raw)
			b[i] ^= 1 << bit
			refused("byte "+strconv.Itoa(i)+" bit "+strconv.Itoa(bit), planPath("shop/users", target, 4, base64.RawURLEncoding.EncodeToString(b)))
		}
	}
	refused("another target", planPath("shop/users", "position=251", 4, p.Next))
	refused("a target by time", planPath("shop/users", "at="+time.Unix(0, f.keys[24].LastTime).UTC().Format(time.RFC3339Nano), 4, p.Next))
	refused("garbage", planPath("shop/users", target, 4, "not a cursor!"))
	refused("empty", planPath("shop/users", target, 4, "")+"&after=")
	refused("too long", planPath("shop/users", target, 4, strings.Repeat("A", 200)))
	refused("limit 0", planPath("shop/users", target, 0, "")+"&limit=0")
	refused("limit over the bound", planPath("shop/users", target, wire.MaxPlanSegments+1, ""))
	refused("limit not a number", planPath("shop/users", target, 0, "")+"&limit=-1")
	// A cursor with a correct check but at the plan's end, which no
	// server hands out.
	_, _, keys := f.whole(t, target)
	var snap repo.ID
	snap[0] = 0xaa
	n := uint64(len(keys))
	end := wire.PlanCursor{Index: n, Check: wire.PlanCursorCheck("shop/users", index.Target{Position: 250, ByPos: true}, snap, 1, n, keys[n-1].ID)}
	refused("a cursor at the end", planPath("shop/users", target, 4, end.String()))
	// The same cursor is good until the plan changes before it: a twin
	// of segment 1 appears, so every later segment moves one place.
	if code, _ := f.get(t, planPath("shop/users", target, 4, p.Next)); code != http.StatusOK {
		t.Fatalf("the cursor before the change: %d", code)
	}
	twin := f.keys[1]
	twin.ID[31] = 7
	f.srv.cat.addSegment(twin)
	refused("a plan changed since", planPath("shop/users", target, 4, p.Next))
	code, wp, want := f.whole(t, target)
	_, _, got := f.paged(t, target, 4)
	if code != http.StatusOK || !slices.Equal(got, want) || len(want) != len(keys)+1 {
		t.Fatalf("after the change: pages %d segments, whole %d (%d, %+v), before %d", len(got), len(want), code, wp.Base, len(keys))
	}
}

// TestCoverageAnswer: the coverage answer built from the cached JSON is
// byte for byte what encoding/json writes for wire.CoverageOf at the
// server's clock, and appendJSONFloat writes floats as encoding/json does.
func TestCoverageAnswer(t *testing.T) {
	f := newPagesFixture(t)
	code, body := f.get(t, "/v1/coverage?stream=shop/users")
	cov := f.srv.cat.streamCoverage("shop/users")
	want, err := json.Marshal(wire.CoverageOf(cov, f.srv.o.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || string(body) != string(want)+"\n" {
		t.Fatalf("%d\n%s\nwant\n%s", code, body, want)
	}
	if len(cov.Gaps) == 0 || len(cov.Uncertain) == 0 || len(cov.Windows) == 0 || cov.Newest.IsZero() {
		t.Fatalf("coverage %+v lacks a part: the test does not test it", cov)
	}
	// Another stream, with nothing: no newest, no lag.
	code, body = f.get(t, "/v1/coverage?stream=shop/none")
	want, _ = json.Marshal(wire.CoverageOf(f.srv.cat.streamCoverage("shop/none"), f.srv.o.Now()))
	if code != http.StatusOK || string(body) != string(want)+"\n" {
		t.Fatalf("empty stream: %d\n%s\nwant\n%s", code, body, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	floats := []float64{0, 1, -1, 1e-6, 9.99999e-7, 1e-7, 1e21, 1e20, 123456.789, -1e-9, 43200.345678, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 10000 {
		floats = append(floats, math.Float64frombits(r.Uint64()), r.Float64()*1e6, r.NormFloat64()*1e-8)
	}
	for _, x := range floats {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		want, _ := json.Marshal(x)
		if got := appendJSONFloat(nil, x); string(got) != string(want) {
			t.Fatalf("%v: wrote %s, encoding/json %s", x, got, want)
		}
	}
}
