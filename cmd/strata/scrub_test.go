package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/shard"
)

// scrubRepo is a repository (2+1) holding several packs; it returns their
// IDs in ascending order.
func scrubRepo(t *testing.T) (*cli, []repo.ID) {
	t.Helper()
	c := newCLI(t)
	c.ok(nil, "init", "--data-shards", "2", "--parity-shards", "1")
	for i := range 4 {
		c.ok(genNDJSON(5000, uint64(i)), "backup", "--stream", "s", "--format", "ndjson", "--stdin")
	}
	seen := map[repo.ID]bool{}
	var ids []repo.ID
	root := filepath.Join(c.vars["STRATA_REPO"])
	filepath.WalkDir(filepath.Join(root, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if id, _, err := repo.ParseShardName(filepath.ToSlash(rel)); err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return nil
	})
	if len(ids) < 4 {
		t.Fatalf("the repository has %d packs", len(ids))
	}
	// Packs with three shards (two data shards) first: a small pack has
	// one data shard (FORMAT.md §9), and losing two shards of it would
	// leave no trace of it for a keyless scrub to report.
	shards := func(id repo.ID) int {
		n := 0
		for i := range 3 {
			if _, err := os.Stat(shardFile(c, id, i)); err == nil {
				n++
			}
		}
		return n
	}
	slices.SortStableFunc(ids, func(a, b repo.ID) int { return shards(b) - shards(a) })
	if shards(ids[2]) != 3 {
		for _, id := range ids {
			t.Log(id.Short(), shards(id))
		}
		t.Fatal("the repository has fewer than three packs of three shards")
	}
	return c, ids
}

func shardFile(c *cli, id repo.ID, i int) string {
	return filepath.Join(c.vars["STRATA_REPO"], filepath.FromSlash(repo.ShardName(id, i)))
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	os.Chmod(name, 0o600)
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// check --read-data-subset 1/2 and 2/2 read every pack between them.
func TestCheckReadDataSubset(t *testing.T) {
	c, ids := scrubRepo(t)
	read := 0
	for _, sub := range []string{"1/2", "2/2"} {
		var j struct {
			Counts map[string]int `json:"counts"`
			OK     bool           `json:"ok"`
		}
		if err := json.Unmarshal([]byte(c.ok(nil, "check", "--read-data-subset", sub, "--json")), &j); err != nil {
			t.Fatal(err)
		}
		if !j.OK || j.Counts["packs"] != len(ids) {
			t.Fatalf("check --read-data-subset %s: %+v", sub, j)
		}
		read += j.Counts["packs_read"]
	}
	if read != len(ids) {
		t.Fatalf("1/2 and 2/2 read %d packs, the repository has %d", read, len(ids))
	}
	// Damage is found by the slice that holds it, and only by that one.
	name := shardFile(c, ids[0], 0)
	b, _ := os.ReadFile(name)
	b[shard.HeaderSize+1] ^= 1
	writeFile(t, name, b)
	found := 0
	for _, sub := range []string{"1/2", "2/2"} {
		code, out, _ := c.run(nil, "check", "--read-data-subset", sub)
		switch {
		case code == exitDamage && strings.Contains(out, "pack "+ids[0].Short()):
			found++
		case code != 0:
			t.Fatalf("check --read-data-subset %s: exit %d\n%s", sub, code, out)
		}
	}
	if found != 1 {
		t.Fatalf("the damaged shard was found by %d slices, want 1", found)
	}
	for _, bad := range [][]string{{"--read-data-subset", "3/2"}, {"--read-data-subset", "0%"}, {"--read-data-subset", "1/2", "--read-data"}} {
		if code, _, _ := c.run(nil, append([]string{"check"}, bad...)...); code != exitUsage {
			t.Fatalf("check %q: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

// scrub repairs what parity allows (exit 0) and exits 3 when damage
// remains.
func TestScrubExitCodes(t *testing.T) {
	c, ids := scrubRepo(t)
	name := shardFile(c, ids[1], 1) // a pack has at least two shards here: k ≥ 1, m = 1
	good, _ := os.ReadFile(name)
	bad := append([]byte(nil), good...)
	bad[len(bad)-5] ^= 0x10
	writeFile(t, name, bad)

	type scrubOut struct {
		Record struct {
			PacksRead  int    `json:"packs_read"`
			BadShards  int    `json:"bad_shards"`
			Repaired   int    `json:"repaired"`
			Unrepaired int    `json:"unrepaired"`
			Next       string `json:"next"`
			Keyed      bool   `json:"keyed"`
		} `json:"record"`
		Packs    int      `json:"packs"`
		Repaired []string `json:"repaired"`
		Problems []string `json:"problems"`
		OK       bool     `json:"ok"`
	}
	// A first pass reads a day's share: with a day's cycle, everything.
	var j scrubOut
	if err := json.Unmarshal([]byte(c.ok(nil, "scrub", "--cycle", "1d", "--limit-read", "100", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if r := j.Record; !j.OK || !r.Keyed || j.Packs != len(ids) || r.PacksRead != len(ids) || r.BadShards != 1 || r.Repaired != 1 || r.Unrepaired != 0 || r.Next != "" || len(j.Repaired) != 1 {
		t.Fatalf("scrub: %+v", j)
	}
	if now, _ := os.ReadFile(name); string(now) != string(good) {
		t.Fatal("scrub did not rebuild the damaged shard")
	}

	// Two shards of a pack with one parity shard gone: beyond parity.
	os.Remove(shardFile(c, ids[2], 0))
	os.Remove(shardFile(c, ids[2], 1))
	code, out, errs := c.run(nil, "scrub", "--cycle", "1d")
	if code != exitDamage || !strings.Contains(out, "NOT recoverable") {
		t.Fatalf("scrub beyond parity: exit %d, want %d\n%s%s", code, exitDamage, out, errs)
	}
	for _, bad := range [][]string{{"--limit-read", "-1"}, {"--cycle", "0d"}, {"--cycle", "soon"}, {"extra"}} {
		if code, _, _ := c.run(nil, append([]string{"scrub"}, bad...)...); code != exitUsage {
			t.Fatalf("scrub %q: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

// serve --scrub-every heals a damaged shard on schedule, without the key,
// and says so in its scrub records, its metrics and the audit trail;
// damage beyond parity stays in all three.
func TestServeScrubHealsShard(t *testing.T) {
	c, ids := scrubRepo(t)
	dir := c.vars["STRATA_REPO"]
	tokens := filepath.Join(t.TempDir(), "tokens")
	admin := strings.TrimSpace(c.ok(nil, "token", "create", "--tokens", tokens, "--name", "admin", "--scope", "admin"))
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Every pass reads the whole repository: its interval is the cycle.
	srv := startServe(t, dir, tokens, fmt.Sprintf("127.0.0.1:%d", port), "--scrub-every", "200ms", "--scrub-cycle", "200ms")

	healed := shardFile(c, ids[0], 1)
	good, _ := os.ReadFile(healed)
	bad := append([]byte(nil), good...)
	bad[shard.HeaderSize+10] ^= 0x01
	writeFile(t, healed, bad)
	// Two shards gone, with one parity shard: beyond parity.
	os.Remove(shardFile(c, ids[1], 0))
	os.Remove(shardFile(c, ids[1], 1))

	deadline := time.Now().Add(20 * time.Second)
	for {
		if now, _ := os.ReadFile(healed); bytes.Equal(now, good) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the damaged shard was not rebuilt:\n%s", srv.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(shardFile(c, ids[1], 0)); err == nil {
		t.Fatal("a pack beyond parity was \"repaired\"")
	}

	// The records: keyless, one that rebuilt the shard, and the newest
	// still reporting the pack it cannot repair.
	st, err := local.OpenExisting(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sawRepair bool
	var newest *ops.ScrubRecord
	deadline = time.Now().Add(10 * time.Second)
	for newest == nil || newest.Unrepaired != 2 || !sawRepair {
		if time.Now().After(deadline) {
			t.Fatalf("scrub records: repair seen %v, newest %+v", sawRepair, newest)
		}
		st.List(t.Context(), repo.ScrubPrefix, func(oi repo.ObjectInfo) error {
			b, err := st.Get(t.Context(), oi.Name)
			if err != nil {
				return err
			}
			r, err := ops.DecodeScrub(oi.Name, b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Keyed || r.PacksRead != len(ids) {
				t.Fatalf("record %s: %+v", oi.Name, r)
			}
			sawRepair = sawRepair || r.Repaired == 1 && r.BadShards == 3
			newest = r
			return nil
		})
		time.Sleep(50 * time.Millisecond)
	}

	// The metrics.
	req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`strata_scrub_unrepaired_shards{keyed="false"} 2`, "strata_scrub_repaired_shards_total 1\n", `strata_scrub_last_timestamp_seconds{keyed="false"}`, `strata_scrub_passes_total{result="ok"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "strata_scrub"))
		}
	}

	// The audit trail, straight from the storage once the server stopped.
	srv.stop(t)
	audit := c.ok(nil, "audit")
	for _, want := range []string{"scrub", "1 rebuilt from parity", "NOT recoverable"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q:\n%s", want, audit)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
