package server_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/shard"
)

// packsOf returns the packs in the store, in ID order.
func packsOf(t *testing.T, st repo.Store) []repo.ID {
	t.Helper()
	seen := map[repo.ID]bool{}
	var ids []repo.ID
	st.List(t.Context(), repo.DataPrefix, func(oi repo.ObjectInfo) error {
		if id, _, err := repo.ParseShardName(oi.Name); err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

// The keyless scrub rebuilds what parity allows, leaves the rest reported,
// keeps its position, and tells an upload in progress from loss.
func TestKeylessScrub(t *testing.T) {
	f := newFixture(t)
	r := f.open("admin")
	for i := range 4 {
		if _, err := f.backup(r, "shop/a", f.clock.Now().Add(-time.Hour), uint64(i), randomExport(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	ids := packsOf(t, f.st)
	if len(ids) < 4 {
		t.Fatalf("%d packs", len(ids))
	}
	day := 24 * time.Hour
	damaged := repo.ShardName(ids[0], 2)
	good, _ := f.st.Get(ctx, damaged)
	bad := append([]byte(nil), good...)
	bad[shard.HeaderSize] ^= 0x80
	f.st.Put(ctx, damaged, bad)
	f.st.Delete(ctx, repo.ShardName(ids[1], 0))
	f.st.Delete(ctx, repo.ShardName(ids[1], 1))

	// A pass whose interval is the cycle reads every pack.
	res, err := f.srv.ScrubOnce(ctx, day, day)
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Record
	if rec.Keyed || rec.PacksRead != len(ids) || rec.BadShards != 3 || rec.Repaired != 1 || rec.Unrepaired != 2 || rec.Next != "" || len(res.Problems) != 1 || rec.Error == "" {
		t.Fatalf("record %+v, problems %q", rec, res.Problems)
	}
	if now, _ := f.st.Get(ctx, damaged); string(now) != string(good) {
		t.Fatal("the damaged shard was not rebuilt")
	}
	if !strings.Contains(res.Problems[0], ids[1].Short()) {
		t.Fatalf("problem %q does not name pack %s", res.Problems[0], ids[1].Short())
	}
	if stored, err := ops.LatestScrub(ctx, f.st, false); err != nil || stored == nil || stored.Repaired != 1 {
		t.Fatalf("stored record %+v, %v", stored, err)
	}

	// Half a cycle later, half the packs, from the first.
	f.clock.Set(f.clock.Now().Add(day / 2))
	res, err = f.srv.ScrubOnce(ctx, day, day)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(ids) + 1) / 2; res.Record.PacksRead != want || res.Record.Next != ids[want].String() {
		t.Fatalf("half a cycle: %+v, want %d packs", res.Record, want)
	}

	// A pack a prune has marked is being deleted: it is neither read nor
	// rebuilt.
	f.st.Delete(ctx, repo.ShardName(ids[2], 0))
	marks := fmt.Sprintf(`{"version":1,"created":"2026-11-01T00:00:00Z","packs":[{"id":%q,"marked":"2026-11-01T00:00:00Z"}]}`, ids[2])
	f.st.Put(ctx, repo.PruneMarksName(1), []byte(marks))
	for range 2 { // the end of the half-read cycle, then a whole one
		f.clock.Set(f.clock.Now().Add(day))
		if res, err = f.srv.ScrubOnce(ctx, day, day); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.Stat(ctx, repo.ShardName(ids[2], 0)); err == nil || res.Record.PacksRead != len(ids)-1 || res.Record.BadShards != 2 {
		t.Fatalf("a marked pack: rebuilt %v, record %+v", err == nil, res.Record)
	}

	// The metrics show the newest pass; the counters all of them.
	code, body := f.raw("reader", "GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{"strata_scrub_repaired_shards_total 1\n", `strata_scrub_passes_total{result="ok"} 4`, `strata_scrub_last_timestamp_seconds{keyed="false"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A restarted server reports the newest pass before it from its record.
	f.restart()
	_, body = f.raw("reader", "GET", "/metrics", nil, nil)
	want := fmt.Sprintf(`strata_scrub_last_timestamp_seconds{keyed="false"} %g`, float64(res.Record.Time.Unix()))
	if !strings.Contains(body, want) || !strings.Contains(body, `strata_scrub_unrepaired_shards{keyed="false"} 2`) {
		t.Errorf("metrics after a restart lack %s", want)
	}
}

// Scrub records through the server: admin writes, read reads, the gauges
// follow a keyed scrub run through the server.
func TestScrubRecordScopes(t *testing.T) {
	f := newFixture(t)
	rec, _ := json.Marshal(ops.ScrubRecord{Time: f.clock.Now(), Keyed: true, BadShards: 4, Repaired: 3, Unrepaired: 1})
	name := "/v1/objects/" + repo.ScrubName(f.clock.Now().UnixNano())
	for _, who := range []string{"reader", "backupAll", "ops"} {
		if code, _ := f.raw(who, "PUT", name, strings.NewReader(string(rec)), nil); code != http.StatusForbidden {
			t.Fatalf("%s wrote a scrub record: %d", who, code)
		}
	}
	if code, _ := f.raw("admin", "PUT", "/v1/objects/"+repo.ScrubName(2), strings.NewReader(`{"time":"nonsense"}`), nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("a bad scrub record: %d", code)
	}
	if code, body := f.raw("admin", "PUT", name, strings.NewReader(string(rec)), nil); code != http.StatusCreated {
		t.Fatalf("admin: %d %s", code, body)
	}
	if code, body := f.raw("reader", "GET", name, nil, nil); code != 200 || body != string(rec) {
		t.Fatalf("reader: %d %s", code, body)
	}
	if code, _ := f.raw("shopBackup", "GET", name, nil, nil); code != http.StatusForbidden {
		t.Fatalf("a backup token read a scrub record: %d", code)
	}
	_, body := f.raw("reader", "GET", "/metrics", nil, nil)
	if !strings.Contains(body, `strata_scrub_unrepaired_shards{keyed="true"} 1`) {
		t.Fatalf("metrics after an uploaded record:\n%s", body)
	}

	// A keyed scrub through the server, as admin.
	r := f.open("admin")
	if _, err := f.backup(r, "shop/a", f.clock.Now().Add(-time.Hour), 0, randomExport(9)); err != nil {
		t.Fatal(err)
	}
	res, err := engine.Scrub(t.Context(), r, engine.ScrubOptions{Now: func() time.Time { return f.clock.Now().Add(time.Hour) }})
	if err != nil || !res.Record.Keyed || res.Record.PacksRead == 0 {
		t.Fatalf("keyed scrub through the server: %+v %v", res, err)
	}
	_, body = f.raw("reader", "GET", "/metrics", nil, nil)
	if !strings.Contains(body, `strata_scrub_unrepaired_shards{keyed="true"} 0`) {
		t.Fatalf("metrics after a keyed scrub:\n%s", body)
	}
}

// randomExport is an incompressible export of 200 KB, different for each i.
func randomExport(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	b := make([]byte, 200<<10)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}
