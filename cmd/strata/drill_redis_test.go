package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/ops"
)

// redisDrillStream captures a Redis stream: the capture's base, a
// workload, and a one-off backup as the second snapshot. lose makes the
// log lose an update: a script writes to the master without propagating
// it (redis.set_repl), so the log still decodes and chains but replaying
// it does not give the second snapshot's state. It returns the snapshots'
// times.
func redisDrillStream(t *testing.T, c *cli, src *redistest.Server, lose bool) []string {
	t.Helper()
	sc := src.Client(t)
	redisWrites(sc, "before", 10)
	capt := c.startCapture("--source", "redis://"+src.Addr, "--stream", "r", "--segment-interval", "200ms")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sc.Info("replication")["slave0"], "state=online") {
		if time.Now().After(deadline) {
			t.Fatalf("the capture never came online:\n%s", capt.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	redisWrites(sc, "a", 30)
	sc.Must("XADD", "events", "*", "kind", "signup")
	if lose {
		sc.Must("EVAL", "redis.set_repl(redis.REPL_NONE); return redis.call('SET', KEYS[1], ARGV[1])", 1, "counter", "-1")
	}
	sc.WaitReplicas(20 * time.Second)
	// The one-off backup gets its log position once the capture stores a
	// command after the RDB's offset.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			sc.Must("INCR", "tick")
		}
	}()
	out := c.ok(nil, "backup", "--source", "redis://"+src.Addr, "--stream", "r")
	done <- struct{}{}
	sc.WaitReplicas(20 * time.Second)
	time.Sleep(500 * time.Millisecond) // two segment intervals: the ticks are sealed
	capt.stop()
	if strings.Contains(capt.stderr.String(), "unproven") {
		t.Errorf("the capture's base is unproven:\n%s", capt.stderr.String())
	}
	var snaps []struct {
		Time     string  `json:"time"`
		Position *uint64 `json:"position"`
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--stream", "r", "--json")), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %+v (backup said %s)", err, snaps, out)
	}
	var times []string
	for i, s := range snaps {
		if s.Position == nil {
			t.Fatalf("snapshot %d has no position: %+v", i, s)
		}
		times = append(times, s.Time)
	}
	return times
}

// TestDrillRedis: a Redis stream drills green into the digesting sink at
// its first snapshot (its proof checked from the RDB; the replay only a
// server can apply is unproven there) and into a scratch instance, where
// the log is replayed to the second snapshot and read back; a stream
// whose log lost an update fails the scratch drill's replay proof with
// exit code 3.
func TestDrillRedis(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	c := newCLI(t)
	c.ok(nil, "init")
	times := redisDrillStream(t, c, src, false)

	out := c.ok(nil, "drill", "--stream", "r", "--at", times[0])
	for _, want := range []string{"state-proof: ok", "snapshot-proof: ok", "replay-proof: unproven"} {
		if !strings.Contains(out, want) {
			t.Errorf("sink drill of redis at the first snapshot: no %q\n%s", want, out)
		}
	}
	tgt := redistest.Start(t, redistest.Options{})
	var recs []ops.DrillRecord
	if err := json.Unmarshal([]byte(c.ok(nil, "drill", "--stream", "r", "--at", times[0], "--target", "redis://"+tgt.Addr, "--json")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !recs[0].OK {
		t.Fatalf("drill into a scratch instance: %+v", recs)
	}
	for _, name := range []string{"restore", "snapshot-proof", "replay-proof"} {
		if ck, ok := checkOf(recs[0], name); !ok || !ck.OK || ck.Unproven {
			t.Errorf("scratch drill: check %s: %+v (present %v)", name, ck, ok)
		}
	}
	// A restore of the newest snapshot reads its target back.
	dst := redistest.Start(t, redistest.Options{})
	_, _, errs := c.run(nil, "restore", "--stream", "r", "--at", times[1], "--target", "redis://"+dst.Addr)
	if !strings.Contains(errs, "verified: the target holds") {
		t.Errorf("restore does not say it verified the target:\n%s", errs)
	}

	c.ok(nil, "check", "--read-data")
	// A manifest whose recorded proof is wrong: check --read-data
	// recomputes it from the RDB and exits 3.
	ctx := context.Background()
	r, _ := c.repository()
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	newest, err := cat.Latest("r")
	if err != nil {
		t.Fatal(err)
	}
	bad := *newest.Snapshot
	pf, _ := bad.Proof()
	pf.Records++
	bad.SetProof(pf)
	if _, err := r.SaveSnapshot(ctx, &bad); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.run(nil, "check", "--read-data"); code != exitDamage || !strings.Contains(out+errs, "does not match its proof") {
		t.Fatalf("check --read-data of a wrong Redis proof: exit %d\n%s\n%s", code, out, errs)
	}

	lossy := redistest.Start(t, redistest.Options{})
	c2 := newCLI(t)
	c2.ok(nil, "init")
	times = redisDrillStream(t, c2, lossy, true)
	c2.ok(nil, "drill", "--stream", "r", "--at", times[0]) // the sink cannot replay: unproven, not failed
	tgt2 := redistest.Start(t, redistest.Options{})
	code, out, errs := c2.run(nil, "drill", "--stream", "r", "--at", times[0], "--target", "redis://"+tgt2.Addr)
	if code != exitDamage || !strings.Contains(out, "replay-proof: FAILED") {
		t.Fatalf("drill of a log that lost an update: exit %d, want %d\n%s\n%s", code, exitDamage, out, errs)
	}
}
