package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/internal/tcpproxy"
	"github.com/strata-backup/strata/internal/testenv"
)

// etcdCapture runs `strata log --source` in-process until stop is called.
type etcdCapture struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	stderr *testenv.SyncBuffer
}

func (c *cli) startCapture(args ...string) *etcdCapture {
	ctx, cancel := context.WithCancel(context.Background())
	ec := &etcdCapture{cancel: cancel, done: make(chan struct{}), stderr: &testenv.SyncBuffer{}}
	env := &environment{getenv: func(k string) string { return c.vars[k] }, stdin: bytes.NewReader(nil),
		stdout: &testenv.SyncBuffer{}, stderr: ec.stderr, host: "testhost", user: "tester"}
	go func() {
		defer close(ec.done)
		ec.code = run(ctx, append([]string{"log"}, args...), env)
	}()
	c.t.Cleanup(ec.stop)
	return ec
}

// stop ends the capture as SIGTERM would and waits for it.
func (ec *etcdCapture) stop() {
	ec.cancel()
	<-ec.done
}

// etcdCoverage is what the etcd tests read of `strata coverage --json`.
type etcdCoverage struct {
	Windows []struct {
		ToPos uint64 `json:"to_position"`
	} `json:"windows"`
	Gaps []struct {
		FromPos uint64 `json:"from_position"`
		ToPos   uint64 `json:"to_position"`
	} `json:"gaps"`
	Conflicts []string `json:"conflicts"`
}

// coverage returns the stream's coverage as `strata coverage --json` prints it.
func (c *cli) coverage(stream string) etcdCoverage {
	c.t.Helper()
	var cov etcdCoverage
	// Exit 7 is a stream with nothing restorable yet (a capture still taking
	// its base); the JSON is printed all the same.
	code, out, stderr := c.run(nil, "coverage", "--stream", stream, "--json")
	if code != 0 && code != exitNotRestorable {
		c.t.Fatalf("strata coverage --stream %s --json: exit %d: %s", stream, code, stderr)
	}
	if err := json.Unmarshal([]byte(out), &cov); err != nil {
		c.t.Fatal(err)
	}
	return cov
}

// waitStored waits until the stream's log holds revision rev.
func (c *cli) waitStored(stream string, rev int64, why func() string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cov := c.coverage(stream)
		if n := len(cov.Windows); n > 0 && int64(cov.Windows[n-1].ToPos) >= rev {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the capture did not store revision %d within 20 s: coverage %+v\n%s", rev, cov, why())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func etcdPut(t *testing.T, cli *clientv3.Client, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if _, err := cli.Put(t.Context(), kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

func sameKeys(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: key %q = %.60q (present %v), want %.60q", what, k, g, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra key %q = %.60q", what, k, v)
		}
	}
	t.Fatalf("%s: %d keys, want %d", what, len(got), len(want))
}

type etcdInstant struct {
	at    time.Time
	rev   int64
	state map[string]string
}

// TestEtcdCaptureRestore captures a workload of puts, deletes, a prefix
// delete, transactions, a lease-bound key and a cut connection, then
// restores at several instants and revisions into fresh clusters and
// compares every key and value with what the source held then.
func TestEtcdCaptureRestore(t *testing.T) {
	src := etcdtest.Start(t)
	sc := src.Client(t)
	c := newCLI(t)
	c.ok(nil, "init")
	for i := range 20 {
		etcdPut(t, sc, fmt.Sprintf("a/%d", i), fmt.Sprintf("v%d", i))
	}
	c.ok(nil, "backup", "--source", src.URL, "--stream", "e")

	// The capture reaches etcd through a proxy, to cut its connection.
	px, err := tcpproxy.Start(src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	capt := c.startCapture("--source", "etcd://"+px.Addr(), "--stream", "e", "--segment-interval", "200ms")

	var instants []etcdInstant
	mark := func() {
		t.Helper()
		rev := src.Revision(t)
		c.waitStored("e", rev, capt.stderr.String)
		at := time.Now()
		time.Sleep(5 * time.Millisecond)
		state, _ := src.Dump(t)
		instants = append(instants, etcdInstant{at, rev, state})
	}
	mark() // the base alone

	// Puts and overwrites.
	for i := range 15 {
		etcdPut(t, sc, fmt.Sprintf("a/%d", i), fmt.Sprintf("w%d", i), fmt.Sprintf("b/%d", i), strings.Repeat("b", i*100))
	}
	mark()

	// Deletes: one key, then a prefix (a/1, a/10..a/19) in one revision.
	ctx := t.Context()
	if _, err := sc.Delete(ctx, "a/0"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Delete(ctx, "a/1", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if n := px.CutAll(); n == 0 {
		t.Fatal("the capture had no connection through the proxy to cut")
	}
	etcdPut(t, sc, "after-cut", "1")
	mark()

	// A transaction taking its Then branch (puts and deletes), one taking
	// its Else branch, and a lease-bound key.
	resp, err := sc.Txn(ctx).If(clientv3.Compare(clientv3.Value("b/0"), "=", "")).
		Then(clientv3.OpPut("t/1", "x"), clientv3.OpPut("t/2", "y"), clientv3.OpDelete("b/1"), clientv3.OpDelete("a/", clientv3.WithPrefix())).
		Else(clientv3.OpPut("t/else", "wrong")).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("txn: %v, succeeded %v", err, resp != nil && resp.Succeeded)
	}
	if resp, err := sc.Txn(ctx).If(clientv3.Compare(clientv3.Version("t/1"), ">", 5)).
		Then(clientv3.OpPut("t/then", "wrong")).
		Else(clientv3.OpPut("t/else", "e1"), clientv3.OpPut("t/1", "x2"), clientv3.OpDelete("t/2")).Commit(); err != nil || resp.Succeeded {
		t.Fatalf("txn: %v", err)
	}
	lease, err := sc.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Put(ctx, "leased", "l", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	mark()
	etcdPut(t, sc, "t/1", "x3", "z", "last")
	mark()
	// A time restores only up to the newest captured event: one more
	// write makes the last instant restorable by time.
	etcdPut(t, sc, "after-last", "1")
	c.waitStored("e", src.Revision(t), capt.stderr.String)
	capt.stop()
	if capt.code != 0 {
		t.Fatalf("capture exit %d\n%s", capt.code, capt.stderr)
	}
	if !strings.Contains(capt.stderr.String(), "interrupted") {
		t.Logf("capture log (the cut was absorbed by the client's own retry):\n%s", capt.stderr)
	}
	if cov := c.coverage("e"); len(cov.Gaps) != 0 || len(cov.Windows) != 1 {
		t.Fatalf("coverage after the workload: %+v", cov)
	}

	// The first restore goes into a fresh cluster; the rest reuse it with
	// --force, which must delete what the previous restore left.
	tgt := etcdtest.Start(t)
	for i, in := range instants {
		args := []string{"restore", "--stream", "e", "--target", tgt.URL, "--at", in.at.Format(time.RFC3339Nano)}
		if i > 0 {
			args = append(args, "--force")
		}
		c.ok(nil, args...)
		got, _ := tgt.Dump(t)
		sameKeys(t, fmt.Sprintf("restore at instant %d (%s)", i, in.at.Format(time.RFC3339Nano)), got, in.state)

		c.ok(nil, "restore", "--stream", "e", "--target", tgt.URL, "--at-position", strconv.FormatInt(in.rev, 10), "--force")
		got, _ = tgt.Dump(t)
		sameKeys(t, fmt.Sprintf("restore at revision %d", in.rev), got, in.state)
	}

	// Without --force a non-empty target is refused and left alone.
	code, _, errs := c.run(nil, "restore", "--stream", "e", "--target", tgt.URL, "--at-position", strconv.FormatInt(instants[0].rev, 10))
	if code == 0 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "--force") {
		t.Fatalf("restore into a non-empty target: exit %d\n%s", code, errs)
	}
	if got, _ := tgt.Dump(t); !maps.Equal(got, instants[len(instants)-1].state) {
		t.Fatal("a refused restore changed the target")
	}
	out := c.ok(nil, "restore", "--stream", "e", "--target", tgt.URL, "--at-position", strconv.FormatInt(instants[2].rev, 10), "--dry-run")
	if !strings.Contains(out, "base snapshot") || !strings.Contains(out, "refused without --force") {
		t.Fatalf("dry run:\n%s", out)
	}
	// Past the newest captured revision: refused, nothing written.
	code, _, errs = c.run(nil, "restore", "--stream", "e", "--target", tgt.URL, "--force", "--at-position", strconv.FormatInt(instants[len(instants)-1].rev+50, 10))
	if code == 0 || !strings.Contains(errs, "not restorable") {
		t.Fatalf("restore past the log: exit %d\n%s", code, errs)
	}
}

// TestEtcdCompactionGap: the capture stops, the cluster compacts past what
// it stored, and the restarted capture records a gap and takes a new base;
// restores on both sides of the gap are exact, inside it refused.
func TestEtcdCompactionGap(t *testing.T) {
	src := etcdtest.Start(t)
	sc := src.Client(t)
	c := newCLI(t)
	c.ok(nil, "init")
	etcdPut(t, sc, "k1", "1", "k2", "2")
	capt := c.startCapture("--source", src.URL, "--stream", "g", "--segment-interval", "200ms")
	// Writes after the base, so the log holds revisions before the gap.
	c.waitStored("g", src.Revision(t), capt.stderr.String)
	etcdPut(t, sc, "k1", "1b", "k3", "3")
	rev1 := src.Revision(t)
	c.waitStored("g", rev1, capt.stderr.String)
	before, _ := src.Dump(t)
	capt.stop()
	if !strings.Contains(capt.stderr.String(), "new base snapshot") {
		t.Fatalf("the first capture took no base:\n%s", capt.stderr)
	}
	if cov := c.coverage("g"); len(cov.Windows) != 1 || int64(cov.Windows[0].ToPos) != rev1 {
		t.Fatalf("coverage before the compaction: %+v", cov)
	}

	for i := range 10 {
		etcdPut(t, sc, fmt.Sprintf("lost/%d", i), "x")
	}
	rev2 := src.Revision(t)
	src.Compact(t, rev2)

	capt = c.startCapture("--source", src.URL, "--stream", "g", "--segment-interval", "200ms")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(capt.stderr.String(), "new base snapshot"); {
		if time.Now().After(deadline) {
			t.Fatalf("no new base after the compaction:\n%s", capt.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	etcdPut(t, sc, "k4", "4")
	if _, err := sc.Delete(t.Context(), "lost/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	rev3 := src.Revision(t)
	c.waitStored("g", rev3, capt.stderr.String)
	after, _ := src.Dump(t)
	capt.stop()
	log := capt.stderr.String()
	if !strings.Contains(log, "compacted") || !strings.Contains(log, "GAP") {
		t.Fatalf("the restarted capture did not report the compaction and the gap:\n%s", log)
	}
	out := c.ok(nil, "coverage", "--stream", "g")
	if !strings.Contains(out, fmt.Sprintf("GAP: positions %d-%d", rev1+1, rev2)) {
		t.Fatalf("coverage does not show the gap %d-%d:\n%s", rev1+1, rev2, out)
	}

	tgt := etcdtest.Start(t)
	// A restore into a database reports through restore's one --json shape.
	var rj restoreJSON
	out = c.ok(nil, "restore", "--stream", "g", "--target", tgt.URL, "--at-position", strconv.FormatInt(rev1, 10), "--json")
	if err := json.Unmarshal([]byte(out), &rj); err != nil || rj.Stream != "g" || rj.Target != tgt.URL || len(rj.Snapshot) != 64 ||
		rj.Unit != "revisions" || rj.Reached != fmt.Sprintf("source revision %d", rev1) || rj.Notes == nil || !strings.HasPrefix(rj.Verified, "the target holds") {
		t.Fatalf("restore --target --json: %+v (%v)\n%s", rj, err, out)
	}
	got, _ := tgt.Dump(t)
	sameKeys(t, "before the gap", got, before)
	c.ok(nil, "restore", "--stream", "g", "--target", tgt.URL, "--at-position", strconv.FormatInt(rev3, 10), "--force")
	got, _ = tgt.Dump(t)
	sameKeys(t, "after the gap", got, after)
	code, _, errs := c.run(nil, "restore", "--stream", "g", "--target", tgt.URL, "--force", "--at-position", strconv.FormatInt(rev1+2, 10))
	if code == 0 || !strings.Contains(errs, "gap") {
		t.Fatalf("restore inside the gap: exit %d\n%s", code, errs)
	}
	if got, _ := tgt.Dump(t); !maps.Equal(got, after) {
		t.Fatal("a refused restore changed the target")
	}
}

// TestEtcdBadInput: unreachable endpoints, refused credentials and bad URLs
// fail with clear messages that never show the password.
func TestEtcdBadInput(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	for _, u := range []string{"etcd://127.0.0.1", "etcd://127.0.0.1:1/path", "etcd://127.0.0.1:1,:2"} {
		if code, _, errs := c.run(nil, "backup", "--source", u, "--stream", "x"); code != 2 {
			t.Errorf("%s: exit %d, want a usage error\n%s", u, code, errs)
		}
	}
	start := time.Now()
	code, _, errs := c.run(nil, "backup", "--source", "etcd://127.0.0.1:1", "--stream", "x")
	if code == 0 || !strings.Contains(errs, "unreachable") || time.Since(start) > 15*time.Second {
		t.Fatalf("unreachable endpoint: exit %d after %s\n%s", code, time.Since(start), errs)
	}

	src := etcdtest.Start(t)
	etcdPut(t, src.Client(t), "k", "v")
	src.EnableAuth(t, "r00t-pw")
	const bad = "Wr0ng-s3cret"
	code, _, errs = c.run(nil, "backup", "--source", "etcd://root:"+bad+"@"+src.Addr, "--stream", "x")
	if code == 0 || !strings.Contains(errs, "authentication failed") || strings.Contains(errs, bad) {
		t.Fatalf("wrong password: exit %d\n%s", code, errs)
	}
	code, _, errs = c.run(nil, "log", "--source", "etcd://"+src.Addr, "--stream", "x")
	if code == 0 || !strings.Contains(errs, "authentication") {
		t.Fatalf("no credentials on a cluster with auth: exit %d\n%s", code, errs)
	}
	// The password from the environment, with the URL's user.
	c.vars["STRATA_SOURCE_PASSWORD"] = "r00t-pw"
	c.ok(nil, "backup", "--source", "etcd://root@"+src.Addr, "--stream", "x")
	tgt := etcdtest.Start(t)
	c.ok(nil, "restore", "--stream", "x", "--target", tgt.URL)
	if got, _ := tgt.Dump(t); got["k"] != "v" || len(got) != 1 {
		t.Fatalf("restore from a cluster with auth: %v", got)
	}
}

var etcdBin struct {
	once sync.Once
	path string
	err  error
}

// TestMain removes the binary strataBinary built, which outlives every
// test that used it.
func TestMain(m *testing.M) {
	code := m.Run()
	if etcdBin.path != "" {
		os.RemoveAll(filepath.Dir(etcdBin.path))
	}
	os.Exit(code)
}

// strataBinary builds the strata binary once for the tests that kill it.
func strataBinary(t *testing.T) string {
	t.Helper()
	etcdBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bin")
		if err != nil {
			etcdBin.err = err
			return
		}
		etcdBin.path = filepath.Join(dir, "strata")
		if out, err := exec.Command("go", "build", "-o", etcdBin.path, ".").CombinedOutput(); err != nil {
			etcdBin.err = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if etcdBin.err != nil {
		t.Fatal(etcdBin.err)
	}
	return etcdBin.path
}

// TestEtcdKilledCapture kills a capture process with SIGKILL while writes go
// on, restarts it, and checks that the log holds every revision once.
func TestEtcdKilledCapture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	src := etcdtest.Start(t)
	sc := src.Client(t)
	c := newCLI(t)
	c.ok(nil, "init")
	startBin := captureProcess(t, c, "--source", src.URL, "--stream", "k", "--segment-interval", "100ms")

	stopWrites := make(chan struct{})
	written := make(chan int)
	go func() {
		n := 0
		defer func() { written <- n }()
		for {
			select {
			case <-stopWrites:
				return
			default:
			}
			if _, err := sc.Put(context.Background(), fmt.Sprintf("w/%d", n%50), strconv.Itoa(n)); err != nil {
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()

	cmd, errb := startBin()
	c.waitStored("k", src.Revision(t), errb.String)
	time.Sleep(150 * time.Millisecond) // more writes, some in an unsealed segment
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	time.Sleep(200 * time.Millisecond) // writes while no capture runs

	cmd, errb = startBin()
	time.Sleep(300 * time.Millisecond)
	close(stopWrites)
	if n := <-written; n < 100 {
		t.Fatalf("only %d writes", n)
	}
	final := src.Revision(t)
	c.waitStored("k", final, errb.String)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture after SIGTERM: %v\n%s", err, errb)
	}
	if !strings.Contains(errb.String(), "continues at revision") {
		t.Fatalf("the restarted capture did not continue the log:\n%s", errb)
	}
	cov := c.coverage("k")
	if len(cov.Gaps) != 0 || len(cov.Conflicts) != 0 || len(cov.Windows) != 1 || int64(cov.Windows[0].ToPos) != final {
		t.Fatalf("coverage after a killed capture: %+v (final revision %d)", cov, final)
	}
	want, _ := src.Dump(t)
	tgt := etcdtest.Start(t)
	c.ok(nil, "restore", "--stream", "k", "--target", tgt.URL, "--at-position", strconv.FormatInt(final, 10))
	got, _ := tgt.Dump(t)
	sameKeys(t, "after a killed capture", got, want)
	c.ok(nil, "check", "--read-data")
}
