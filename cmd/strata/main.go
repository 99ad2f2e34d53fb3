// Command strata backs up database exports into a deduplicating, encrypted,
// erasure-coded repository and restores them byte-exact. See README.md for
// the command reference. This package only wires flags, environment and
// output to the engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-backup/strata/repo"
)

// Exit codes (README.md, "Exit codes").
const (
	exitOK            = 0
	exitFailure       = 1
	exitUsage         = 2
	exitDamage        = 3 // check found damage that is still there
	exitWrongPassword = 4
	exitNoRepository  = 5 // no repository, or one of an unknown format version
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// damageError marks a check that found problems.
type damageError struct{ n int }

func (e damageError) Error() string { return fmt.Sprintf("check found %d problem(s)", e.n) }

type command struct {
	name, summary string
	run           func(ctx context.Context, env *environment, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"init", "create a repository", cmdInit},
		{"backup", "back up an export from a file or stdin", cmdBackup},
		{"snapshots", "list snapshots", cmdSnapshots},
		{"restore", "restore a snapshot, or a stream at any instant (--at)", cmdRestore},
		{"log", "capture a change-event stream into log segments", cmdLog},
		{"coverage", "print the instants a stream can be restored to, and the gaps", cmdCoverage},
		{"forget", "remove snapshots and old log by policy, keeping a point-in-time window restorable", cmdForget},
		{"prune", "delete data no snapshot or log segment references (two-phase, with a grace period)", cmdPrune},
		{"check", "verify the repository, optionally every byte, and repair from parity", cmdCheck},
		{"retention", "retention extend: keep every referenced object immutable for the retention period from now", cmdRetention},
		{"key", "manage passwords: key add|list|remove|passwd", cmdKey},
		{"serve", "run the index server: lookups, remote backup and restore, scoped tokens, audit, metrics", cmdServe},
		{"audit", "print the audit trail of writes, restores, refusals and admin actions", cmdAudit},
		{"token", "manage the index server's access tokens: token create|list|revoke", cmdToken},
		{"s3", "the S3-compatible gateway: s3 serve|user|restore", cmdS3},
		{"version", "print the version", func(context.Context, *environment, []string) error {
			fmt.Printf("strata %s (repository format %d)\n", version, repo.FormatVersion)
			return nil
		}},
	}
}

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], osEnvironment()))
}

func run(ctx context.Context, args []string, env *environment) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			return report(env.stderr, c.name, err)
		}
	}
	fmt.Fprintf(env.stderr, "strata: unknown command %q\n", args[0])
	printUsage(env.stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: strata COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'strata COMMAND -h' for a command's flags. The repository comes from --repo or STRATA_REPO;\nthe password from STRATA_PASSWORD, STRATA_PASSWORD_FILE, or a prompt on a terminal.")
}

// report prints err and maps it to an exit code.
func report(w io.Writer, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	var de damageError
	switch {
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
		return exitUsage
	case errors.As(err, &de):
		fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
		return exitDamage
	case errors.Is(err, repo.ErrWrongPassword):
		fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
		return exitWrongPassword
	case errors.Is(err, repo.ErrNotRepository), errors.Is(err, repo.ErrUnsupportedVersion):
		fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
		return exitNoRepository
	}
	fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
	return exitFailure
}
