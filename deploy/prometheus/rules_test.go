package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promtool finds promtool (Debian's prometheus package). It skips when
// promtool is absent, except in CI (CI=true or STRATA_REQUIRE_DATABASES=1),
// where .ci/run installs it and its absence is a broken setup.
func promtool(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("STRATA_PROMTOOL"); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath("promtool"); err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" || os.Getenv("STRATA_REQUIRE_DATABASES") == "1" {
		t.Fatal("promtool not found under CI: .ci/run installs Debian's prometheus package")
	}
	t.Skip("promtool not found: apt-get install prometheus to check the alerting rules")
	return ""
}

func run(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRules: the rules are valid, and their unit tests pass: a stream that
// falls behind raises a warning, then a critical alert.
func TestRules(t *testing.T) {
	if out, err := run(t, ".", "check", "rules", "strata.rules.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := run(t, ".", "test", "rules", "strata.rules.test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestRulesTestsCanFail: with the RPO warning alert pointed at the failure
// level, the unit tests must fail, or they prove nothing.
func TestRulesTestsCanFail(t *testing.T) {
	rules, err := os.ReadFile("strata.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("strata.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	warn := `objective="rpo", level="warning"`
	if !strings.Contains(string(rules), warn) {
		t.Fatalf("strata.rules.yml has no %s", warn)
	}
	dir := t.TempDir()
	broken := strings.Replace(string(rules), warn, `objective="rpo", level="failure"`, 1)
	os.WriteFile(filepath.Join(dir, "strata.rules.yml"), []byte(broken), 0o644)
	os.WriteFile(filepath.Join(dir, "strata.rules.test.yml"), tests, 0o644)
	out, err := run(t, dir, "test", "rules", "strata.rules.test.yml")
	if err == nil || !strings.Contains(out, "StrataRPO") {
		t.Fatalf("promtool test rules passed broken rules:\n%s", out)
	}
}

// TestRulesUseDocumentedMetrics: every strata_ series the rules read is one
// the server documents (PROTOCOL.md §7), so a renamed metric cannot leave
// an alert silently matching nothing.
func TestRulesUseDocumentedMetrics(t *testing.T) {
	rules, err := os.ReadFile("strata.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	proto, err := os.ReadFile(filepath.Join("..", "..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range regexp.MustCompile(`\bstrata_[a-z_]+`).FindAllString(line, -1) {
			if !slices.Contains(used, m) {
				used = append(used, m)
			}
		}
	}
	if len(used) < 8 {
		t.Fatalf("found only %v in the rules", used)
	}
	for _, m := range used {
		if !strings.Contains(string(proto), "`"+m) {
			t.Errorf("the rules use %s, which PROTOCOL.md does not document", m)
		}
	}
}
