package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/redistest"
)

// redisWrites runs a small mixed workload: counters catch a command
// applied twice or lost.
func redisWrites(c *redistest.Client, tag string, n int) {
	for i := range n {
		c.Must("INCR", "counter")
		c.Must("HINCRBY", "h:"+tag, fmt.Sprint(i%7), 1)
		c.Must("RPUSH", "list", tag)
		c.Must("ZINCRBY", "z", 1, fmt.Sprint(i%5))
		c.Must("SELECT", 1)
		c.Must("SADD", "s:"+tag, i)
		c.Must("SELECT", 0)
	}
	c.Must("MULTI")
	c.Must("INCR", "counter")
	c.Must("SET", "tx:"+tag, "done")
	c.Must("EXEC")
}

// TestRedisCLIKilledCapture runs strata log --source as a real process,
// kills it with SIGKILL mid-stream and restarts it: the log stays
// contiguous (no gap, no overlap) and restores equal the ground truth.
func TestRedisCLIKilledCapture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	src := redistest.Start(t, redistest.Options{Password: "src-secret"})
	sc := src.Client(t)
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	c := newCLI(t)
	c.ok(nil, "init")
	env := append(os.Environ(), "STRATA_PASSWORD="+c.vars["STRATA_PASSWORD"], "STRATA_REPO="+c.vars["STRATA_REPO"], "STRATA_SOURCE_PASSWORD=src-secret")
	source := "redis://" + src.Addr
	startLog := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "log", "--source", source, "--stream", "kv", "--segment-interval", "200ms")
		var errb bytes.Buffer
		cmd.Env, cmd.Stderr = env, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &errb
	}
	waitOnline := func() {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(sc.Info("replication")["slave0"], "state=online") {
			if time.Now().After(deadline) {
				t.Fatal("the capture never came online")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type instant struct {
		at    string
		state string
	}
	mark := func() instant {
		sc.WaitReplicas(20 * time.Second)
		time.Sleep(2 * time.Millisecond)
		in := instant{time.Now().UTC().Format(time.RFC3339Nano), sc.State()}
		time.Sleep(2 * time.Millisecond)
		return in
	}

	cmd, _ := startLog()
	waitOnline()
	redisWrites(sc, "a", 100)
	in1 := mark()
	redisWrites(sc, "b", 100)
	sc.WaitReplicas(20 * time.Second)
	// Some of b is sealed, the rest only received, when the capture dies.
	time.Sleep(300 * time.Millisecond)
	redisWrites(sc, "c", 50)
	sc.WaitReplicas(20 * time.Second)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	redisWrites(sc, "d", 50) // while no capture runs: the backlog keeps it

	cmd, errb := startLog()
	waitOnline()
	redisWrites(sc, "e", 50)
	in2 := mark()
	sc.Must("SET", "tail", 1)
	sc.WaitReplicas(20 * time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("log after SIGTERM: %v\n%s", err, errb)
	}
	if !strings.Contains(errb.String(), "continuing the replication stream") || strings.Contains(errb.String(), "src-secret") {
		t.Fatalf("restarted capture's messages:\n%s", errb)
	}

	var cov struct {
		Windows []struct {
			FromPos uint64 `json:"from_position"`
			ToPos   uint64 `json:"to_position"`
		}
		Gaps []any
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "kv", "--json")), &cov); err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || cov.Windows[0].FromPos != 0 {
		t.Fatalf("coverage after a killed capture: %+v", cov)
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check: %s", o)
	}

	for _, in := range []instant{in1, in2} {
		dst := redistest.Start(t, redistest.Options{})
		c.ok(nil, "restore", "--stream", "kv", "--at", in.at, "--target", "redis://"+dst.Addr)
		if got := dst.Client(t).State(); got != in.state {
			t.Fatalf("restore at %s:\n got %s\nwant %s", in.at, got, in.state)
		}
	}

	// A target with keys is refused without --force; --dry-run writes nothing.
	dst := redistest.Start(t, redistest.Options{})
	dc := dst.Client(t)
	dc.Must("SET", "keep", "me")
	if code, _, errs := c.run(nil, "restore", "--stream", "kv", "--at", in2.at, "--target", "redis://"+dst.Addr); code == 0 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "--force") {
		t.Fatalf("non-empty target: exit %d %s", code, errs)
	}
	if out := c.ok(nil, "restore", "--stream", "kv", "--at", in2.at, "--target", "redis://"+dst.Addr, "--dry-run"); !strings.Contains(out, "base snapshot") || dc.Must("GET", "keep") != "me" {
		t.Fatalf("dry run: %s", out)
	}
	c.ok(nil, "restore", "--stream", "kv", "--at", in2.at, "--target", "redis://"+dst.Addr, "--force")
	if got := dc.State(); got != in2.state {
		t.Fatalf("forced restore:\n got %s\nwant %s", got, in2.state)
	}
}

// TestRedisCLIBadSources: unreachable servers and wrong passwords fail
// clearly, naming the URL without its password.
func TestRedisCLIBadSources(t *testing.T) {
	locked := redistest.Start(t, redistest.Options{Password: "right"})
	c := newCLI(t)
	c.ok(nil, "init")
	dead := redistest.Start(t, redistest.Options{})
	dead.Stop()
	cases := []struct {
		args []string
		pw   string
		want string
	}{
		{[]string{"backup", "--stream", "r", "--source", "redis://" + dead.Addr}, "", "cannot connect"},
		{[]string{"log", "--stream", "r", "--source", "redis://" + dead.Addr}, "", "cannot connect"},
		{[]string{"backup", "--stream", "r", "--source", "redis://:Hunter2-wrong@" + locked.Addr}, "", "refused the credentials"},
		{[]string{"backup", "--stream", "r", "--source", "redis://" + locked.Addr}, "Hunter2-wrong", "refused the credentials"},
		{[]string{"backup", "--stream", "r", "--source", "redis://" + locked.Addr}, "", "requires a password"},
		{[]string{"restore", "--stream", "r", "--target", "redis://" + locked.Addr + "/x"}, "", "database number"},
	}
	for _, tc := range cases {
		c.vars["STRATA_SOURCE_PASSWORD"] = tc.pw
		code, _, errs := c.run(nil, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "Hunter2") {
			t.Errorf("strata %v: exit %d, %q (want %q, no password)", tc.args, code, errs, tc.want)
		}
	}
	c.vars["STRATA_SOURCE_PASSWORD"] = "right"
	if id := strings.TrimSpace(c.ok(nil, "backup", "--stream", "r", "--source", "redis://"+locked.Addr)); len(id) != 64 {
		t.Fatalf("backup printed %q", id)
	}
}
