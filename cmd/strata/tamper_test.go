package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// tamperProxy stands between the client and `strata serve` and rewrites
// what the server answers, as a compromised or buggy server would.
type tamperProxy struct {
	mu sync.Mutex
	// plan rewrites /v1/plan answers; snapshots rewrites /v1/snapshots
	// answers; object rewrites the bodies of object GETs by name.
	plan      func(*wire.Plan)
	snapshots func([]wire.Snapshot) []wire.Snapshot
	object    func(name string, body []byte) []byte
}

func (p *tamperProxy) start(t *testing.T, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		path := resp.Request.URL.Path
		var rewrite func([]byte) ([]byte, error)
		switch {
		case path == "/v1/plan" && p.plan != nil:
			rewrite = func(b []byte) ([]byte, error) {
				var wp wire.Plan
				if err := json.Unmarshal(b, &wp); err != nil {
					return nil, err
				}
				p.plan(&wp)
				return json.Marshal(wp)
			}
		case path == "/v1/snapshots" && p.snapshots != nil:
			rewrite = func(b []byte) ([]byte, error) {
				var s []wire.Snapshot
				if err := json.Unmarshal(b, &s); err != nil {
					return nil, err
				}
				return json.Marshal(p.snapshots(s))
			}
		case strings.HasPrefix(path, "/v1/objects/") && p.object != nil:
			name := strings.TrimPrefix(path, "/v1/objects/")
			rewrite = func(b []byte) ([]byte, error) { return p.object(name, b), nil }
		default:
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if b, err = rewrite(b); err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (p *tamperProxy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan, p.snapshots, p.object = nil, nil, nil
	f()
}

// TestTamperingServer: whatever a server between the client and the
// storage does to plans, listings and manifests, a restore is exact or
// refused; it never writes another state and exits 0.
func TestTamperingServer(t *testing.T) {
	local := newCLI(t)
	dir := local.vars["STRATA_REPO"]
	local.ok(nil, "init")
	tokens := filepath.Join(t.TempDir(), "tokens")
	tok := strings.TrimSpace(local.ok(nil, "token", "create", "--tokens", tokens, "--name", "ci", "--scope", "backup:shop/*,restore:shop/*,read"))
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port))
	var proxy tamperProxy
	ci := newCLI(t)
	ci.vars["STRATA_REPO"] = proxy.start(t, srv.url)
	ci.vars["STRATA_TOKEN"] = tok

	// Two snapshots (day 0 and day 1, each at its own position) with a
	// log of 300 events, one a minute, between and after them.
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	day0 := genNDJSON(2000, 3)
	old := strings.TrimSpace(ci.ok(day0, "backup", "--stream", "shop/users", "--format", "ndjson", "--time", t0.Format(time.RFC3339), "--position", "0", "--stdin"))
	var events bytes.Buffer
	for p := 1; p <= 300; p++ {
		fmt.Fprintf(&events, `{"seq":%d,"ts":%q,"op":"put","key":"%08x","doc":{"_id":"%08x","n":%d}}`+"\n",
			p, t0.Add(time.Duration(p)*time.Minute).Format(time.RFC3339), p*5, p*5, p)
	}
	ci.ok(events.Bytes(), "log", "--stream", "shop/users", "--stdin", "--segment-bytes", "2048")
	at150 := t0.Add(150 * time.Minute).Format(time.RFC3339)
	day1 := local.ok(nil, "restore", "--stream", "shop/users", "--at", at150)
	newer := strings.TrimSpace(ci.ok([]byte(day1), "backup", "--stream", "shop/users", "--format", "ndjson", "--time", at150, "--position", "150", "--stdin"))

	at := t0.Add(280*time.Minute + 30*time.Second).Format(time.RFC3339)
	want := local.ok(nil, "restore", "--stream", "shop/users", "--at", at)
	if got := ci.ok(nil, "restore", "--stream", "shop/users", "--at", at); got != want {
		t.Fatal("an honest server's plan restores another state than the storage")
	}
	var honest wire.Plan
	proxy.set(func() { proxy.plan = func(p *wire.Plan) { honest = *p } })
	ci.ok(nil, "restore", "--stream", "shop/users", "--at", at, "--dry-run")
	honestSegs, err := wire.DecodePlanLog(honest.Stream, honest.From, honest.Log)
	if err != nil {
		t.Fatal(err)
	}
	if len(honestSegs) < 3 {
		t.Fatalf("the plan has %d segments; the test needs several", len(honestSegs))
	}
	// segments rewrites the plan's segment keys and encodes them again.
	segments := func(edit func([]repo.SegmentKey) []repo.SegmentKey) func(*wire.Plan) {
		return func(p *wire.Plan) {
			segs, err := wire.DecodePlanLog(p.Stream, p.From, p.Log)
			if err != nil {
				t.Errorf("the honest server's plan log: %v", err)
				return
			}
			p.Log = wire.AppendPlanLog(nil, p.From, edit(segs))
		}
	}

	// refuse runs a restore through the tampering proxy and wants it refused.
	refuse := func(what string, args ...string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out.ndjson")
		code, _, stderr := ci.run(nil, append([]string{"restore", "--stream", "shop/users", "--to", out}, args...)...)
		if code == 0 {
			t.Fatalf("%s: the restore exited 0", what)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: the refused restore left %s", what, out)
		}
		t.Logf("%s: refused: %s", what, strings.TrimSpace(stderr))
	}
	proxy.set(func() {
		proxy.plan = segments(func(s []repo.SegmentKey) []repo.SegmentKey { return s[:len(s)-1] })
	})
	refuse("last segment dropped", "--at", at)
	proxy.set(func() { proxy.plan = segments(func([]repo.SegmentKey) []repo.SegmentKey { return nil }) })
	refuse("all segments dropped", "--at", at)
	proxy.set(func() {
		proxy.plan = segments(func(s []repo.SegmentKey) []repo.SegmentKey { return slices.Delete(s, 1, 2) })
	})
	refuse("a segment in the middle dropped", "--at", at)
	// The plan log's fields, each altered: a name the store does not hold,
	// or a manifest that does not say what its key says.
	for _, c := range []struct {
		what string
		edit func(*repo.SegmentKey)
	}{
		{"a segment's ID altered", func(k *repo.SegmentKey) { k.ID[0] ^= 1 }},
		{"a segment's last time moved past the target", func(k *repo.SegmentKey) { k.LastTime += int64(time.Hour) }},
		{"a segment marked time-uncertain", func(k *repo.SegmentKey) { k.Uncertain = true }},
	} {
		proxy.set(func() {
			proxy.plan = segments(func(s []repo.SegmentKey) []repo.SegmentKey { c.edit(&s[len(s)-1]); return s })
		})
		refuse(c.what, "--at", at)
	}
	proxy.set(func() { proxy.plan = func(p *wire.Plan) { p.Log = p.Log[:len(p.Log)-1] } })
	refuse("a truncated plan log", "--at", at)
	// An older base with a log that ends before the target: the honest plan
	// for an earlier instant, served for the later one.
	var earlier wire.Plan
	proxy.set(func() { proxy.plan = func(p *wire.Plan) { earlier = *p } })
	ci.ok(nil, "restore", "--stream", "shop/users", "--at", t0.Add(100*time.Minute+30*time.Second).Format(time.RFC3339), "--dry-run")
	if !strings.HasPrefix(old, earlier.Base.ID) || earlier.Base.ID == "" {
		t.Fatalf("the earlier plan's base is %s, want the older snapshot %s", earlier.Base.ID, old)
	}
	proxy.set(func() { proxy.plan = func(p *wire.Plan) { *p = earlier } })
	refuse("an older base with a log that ends before the target", "--at", at)

	// Latest: a listing in another order still restores the newest
	// snapshot; a newest manifest that fails verification is an error, never
	// a reason to restore the older one.
	proxy.set(func() { proxy.snapshots = func(s []wire.Snapshot) []wire.Snapshot { slices.Reverse(s); return s } })
	if got := ci.ok(nil, "restore", "--stream", "shop/users"); got != day1 {
		t.Fatal("a reordered listing changed which snapshot is the latest")
	}
	proxy.set(func() {
		proxy.object = func(name string, b []byte) []byte {
			if name == "snapshots/"+newer && len(b) > 10 {
				b = slices.Clone(b)
				b[len(b)/2] ^= 1
			}
			return b
		}
	})
	refuse("newest manifest altered")
}
