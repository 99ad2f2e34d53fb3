package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
)

// On a terminal the bar shows the percentage, the rate and the time left;
// off a terminal, or with --quiet, nothing is drawn.
func TestProgressBar(t *testing.T) {
	var errb bytes.Buffer
	env := &environment{stderr: &errb, stderrTTY: true}
	stop := startProgress(env, "backup", 1000, func() int64 { return 500 }, func() string { return "(3 chunks, 1 new)" })
	time.Sleep(4 * progressEvery)
	stop()
	out := errb.String()
	for _, want := range []string{"backup (3 chunks, 1 new)", "50%", "/s", "B"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar: no %q in %q", want, out)
		}
	}
	for _, env := range []*environment{{stderr: &errb}, {stderr: &errb, stderrTTY: true, quiet: true}} {
		errb.Reset()
		stop := startProgress(env, "backup", 1000, func() int64 { return 500 }, nil)
		time.Sleep(3 * progressEvery)
		stop()
		if errb.Len() != 0 {
			t.Errorf("bar drawn off a terminal or with --quiet: %q", errb.String())
		}
	}
}

// An engine operation's bar (check, prune) gets its percentage once the
// operation knows its total.
func TestWorkProgressBar(t *testing.T) {
	var errb bytes.Buffer
	env := &environment{stderr: &errb, stderrTTY: true}
	w := &engine.Work{}
	stop := startWork(env, "prune: walking", w, false)
	time.Sleep(2 * progressEvery)
	w.Total.Store(40)
	w.Done.Store(10)
	time.Sleep(3 * progressEvery)
	stop()
	if out := errb.String(); !strings.Contains(out, "25%") || !strings.Contains(out, "prune: walking") {
		t.Errorf("bar: no 25%% or description in %q", out)
	}
}

// A backup ends with one summary line in which "new" never exceeds
// "chunks"; --quiet drops it, --verbose adds detail.
func TestBackupSummary(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	file := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(file, genNDJSON(300, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`in (\d+) chunks, (\d+) new`)
	for i, stream := range []string{"a", "a"} { // the second dedups against the first: 0 new
		_, _, errs := c.run(nil, "backup", file, "--stream", stream)
		m := re.FindStringSubmatch(errs)
		if m == nil {
			t.Fatalf("backup: no summary in %q", errs)
		}
		chunks, _ := strconv.Atoi(m[1])
		fresh, _ := strconv.Atoi(m[2])
		if fresh > chunks || i == 1 && fresh != 0 {
			t.Errorf("backup %d: %d chunks, %d new\n%s", i, chunks, fresh, errs)
		}
	}
	if code, out, errs := c.run(nil, "backup", file, "--stream", "q", "--quiet", "--format", "ndjson"); code != 0 || errs != "" || len(strings.TrimSpace(out)) != 64 {
		t.Errorf("backup --quiet: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, _, errs := c.run(nil, "backup", file, "--stream", "v", "--verbose"); !strings.Contains(errs, "backup took") {
		t.Errorf("backup --verbose: %q", errs)
	}
}
