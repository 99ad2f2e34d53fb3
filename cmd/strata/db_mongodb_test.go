package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/source/mongodb"
)

// mongoState is every document of db's collections, by collection, as
// canonical Extended JSON in _id order: types and field order included.
func mongoState(t *testing.T, cli *mongo.Client, db string) string {
	t.Helper()
	names, err := cli.Database(db).ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range sortedStrings(names) {
		cur, err := cli.Database(db).Collection(n).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:\n", n)
		for cur.Next(t.Context()) {
			j, err := bson.MarshalExtJSON(cur.Current, true, false)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(j)
			b.WriteByte('\n')
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		cur.Close(t.Context())
	}
	return b.String()
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// mongoWrites runs a small mixed workload: counters catch an entry applied
// twice or lost.
func mongoWrites(t *testing.T, db *mongo.Database, tag string, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		c := db.Collection(fmt.Sprintf("c%d", i%3))
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: tag + fmt.Sprint(i)}, {Key: "i", Value: int32(i)}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Unix(int64(i), 0))}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection("counters").UpdateOne(ctx, bson.D{{Key: "_id", Value: "n"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: int64(1)}}}, {Key: "$push", Value: bson.D{{Key: "tags", Value: tag}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: tag + fmt.Sprint(i-2)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestMongoCLIKilledCapture runs strata log --source mongodb:// as a real
// process, kills it with SIGKILL mid-stream and restarts it: the log stays
// one window (no gap, no overlap), re-read entries keep their own times,
// and restores at instants before and after the kill equal the source.
func TestMongoCLIKilledCapture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	src := mongotest.Start(t, mongotest.Options{})
	tgt := mongotest.Start(t, mongotest.Options{})
	db := src.Client.Database("app")
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	c := newCLI(t)
	c.ok(nil, "init")
	env := append(os.Environ(), "STRATA_PASSWORD="+c.vars["STRATA_PASSWORD"], "STRATA_REPO="+c.vars["STRATA_REPO"])
	source := src.URI + "app"
	startLog := func() (*exec.Cmd, *testenv.SyncBuffer) {
		cmd := exec.Command(bin, "log", "--source", source, "--stream", "m", "--segment-interval", "200ms")
		errb := &testenv.SyncBuffer{}
		cmd.Env, cmd.Stderr = env, errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, errb
	}
	waitFor := func(errb *testenv.SyncBuffer, what string) {
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errb.String(), what); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q from the capture in 30 s:\n%s", what, errb)
			}
		}
	}
	mongoWrites(t, db, "seed", 10)
	type instant struct{ at, state string }
	mark := func() instant {
		_, at, err := mongodb.LastTimestamp(t.Context(), src.Client)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		return instant{at.Format(time.RFC3339Nano), mongoState(t, src.Client, "app")}
	}
	// waitStored waits until a restore at the newest entry's time is
	// possible: the capture has sealed it.
	waitStored := func(in instant, errb *testenv.SyncBuffer) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, _ := c.run(nil, "restore", "--stream", "m", "--at", in.at, "--target", tgt.URI+"probe", "--dry-run")
			if code == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("entries up to %s not stored in 30 s\n%s", in.at, errb)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	cmd, errb := startLog()
	waitFor(errb, "new base snapshot")
	mongoWrites(t, db, "a", 30)
	in1 := mark()
	waitStored(in1, errb)
	mongoWrites(t, db, "b", 30)
	time.Sleep(300 * time.Millisecond) // some of b sealed, the rest only read
	mongoWrites(t, db, "c", 20)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	mongoWrites(t, db, "d", 20) // while no capture runs: the oplog keeps it

	cmd, errb = startLog()
	waitFor(errb, "continues at position")
	mongoWrites(t, db, "e", 20)
	in2 := mark()
	waitStored(in2, errb)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("log after SIGTERM: %v\n%s", err, errb)
	}
	if !strings.Contains(errb.String(), "continues at position") || strings.Contains(errb.String(), "GAP") {
		t.Fatalf("restarted capture's messages:\n%s", errb)
	}
	var cov struct {
		Windows []struct {
			FromPos uint64 `json:"from_position"`
		}
		Gaps []any
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "m", "--json")), &cov); err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || cov.Windows[0].FromPos != 0 {
		t.Fatalf("coverage after a killed capture: %+v", cov)
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check: %s", o)
	}
	// The base records a proof: a drill at its instant proves the state,
	// and one at the newest instant computes it over the log.
	var snaps []struct {
		Time string `json:"time"`
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "snapshots", "--stream", "m", "--json")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %+v", err, snaps)
	}
	out := c.ok(nil, "drill", "--stream", "m", "--at", snaps[0].Time)
	for _, want := range []string{"state-proof: ok", "snapshot-proof: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("drill of the base: no %q\n%s", want, out)
		}
	}
	if out := c.ok(nil, "drill", "--stream", "m"); !strings.Contains(out, "snapshot-proof: ok") {
		t.Errorf("drill at the newest instant:\n%s", out)
	}
	for i, in := range []instant{in1, in2} {
		name := fmt.Sprintf("r%d", i)
		code, _, errs := c.run(nil, "restore", "--stream", "m", "--at", in.at, "--target", tgt.URI+name)
		if code != 0 || !strings.Contains(errs, "verified: the target holds") {
			t.Errorf("restore at %s does not say it verified the target:\n%s", in.at, errs)
		}
		if got := mongoState(t, tgt.Client, name); got != in.state {
			t.Fatalf("restore at %s:\n got %s\nwant %s", in.at, got, in.state)
		}
	}
	// A collection restore; a busy target is refused without --force.
	c.ok(nil, "restore", "--stream", "m", "--at", in2.at, "--target", tgt.URI+"one", "--collections", "counters")
	if got, want := mongoState(t, tgt.Client, "one"), "counters:\n"+strings.SplitN(strings.SplitN(in2.state, "counters:\n", 2)[1], "\n", 2)[0]+"\n"; got != want {
		t.Fatalf("collection restore:\n got %s\nwant %s", got, want)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "m", "--at", in2.at, "--target", tgt.URI+"one", "--collections", "counters"); code == 0 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "--force") {
		t.Fatalf("non-empty target: exit %d %s", code, errs)
	}
	c.ok(nil, "restore", "--stream", "m", "--at", in2.at, "--target", tgt.URI+"r0", "--force")
	if got := mongoState(t, tgt.Client, "r0"); got != in2.state {
		t.Fatalf("forced restore:\n got %s\nwant %s", got, in2.state)
	}
}

// TestMongoCLIBadSources: an unreachable server and refused credentials
// fail clearly, naming the URL without its password.
func TestMongoCLIBadSources(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	c := newCLI(t)
	c.ok(nil, "init")
	dead := mongotest.Start(t, mongotest.Options{})
	dead.Stop()
	cases := []struct {
		args []string
		pw   string
		want string
	}{
		{[]string{"backup", "--stream", "m", "--source", dead.URI + "app?serverSelectionTimeoutMS=500"}, "", "mongodb unreachable"},
		{[]string{"log", "--stream", "m", "--source", dead.URI + "app?serverSelectionTimeoutMS=500"}, "", "mongodb unreachable"},
		{[]string{"backup", "--stream", "m", "--source", "mongodb://backup:Hunter2-wrong@" + src.Addr + "/app"}, "", "refused the credentials"},
		{[]string{"backup", "--stream", "m", "--source", "mongodb://backup@" + src.Addr + "/app"}, "Hunter2-wrong", "refused the credentials"},
		{[]string{"backup", "--stream", "m", "--source", "mongodb://backup@" + src.Addr + "/app"}, "", "no password"},
		{[]string{"backup", "--stream", "m", "--source", "mongodb://" + src.Addr + "/?collections=a"}, "", "needs a database"},
		{[]string{"restore", "--stream", "m", "--target", "etcd://" + src.Addr, "--collections", "a"}, "", "only a mongodb:// target"},
	}
	for _, tc := range cases {
		c.vars["STRATA_SOURCE_PASSWORD"] = tc.pw
		code, _, errs := c.run(nil, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "Hunter2") {
			t.Errorf("strata %v: exit %d, %q (want %q, no password)", tc.args, code, errs, tc.want)
		}
	}
}

// TestMongoCLIOplogTimestamp: restore --at-position T:I restores the state
// after every oplog entry at or before T:I, --dry-run names the position it
// maps to, and a timestamp the capture has not reached is refused (exit 7).
func TestMongoCLIOplogTimestamp(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	tgt := mongotest.Start(t, mongotest.Options{})
	c := newCLI(t)
	c.ok(nil, "init")
	items := src.Client.Database("app").Collection("items")
	write := func(id int, v string) mongodb.Timestamp {
		t.Helper()
		if _, err := items.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: int32(id)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: v}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
			t.Fatal(err)
		}
		ts, _, err := mongodb.LastTimestamp(t.Context(), src.Client)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	write(0, "seed")
	capt := c.startCapture("--source", src.URI+"app", "--stream", "m", "--segment-interval", "200ms")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(capt.stderr.String(), "new base snapshot"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no base in 30 s:\n%s", capt.stderr)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	first := write(1, "one")
	want := mongoState(t, src.Client, "app")
	time.Sleep(1100 * time.Millisecond)
	second := write(1, "two")
	secondAt := fmt.Sprintf("%d:%d", second.T, second.I)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _, _ := c.run(nil, "restore", "--stream", "m", "--at-position", secondAt, "--target", tgt.URI+"probe", "--dry-run"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %s not stored in 30 s:\n%s", secondAt, capt.stderr)
		}
	}
	capt.stop()
	between := fmt.Sprintf("Timestamp({t: %d, i: %d})", first.T, first.I+1)
	out := c.ok(nil, "restore", "--stream", "m", "--at-position", between, "--target", tgt.URI+"probe", "--dry-run")
	if !strings.Contains(out, "--at-position "+between+": position ") {
		t.Fatalf("dry run names no position:\n%s", out)
	}
	c.ok(nil, "restore", "--stream", "m", "--at-position", between, "--target", tgt.URI+"r")
	if got := mongoState(t, tgt.Client, "r"); got != want {
		t.Fatalf("restore at %s:\n got %s\nwant %s", between, got, want)
	}
	beyond := fmt.Sprintf("%d:0", second.T+60)
	if code, _, errs := c.run(nil, "restore", "--stream", "m", "--at-position", beyond, "--target", tgt.URI+"r2"); code != 7 || !strings.Contains(errs, "has not reached it") {
		t.Fatalf("restore beyond the log: exit %d %s", code, errs)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "m", "--at-position", beyond, "--to", filepath.Join(t.TempDir(), "x")); code != 2 || !strings.Contains(errs, "non-negative integer") {
		t.Fatalf("oplog timestamp without a target: exit %d %s", code, errs)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "m", "--at-position", beyond, "--target", "etcd://127.0.0.1:1"); code != 2 || !strings.Contains(errs, "mongodb://") {
		t.Fatalf("oplog timestamp with an etcd target: exit %d %s", code, errs)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "m", "--at-position", "soon", "--target", tgt.URI+"r3"); code != 2 || !strings.Contains(errs, "non-negative integer") {
		t.Fatalf("--at-position soon: exit %d %s", code, errs)
	}
}
