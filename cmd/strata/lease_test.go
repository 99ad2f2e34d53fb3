package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/internal/testenv"
	"github.com/strata-backup/strata/repo"
)

// One writer per stream (issue 13 item 3), with real processes: a second
// capture of a stream refuses naming the holder; a standby takes over
// within the bound after the holder is killed; two captures started at
// once never both write; and restores afterwards are exact.

const leaseInterval = 150 * time.Millisecond

type leaseRig struct {
	t      *testing.T
	bin    string
	repo   string
	env    []string
	events []byte
	last   uint64
	want   func(args ...string) []byte
}

func newLeaseRig(t *testing.T) *leaseRig {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	g := gen(t)
	rg := &leaseRig{t: t, bin: strataBinary(t), repo: filepath.Join(t.TempDir(), "repo"), want: g}
	rg.env = append(os.Environ(), "STRATA_PASSWORD=pw", "STRATA_REPO="+rg.repo)
	rg.run(nil, 0, "init")
	rg.run(g("-docs", "4000", "-day", "0"), 0, "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "1767225600", "--position", "0")
	rg.events = bytes.Join([][]byte{g("-docs", "4000", "-day", "1", "-changes"), g("-docs", "4000", "-day", "2", "-changes")}, nil)
	rg.last = lastSeq(t, rg.events)
	return rg
}

// run runs the binary to its end and checks its exit code.
func (rg *leaseRig) run(stdin []byte, code int, args ...string) (stdout, stderr string) {
	rg.t.Helper()
	cmd := exec.Command(rg.bin, args...)
	var out, errb bytes.Buffer
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = rg.env, bytes.NewReader(stdin), &out, &errb
	start := time.Now()
	err := cmd.Run()
	if os.Getenv("STRATA_TEST_TIMING") != "" {
		rg.t.Logf("%6.2fs strata %s", time.Since(start).Seconds(), strings.Join(args, " "))
	}
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errorsAs(err, &ee) {
			rg.t.Fatalf("strata %v: %v", args, err)
		}
		got = ee.ExitCode()
	}
	if got != code {
		rg.t.Fatalf("strata %v: exit %d, want %d\n%s", args, got, code, errb.String())
	}
	return out.String(), errb.String()
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

// capture starts `strata log --stdin` on stream s as host; the events go
// in through the returned pipe.
func (rg *leaseRig) capture(host string, extra ...string) (*exec.Cmd, io.WriteCloser, *testenv.SyncBuffer) {
	rg.t.Helper()
	args := append([]string{"log", "--stream", "s", "--stdin", "--segment-interval", "50ms", "--lease-interval", leaseInterval.String()}, extra...)
	cmd := exec.Command(rg.bin, args...)
	errb := &testenv.SyncBuffer{}
	cmd.Env, cmd.Stderr = append(slicesClone(rg.env), "STRATA_LEASE_HOST="+host), errb
	pipe, err := cmd.StdinPipe()
	if err != nil {
		rg.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		rg.t.Fatal(err)
	}
	rg.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, pipe, errb
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// trickle writes events in small pieces, so segments seal by time.
func trickle(w io.Writer, events []byte) {
	for i := 0; i < len(events); i += 256 {
		if _, err := w.Write(events[i:min(i+256, len(events))]); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (rg *leaseRig) segments() []repo.SegmentKey {
	rg.t.Helper()
	var out []repo.SegmentKey
	filepath.WalkDir(filepath.Join(rg.repo, "logs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, _ := filepath.Rel(rg.repo, p)
		if k, err := repo.ParseSegmentName(filepath.ToSlash(rel)); err == nil {
			out = append(out, k)
		}
		return nil
	})
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verify checks the repository and that restores are exact: at the last
// position, and at instants across both days.
func (rg *leaseRig) verify() {
	rg.t.Helper()
	rg.run(nil, 0, "check", "--read-data")
	out, _ := rg.run(nil, 0, "coverage", "--stream", "s", "--json")
	var cov struct {
		Windows []struct {
			ToPos uint64 `json:"to_position"`
		}
		Gaps      []any
		Conflicts []any
	}
	if err := json.Unmarshal([]byte(out), &cov); err != nil {
		rg.t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || len(cov.Conflicts) != 0 || cov.Windows[0].ToPos != rg.last {
		rg.t.Fatalf("coverage %s, want one window to %d", out, rg.last)
	}
	got, _ := rg.run(nil, 0, "restore", "--stream", "s", "--at-position", fmt.Sprint(rg.last))
	if want := rg.want("-docs", "4000", "-day", "2"); got != string(want) {
		rg.t.Fatalf("restore at the last position: %d bytes, want %d", len(got), len(want))
	}
	for h := int64(7); h <= 45; h += 19 {
		at := fmt.Sprint(1767225600 + h*3600)
		got, _ := rg.run(nil, 0, "restore", "--stream", "s", "--at", at)
		if want := rg.want("-docs", "4000", "-at", at); got != string(want) {
			rg.t.Fatalf("restore at %s differs from the generator", at)
		}
	}
}

// TestStandbyTakesOverAfterKill: the holder captures half the events; a
// second capture refuses naming it; a standby (of another host name, so
// that only its clock can tell the holder is gone) waits, and takes over
// within Missed intervals (and a poll) of the holder's SIGKILL; the log it
// continues restores exactly.
func TestStandbyTakesOverAfterKill(t *testing.T) {
	rg := newLeaseRig(t)
	half := bytes.IndexByte(rg.events[len(rg.events)/2:], '\n') + len(rg.events)/2 + 1
	holder, hpipe, herr := rg.capture("host-a")
	go trickle(hpipe, rg.events[:half])
	waitFor(t, "the holder's first segments", 30*time.Second, func() bool { return len(rg.segments()) >= 2 })

	_, stderr := rg.run(rg.events, 1, "log", "--stream", "s", "--stdin")
	if want := fmt.Sprintf("is being captured by host host-a pid %d since ", holder.Process.Pid); !strings.Contains(stderr, want) {
		t.Fatalf("second capture's refusal does not name the holder (%q):\n%s", want, stderr)
	}

	standby, spipe, serr := rg.capture("host-b", "--standby")
	go func() { trickle(spipe, rg.events); spipe.Close() }()
	waitFor(t, "the standby to wait", 10*time.Second, func() bool { return strings.Contains(serr.String(), "standby:") })
	time.Sleep(4 * leaseInterval) // well past the bound: a renewing holder keeps the stream
	if strings.Contains(serr.String(), "took over") {
		t.Fatalf("the standby took over from a live holder:\n%s", serr)
	}
	holder.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	holder.Wait()
	waitFor(t, "the standby to take over", 30*time.Second, func() bool { return strings.Contains(serr.String(), "took over") })
	took := time.Since(killed)
	// The holder renewed at most one interval before the kill; the standby
	// takes over Missed (3) intervals after the newest renewal it saw, plus
	// one poll (interval/4). The slack is for a loaded machine.
	bound := 4*leaseInterval + leaseInterval/4
	t.Logf("standby took over %s after the SIGKILL (bound %s + 1s slack)", took.Round(time.Millisecond), bound)
	if took > bound+time.Second {
		t.Fatalf("standby took over %s after the kill, over the bound %s", took, bound)
	}
	if err := standby.Wait(); err != nil {
		t.Fatalf("standby capture: %v\n%s", err, serr)
	}
	epochs := map[uint64]int{}
	for _, k := range rg.segments() {
		epochs[k.Epoch]++
	}
	if epochs[0] != 0 || len(epochs) != 2 {
		t.Fatalf("segments by epoch %v, want the holder's and the standby's", epochs)
	}
	_ = herr
	rg.verify()
}

// TestConcurrentCapturesOneWins: two captures of one stream started at
// the same moment: one captures, the other refuses naming it; nothing
// overlaps, and a capture started later continues where it ended.
func TestConcurrentCapturesOneWins(t *testing.T) {
	rg := newLeaseRig(t)
	third := bytes.IndexByte(rg.events[len(rg.events)/3:], '\n') + len(rg.events)/3 + 1
	for round := range 3 {
		a, apipe, aerr := rg.capture("host-a")
		b, bpipe, berr := rg.capture("host-a")
		feed := rg.events[:third]
		if round > 0 {
			feed = rg.events
		}
		// Both inputs stay open until one capture has ended, so both run
		// at once whatever the scheduling.
		wrote := map[*exec.Cmd]chan struct{}{a: make(chan struct{}), b: make(chan struct{})}
		go func() { apipe.Write(feed); close(wrote[a]) }()
		go func() { bpipe.Write(feed); close(wrote[b]) }()
		exited := make(chan *exec.Cmd, 2)
		go func() { a.Wait(); exited <- a }()
		go func() { b.Wait(); exited <- b }()
		first := <-exited
		if first.ProcessState.Success() {
			t.Fatalf("round %d: a capture ended with success while its input was open\n%s\n%s", round, aerr, berr)
		}
		winner, wpipe, loser := b, bpipe, aerr
		if first == b {
			winner, wpipe, loser = a, apipe, berr
		}
		<-wrote[winner] // all of the feed is in the pipe before it closes, or the input ends mid-line
		wpipe.Close()
		<-exited
		if !winner.ProcessState.Success() {
			t.Fatalf("round %d: the capture holding the lease failed\n%s\n%s", round, aerr, berr)
		}
		if want := fmt.Sprintf("is being captured by host host-a pid %d", winner.Process.Pid); !strings.Contains(loser.String(), want) {
			t.Fatalf("round %d: the refused capture does not name the winner (%q):\n%s", round, want, loser)
		}
	}
	rg.verify()
}

// TestRedisCLIOneWriter: two `strata log --source redis://…` captures of
// one stream: the second refuses naming the first; a standby takes over
// after the first is killed, continues the replication stream, and a
// restore afterwards equals the source.
func TestRedisCLIOneWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	src := redistest.Start(t, redistest.Options{})
	sc := src.Client(t)
	bin := strataBinary(t)
	c := newCLI(t)
	c.ok(nil, "init")
	env := append(os.Environ(), "STRATA_PASSWORD="+c.vars["STRATA_PASSWORD"], "STRATA_REPO="+c.vars["STRATA_REPO"])
	start := func(host string, extra ...string) (*exec.Cmd, *testenv.SyncBuffer) {
		args := append([]string{"log", "--source", "redis://" + src.Addr, "--stream", "kv", "--segment-interval", "100ms", "--lease-interval", leaseInterval.String()}, extra...)
		cmd := exec.Command(bin, args...)
		errb := &testenv.SyncBuffer{}
		cmd.Env, cmd.Stderr = append(slicesClone(env), "STRATA_LEASE_HOST="+host), errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, errb
	}
	holder, _ := start("host-a")
	waitFor(t, "the capture to come online", 20*time.Second, func() bool {
		return strings.Contains(sc.Info("replication")["slave0"], "state=online")
	})
	redisWrites(sc, "a", 50)
	sc.WaitReplicas(20 * time.Second)

	second, serr := start("host-b")
	if err := second.Wait(); err == nil {
		t.Fatalf("a second capture of the stream ran:\n%s", serr)
	}
	if want := fmt.Sprintf("is being captured by host host-a pid %d since ", holder.Process.Pid); !strings.Contains(serr.String(), want) {
		t.Fatalf("second capture's refusal does not name the holder (%q):\n%s", want, serr)
	}
	standby, berr := start("host-b", "--standby")
	waitFor(t, "the standby to wait", 10*time.Second, func() bool { return strings.Contains(berr.String(), "standby:") })
	time.Sleep(300 * time.Millisecond) // some of it sealed, some not, when the holder dies
	holder.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	holder.Wait()
	redisWrites(sc, "b", 50) // while no capture runs
	waitFor(t, "the standby to take over", 30*time.Second, func() bool { return strings.Contains(berr.String(), "took over") })
	if took, bound := time.Since(killed), 4*leaseInterval+leaseInterval/4; took > bound+time.Second {
		t.Fatalf("standby took over %s after the kill, over the bound %s", took, bound)
	}
	redisWrites(sc, "c", 50)
	sc.WaitReplicas(20 * time.Second)
	time.Sleep(300 * time.Millisecond)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	want := sc.State()
	time.Sleep(5 * time.Millisecond)
	sc.Must("SET", "tail", 1)
	sc.WaitReplicas(20 * time.Second)
	time.Sleep(300 * time.Millisecond)
	standby.Process.Signal(syscall.SIGTERM)
	if err := standby.Wait(); err != nil {
		t.Fatalf("standby after SIGTERM: %v\n%s", err, berr)
	}
	if o := c.ok(nil, "check", "--read-data"); !strings.Contains(o, "no problems") {
		t.Fatalf("check: %s", o)
	}
	dst := redistest.Start(t, redistest.Options{})
	c.ok(nil, "restore", "--stream", "kv", "--at", at, "--target", "redis://"+dst.Addr)
	if got := dst.Client(t).State(); got != want {
		t.Fatalf("restore after the takeover:\n got %s\nwant %s", got, want)
	}
}

// TestPausedHolderIsDeposed: a holder paused with SIGSTOP (alive, but not
// renewing) loses the stream to a standby; when it resumes it finds its
// lease lost and exits 1 without storing what it held; restores read the
// standby's log and are exact.
func TestPausedHolderIsDeposed(t *testing.T) {
	rg := newLeaseRig(t)
	half := bytes.IndexByte(rg.events[len(rg.events)/2:], '\n') + len(rg.events)/2 + 1
	holder, hpipe, herr := rg.capture("host-a", "--segment-interval", "10s")
	hpipe.Write(rg.events[:half]) // held unsealed: the segment interval is long
	waitFor(t, "the holder to take the lease", 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(rg.repo, "leases", "s", "@*"))
		return len(m) > 0
	})
	time.Sleep(2 * leaseInterval)
	holder.Process.Signal(syscall.SIGSTOP)
	standby, spipe, serr := rg.capture("host-b", "--standby")
	go func() { trickle(spipe, rg.events); spipe.Close() }()
	waitFor(t, "the standby to take over", 30*time.Second, func() bool { return strings.Contains(serr.String(), "took over") })
	if err := standby.Wait(); err != nil {
		t.Fatalf("standby: %v\n%s", err, serr)
	}
	holder.Process.Signal(syscall.SIGCONT)
	hpipe.Close()
	if err := holder.Wait(); err == nil || !strings.Contains(herr.String(), "lease lost") {
		t.Fatalf("the deposed holder: %v\n%s", err, herr)
	}
	t.Logf("the deposed holder said:\n%s", herr)
	for _, k := range rg.segments() {
		if k.Epoch == 1 {
			t.Fatalf("the deposed holder stored %s", k.Name())
		}
	}
	rg.verify()
}
