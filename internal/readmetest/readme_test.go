package readmetest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-backup/strata/internal/testenv"
)

// marker precedes each README code block the test runs.
const marker = "<!-- readme-test -->"

// blocks returns the bodies of the fenced code blocks right after a marker.
func blocks(t *testing.T, readme []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(readme))
	armed, in := false, false
	var cur strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case in && strings.HasPrefix(line, "```"):
			out = append(out, cur.String())
			cur.Reset()
			in = false
		case in:
			cur.WriteString(line + "\n")
		case strings.TrimSpace(line) == marker:
			armed = true
		case armed && strings.HasPrefix(line, "```"):
			armed, in = false, true
		case armed && strings.TrimSpace(line) != "":
			t.Fatalf("README: %s is followed by %q, not a code block", marker, line)
		}
	}
	if in || armed {
		t.Fatal("README: a marked code block is not closed")
	}
	return out
}

// TestReadmeOnFreshClone clones the repository's committed state into an
// empty directory and runs the README's marked blocks as written. The quick
// start runs with DOCS=20000 (its documented size knob) to stay fast.
func TestReadmeOnFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds strata and runs the README's walk-throughs; not in -short")
	}
	if raceEnabled {
		t.Skip("the commands run in child processes, which the race detector does not see; the plain run covers them")
	}
	root := testenv.RepoRoot(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").CombinedOutput(); err != nil {
		t.Skipf("%s is not a git checkout: %s", root, out)
	}
	if out, _ := exec.Command("git", "-C", root, "status", "--porcelain").Output(); len(out) > 0 {
		t.Logf("uncommitted changes are not in the clone:\n%s", out)
	}
	clone := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("git", "clone", "-q", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	readme, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bs := blocks(t, readme)
	if len(bs) < 4 {
		t.Fatalf("README has %d marked blocks; the quick start, by hand, point-in-time and record-level walk-throughs should be", len(bs))
	}
	script := "set -euo pipefail\nset -x\n" + strings.Join(bs, "")
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = clone
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") && !strings.HasPrefix(kv, "DOCS=") && !strings.HasPrefix(kv, "QUICKSTART_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DOCS=20000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(clone, "quickstart-demo", "repo", "config")); err != nil {
		t.Errorf("the quick start did not leave its repository where the README says: %v", err)
	}
}
