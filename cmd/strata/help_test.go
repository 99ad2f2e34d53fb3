package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command and subcommand answers CMD --help, CMD -h and strata help
// CMD with its usage, on stdout, exit 0.
func TestHelpForEveryCommand(t *testing.T) {
	c := newCLI(t)
	var paths [][]string
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.HasParent() {
			paths = append(paths, strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "strata ")))
		}
		for _, s := range cmd.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&environment{getenv: func(string) string { return "" }}))
	if len(paths) < 30 {
		t.Fatalf("%d commands in the tree", len(paths))
	}
	for _, p := range paths {
		for _, args := range [][]string{append(p, "--help"), append(p, "-h"), append([]string{"help"}, p...)} {
			code, out, errs := c.run(nil, append([]string(nil), args...)...)
			if code != exitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "strata "+strings.Join(p, " ")) {
				t.Errorf("strata %v: exit %d\n%s%s", args, code, out, errs)
			}
		}
	}
}

// Typos get a usage error (exit 2) that names the command meant, at the
// top and in groups; a single-dash long flag is named as such.
func TestDidYouMean(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bakup"}, "did you mean backup?"},
		{[]string{"snapshot"}, "did you mean snapshots?"},
		{[]string{"key", "ad"}, "did you mean add?"},
		{[]string{"token", "lst"}, "did you mean list?"},
		{[]string{"s3", "user", "remve"}, "did you mean remove?"},
		{[]string{"retention", "extnd"}, "did you mean extend?"},
		{[]string{"snapshots", "-repo", "x"}, "long flags take two dashes: --repo"},
		{[]string{"snapshots", "--rpo", "x"}, "unknown flag: --rpo"},
	} {
		code, out, errs := c.run(nil, tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("strata %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
	if code, _, errs := c.run(nil); code != exitUsage || !strings.Contains(errs, "Available Commands") {
		t.Errorf("strata alone: exit %d\n%s", code, errs)
	}
	if code, out, _ := c.run(nil, "--version"); code != exitOK || !strings.HasPrefix(out, "strata ") {
		t.Errorf("strata --version: exit %d %q", code, out)
	}
}

// Flags may follow positional arguments, and - is standard input.
func TestFlagsAfterArgumentsAndStdin(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	file := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(file, genNDJSON(50, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok(nil, "backup", file, "--stream", "after", "--format", "ndjson")
	c.ok(genNDJSON(50, 2), "backup", "-", "--stream", "dash")
	out := c.ok(nil, "snapshots", "--json")
	for _, s := range []string{`"stream": "after"`, `"stream": "dash"`} {
		if !strings.Contains(out, s) {
			t.Errorf("snapshots: no %s\n%s", s, out)
		}
	}
	if code, _, errs := c.run(genNDJSON(5, 3), "backup", "-", "--stdin", "--stream", "x"); code != exitUsage {
		t.Errorf("backup - --stdin: exit %d (%s)", code, errs)
	}
}

// strata completion writes scripts for bash, zsh and fish; strata man DIR
// writes a page per command.
func TestCompletionAndMan(t *testing.T) {
	c := newCLI(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := c.ok(nil, "completion", sh); !strings.Contains(out, "strata") || len(out) < 1000 {
			t.Errorf("completion %s: %.200s", sh, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "man")
	c.ok(nil, "man", dir)
	for _, page := range []string{"strata.1", "strata-backup.1", "strata-key-add.1", "strata-s3-user-list.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(b), ".TH") {
			t.Errorf("man page %s: %v", page, err)
		}
	}
}

// README's command reference is what the command tree generates: change a
// command, its flags or cmd/strata/help/, then run go generate ./cmd/strata.
func TestReadmeReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := replaceReference(readme, reference(newRoot(&environment{getenv: func(string) string { return "" }})))
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(readme) {
		t.Fatal("README.md's command reference differs from the command tree: run go generate ./cmd/strata")
	}
	// Every command with prose in help/ exists, so none is left behind.
	entries, err := helpFiles.ReadDir("help")
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot(&environment{getenv: func(string) string { return "" }})
	for _, e := range entries {
		path := strings.Fields(strings.ReplaceAll(strings.TrimSuffix(e.Name(), ".md"), "-", " "))
		if c, rest, err := root.Find(path); err != nil || len(rest) != 0 || c == root {
			t.Errorf("help/%s names no command", e.Name())
		}
	}
}

// A command in the old shape (legacy.go) still runs, with its own flag
// parsing, until the lead converts it: what other branches add this round.
func TestLegacyCommand(t *testing.T) {
	saved := commands
	t.Cleanup(func() { commands = saved })
	var got []string
	var stream *string
	legacy := func(ctx context.Context, env *environment, args []string) error {
		fs := newFlags(env, "old", "--stream NAME ARG")
		stream = streamFlag(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		got = fs.Args()
		return nil
	}
	commands = append(append([]command(nil), saved...), command{"old", "an old-style command", legacy, nil})
	c := newCLI(t)
	c.ok(nil, "old", "--stream", "s", "arg")
	if *stream != "s" || len(got) != 1 || got[0] != "arg" {
		t.Fatalf("legacy command: stream %q, args %q", *stream, got)
	}
	if code, _, errs := c.run(nil, "old", "-h"); code != exitOK || !strings.Contains(errs, "usage: strata old") {
		t.Errorf("old -h: exit %d\n%s", code, errs)
	}
	if code, _, _ := c.run(nil, "old", "--nope"); code != exitUsage {
		t.Errorf("old --nope: exit %d", code)
	}
}
