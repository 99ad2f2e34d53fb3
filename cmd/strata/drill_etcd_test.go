package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/ops"
)

// TestDrillEtcd: an etcd stream with a capture between two snapshots
// drills green into the digesting sink (snapshot and replay proofs
// checked without a cluster) and into a scratch cluster, whose record
// names the target without credentials.
func TestDrillEtcd(t *testing.T) {
	src := etcdtest.Start(t)
	sc := src.Client(t)
	c := newCLI(t)
	c.ok(nil, "init")
	for i := range 30 {
		etcdPut(t, sc, fmt.Sprintf("k/%02d", i), fmt.Sprintf("v%d", i))
	}
	c.ok(nil, "backup", "--source", src.URL, "--stream", "e")
	capt := c.startCapture("--source", src.URL, "--stream", "e", "--segment-interval", "200ms")
	for i := range 10 {
		etcdPut(t, sc, fmt.Sprintf("k/%02d", i), "changed", fmt.Sprintf("n/%d", i), "new")
	}
	if _, err := sc.Delete(t.Context(), "k/2", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	c.waitStored("e", src.Revision(t), capt.stderr.String)
	c.ok(nil, "backup", "--source", src.URL, "--stream", "e")
	etcdPut(t, sc, "after", "1")
	c.waitStored("e", src.Revision(t), capt.stderr.String)
	capt.stop()

	var snaps []struct {
		Time string `json:"time"`
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--stream", "e", "--json")), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %+v", err, snaps)
	}
	out := c.ok(nil, "drill", "--stream", "e", "--at", snaps[0].Time)
	for _, want := range []string{"state-proof: ok", "snapshot-proof: ok", "replay-proof: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("sink drill of etcd at the first snapshot: no %q\n%s", want, out)
		}
	}
	tgt := etcdtest.Start(t)
	var recs []ops.DrillRecord
	if err := json.Unmarshal([]byte(c.ok(nil, "drill", "--stream", "e", "--target", tgt.URL, "--json")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !recs[0].OK || recs[0].Target != tgt.URL || recs[0].RTOSeconds <= 0 {
		t.Fatalf("drill into a scratch cluster: %+v", recs)
	}
	if got, _ := tgt.Dump(t); len(got) != 30-10+10+1 {
		t.Errorf("the scratch cluster holds %d keys after the drill, want %d", len(got), 31)
	}
	// Again: the scratch cluster is not empty now, and only --force replaces it.
	if code, _, _ := c.run(nil, "drill", "--stream", "e", "--target", tgt.URL); code == 0 {
		t.Error("a drill into a non-empty scratch cluster without --force passed")
	}
	c.ok(nil, "drill", "--stream", "e", "--target", tgt.URL, "--force")
}
