package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/sample"
)

// gen returns a function that runs the project's sample generator
// (internal/sample, the code behind 'strata sample') with the flags
// -docs N, -day D, -changes, -at UNIX and -start UNIX, and returns its
// output.
func gen(t *testing.T) func(args ...string) []byte {
	t.Helper()
	return func(args ...string) []byte {
		t.Helper()
		fs := flag.NewFlagSet("gen", flag.ContinueOnError)
		docs := fs.Int("docs", 0, "")
		day := fs.Int("day", 0, "")
		changes := fs.Bool("changes", false, "")
		at := fs.Int64("at", -1, "")
		start := fs.Int64("start", 0, "")
		if err := fs.Parse(args); err != nil {
			t.Fatalf("gen %v: %v", args, err)
		}
		o := sample.Options{Docs: *docs}
		if *start > 0 {
			o.Start = time.Unix(*start, 0)
		}
		g, err := sample.New(o)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		switch {
		case *changes:
			err = g.Changes(&out, *day)
		case *at >= 0:
			err = g.StateAt(&out, time.Unix(*at, 0))
		default:
			err = g.Export(&out, *day)
		}
		if err != nil {
			t.Fatalf("gen %v: %v", args, err)
		}
		return out.Bytes()
	}
}

func lastSeq(t *testing.T, events []byte) uint64 {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace(events), []byte("\n"))
	var e struct{ Seq uint64 }
	if err := json.Unmarshal(lines[len(lines)-1], &e); err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

// TestRestoreAtMatchesGenerator: snapshots on days 0 and 2, the change log
// of days 1–3 captured through the CLI, and restores at random instants
// over the four days equal the generator's own state at each instant.
func TestRestoreAtMatchesGenerator(t *testing.T) {
	g := gen(t)
	const docs, start = "3000", int64(1767225600)
	c := newCLI(t)
	c.ok(nil, "init")
	var events [4][]byte
	var pos [4]uint64
	for d := 1; d <= 3; d++ {
		events[d] = g("-docs", docs, "-day", strconv.Itoa(d), "-changes")
		pos[d] = lastSeq(t, events[d])
	}
	c.ok(g("-docs", docs, "-day", "0"), "backup", "--stream", "shop/users", "--format", "ndjson", "--stdin", "--time", strconv.FormatInt(start, 10), "--position", "0")
	c.ok(g("-docs", docs, "-day", "2"), "backup", "--stream", "shop/users", "--format", "ndjson", "--stdin",
		"--time", time.Unix(start+2*86400, 0).UTC().Format(time.RFC3339), "--position", fmt.Sprint(pos[2]))
	all := bytes.Join([][]byte{events[1], events[2], events[3]}, nil)
	c.ok(all, "log", "--stream", "shop/users", "--stdin", "--segment-bytes", "65536")

	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(42, 42))
	var cov struct {
		Windows []struct{ From, To struct{ Unix float64 } }
		Gaps    []any
	}
	if err := json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "shop/users", "--json")), &cov); err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || int64(cov.Windows[0].From.Unix) != start {
		t.Fatalf("coverage %+v, want one window from %d and no gaps", cov, start)
	}
	last := int64(cov.Windows[0].To.Unix)                            // the newest event
	instants := []int64{start, start + 86400, start + 2*86400, last} // the snapshots' own instants and the newest event
	for range 8 {
		instants = append(instants, start+rng.Int64N(last-start))
	}
	for i, at := range instants {
		want := g("-docs", docs, "-day", "3", "-at", strconv.FormatInt(at, 10))
		out := filepath.Join(dir, fmt.Sprintf("at-%d.ndjson", i))
		arg := strconv.FormatInt(at, 10)
		if i%2 == 1 {
			arg = time.Unix(at, 0).UTC().Format(time.RFC3339)
		}
		c.ok(nil, "restore", "--stream", "shop/users", "--at", arg, "--to", out)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Fatalf("restore --at %s: %d bytes, the generator says %d", arg, len(got), len(want))
		}
		if i == 0 { // restoring again over the same file (--force) is idempotent
			c.ok(nil, "restore", "--stream", "shop/users", "--at", arg, "--to", out, "--force")
			if again, _ := os.ReadFile(out); !bytes.Equal(again, want) {
				t.Fatal("a second restore to the same path differs")
			}
		}
	}
	// By position: the end of day 1 is the day-1 export.
	if got := c.ok(nil, "restore", "--stream", "shop/users", "--at-position", fmt.Sprint(pos[1])); got != string(g("-docs", docs, "-day", "1")) {
		t.Fatal("restore --at-position (end of day 1) differs from the day-1 export")
	}
	plan := c.ok(nil, "restore", "--stream", "shop/users", "--at", strconv.FormatInt(start+2*86400+3600, 10), "--dry-run")
	if !strings.Contains(plan, "base snapshot") || !strings.Contains(plan, "bytes to read") || !strings.Contains(plan, fmt.Sprintf("from position %d", pos[2]+1)) {
		t.Errorf("dry-run plan:\n%s", plan)
	}
	if code, _, errs := c.run(nil, "restore", "--stream", "shop/users", "--at", strconv.FormatInt(start-1, 10)); code == 0 || !strings.Contains(errs, "before the first snapshot") {
		t.Errorf("restore before the first snapshot: exit %d, %s", code, errs)
	}
	// Without --at, restore is the latest snapshot as stored.
	if got := c.ok(nil, "restore", "--stream", "shop/users"); got != string(g("-docs", docs, "-day", "2")) {
		t.Error("plain restore is not the latest snapshot")
	}
}

// TestLogGapOnCLI: a jump in seq is reported on stderr and in coverage.
func TestLogGapOnCLI(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	c.ok([]byte(`{"_id":"a"}`+"\n"), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "100", "--position", "0")
	ev := `{"seq":1,"ts":101,"op":"put","key":"b","doc":{"_id":"b"}}
{"seq":2,"ts":102,"op":"delete","key":"a"}
{"seq":5,"ts":105,"op":"put","key":"c","doc":{"_id":"c"}}
`
	code, _, errs := c.run([]byte(ev), "log", "--stream", "s", "--stdin")
	if code != 0 || !strings.Contains(errs, "GAP in s: positions 3-4") {
		t.Fatalf("log with a gap: exit %d\n%s", code, errs)
	}
	cov := c.ok(nil, "coverage", "--stream", "s")
	if !strings.Contains(cov, "GAP: positions 3-4 missing") {
		t.Errorf("coverage:\n%s", cov)
	}
	// At the last event before the gap: restorable. Just after it, the lost
	// events 3-4 may already have happened, so it is not.
	if got := c.ok(nil, "restore", "--stream", "s", "--at", "102"); got != `{"_id":"b"}`+"\n" {
		t.Errorf("restore before the gap: %q", got)
	}
	code, _, errs = c.run(nil, "restore", "--stream", "s", "--at", "102.5")
	if code == 0 || !strings.Contains(errs, "positions 3-4 missing") || !strings.Contains(errs, "1970-01-01T00:01:42Z") {
		t.Errorf("restore past the gap: exit %d, %s", code, errs)
	}
	// A malformed line stops the capture with its number; what came before is kept.
	code, _, errs = c.run([]byte(`{"seq":6,"ts":106,"op":"put","key":"d","doc":{"_id":"d"}}`+"\n{oops\n"), "log", "--stream", "s", "--stdin")
	if code == 0 || !strings.Contains(errs, "event line 2") || !strings.Contains(errs, "1 events stored in 1 segments") {
		t.Errorf("malformed event: exit %d, %s", code, errs)
	}
}

// TestKilledLog kills a real capture with SIGKILL while it ingests, then
// restarts it with the whole stream: nothing is lost or duplicated.
func TestKilledLog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	g := gen(t)
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	env := append(os.Environ(), "STRATA_PASSWORD=pw", "STRATA_REPO="+repoDir)
	runBin := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, bytes.NewReader(stdin)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("strata %v: %v: %s", args, err, errb.String())
		}
		return out
	}
	runBin(nil, "init")
	runBin(g("-docs", "4000", "-day", "0"), "backup", "--stream", "s", "--format", "ndjson", "--stdin", "--time", "1767225600", "--position", "0")
	events := bytes.Join([][]byte{g("-docs", "4000", "-day", "1", "-changes"), g("-docs", "4000", "-day", "2", "-changes")}, nil)

	cmd := exec.Command(bin, "log", "--stream", "s", "--stdin", "--segment-interval", "50ms")
	cmd.Env = env
	pipe, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	half := bytes.IndexByte(events[len(events)/2:], '\n') + len(events)/2 + 1
	go func() {
		for i := 0; i < half; i += 256 { // trickle, so segments seal by time
			if _, err := pipe.Write(events[i:min(i+256, half)]); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(repoDir, "logs", "s", "@*"))
		if len(m) >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	pipe.Close()
	before, _ := filepath.Glob(filepath.Join(repoDir, "logs", "s", "@*"))
	if len(before) < 3 {
		t.Fatalf("only %d segments before the kill", len(before))
	}
	runBin(events, "log", "--stream", "s", "--stdin")
	runBin(nil, "check", "--read-data")
	var cov struct {
		Windows []struct {
			ToPos uint64 `json:"to_position"`
		}
		Gaps []any
	}
	json.Unmarshal(runBin(nil, "coverage", "--stream", "s", "--json"), &cov)
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || cov.Windows[0].ToPos != lastSeq(t, events) {
		t.Fatalf("coverage after restart: %+v, want one window to %d", cov, lastSeq(t, events))
	}
	got := runBin(nil, "restore", "--stream", "s", "--at-position", fmt.Sprint(lastSeq(t, events)))
	if want := g("-docs", "4000", "-day", "2"); !bytes.Equal(got, want) {
		t.Fatalf("restore after a killed capture: %d bytes, want %d", len(got), len(want))
	}
	// NDJSON events carry their own times: a re-fed capture leaves no
	// time-uncertain span, and restores by time stay exact on both sides
	// of the kill (issue 19).
	var unc struct {
		Uncertain []any `json:"time_uncertain"`
	}
	json.Unmarshal(runBin(nil, "coverage", "--stream", "s", "--json"), &unc)
	if len(unc.Uncertain) != 0 {
		t.Fatalf("a re-fed NDJSON capture left time-uncertain spans: %v", unc.Uncertain)
	}
	for h := int64(3); h <= 45; h += 6 {
		at := fmt.Sprint(1767225600 + h*3600)
		got := runBin(nil, "restore", "--stream", "s", "--at", at)
		if want := g("-docs", "4000", "-at", at); !bytes.Equal(got, want) {
			t.Fatalf("restore at %s after a killed capture differs from the generator", at)
		}
	}
}

// TestForgetPruneKeepWindow: forget with --keep-within-pitr and two prunes
// leave every instant of the window restorable, equal to the generator.
func TestForgetPruneKeepWindow(t *testing.T) {
	g := gen(t)
	start := time.Now().Add(-3*24*time.Hour).Unix() / 3600 * 3600
	st := strconv.FormatInt(start, 10)
	const docs = "2000"
	c := newCLI(t)
	c.ok(nil, "init")
	var pos uint64
	var events []byte
	for d := 0; d <= 2; d++ {
		if d > 0 {
			ev := g("-docs", docs, "-start", st, "-day", strconv.Itoa(d), "-changes")
			events = append(events, ev...)
			pos = lastSeq(t, ev)
		}
		c.ok(g("-docs", docs, "-start", st, "-day", strconv.Itoa(d)), "backup", "--stream", "s", "--format", "ndjson", "--stdin",
			"--time", strconv.FormatInt(start+int64(d)*86400, 10), "--position", fmt.Sprint(pos))
	}
	events = append(events, g("-docs", docs, "-start", st, "-day", "3", "-changes")...)
	c.ok(events, "log", "--stream", "s", "--stdin", "--segment-bytes", "16384")

	out := c.ok(nil, "forget", "--stream", "s", "--keep-last", "1", "--keep-within-pitr", "36h")
	if !strings.Contains(out, "removed snapshot") || !strings.Contains(out, "log segments") {
		t.Fatalf("forget:\n%s", out)
	}
	c.ok(nil, "prune", "--grace", "1ms")
	time.Sleep(5 * time.Millisecond)
	if out := c.ok(nil, "prune", "--grace", "1ms"); !strings.Contains(out, "deleted") {
		t.Fatalf("second prune:\n%s", out)
	}
	c.ok(nil, "check", "--read-data")
	windowStart := time.Now().Add(-36 * time.Hour).Unix()
	var cov struct {
		Windows []struct{ From, To struct{ Unix float64 } }
	}
	json.Unmarshal([]byte(c.ok(nil, "coverage", "--stream", "s", "--json")), &cov)
	if len(cov.Windows) != 1 || int64(cov.Windows[0].From.Unix) > windowStart {
		t.Fatalf("coverage after forget and prune: %+v, want a window from before %d", cov, windowStart)
	}
	last := int64(cov.Windows[0].To.Unix)
	for _, at := range []int64{windowStart, windowStart + 1, (windowStart + last) / 2, last} {
		want := g("-docs", docs, "-start", st, "-day", "3", "-at", strconv.FormatInt(at, 10))
		if got := c.ok(nil, "restore", "--stream", "s", "--at", strconv.FormatInt(at, 10)); got != string(want) {
			t.Fatalf("restore at %d after forget and prune differs from the generator", at)
		}
	}
}
