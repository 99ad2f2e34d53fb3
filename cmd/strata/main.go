package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/shard"
)

// Exit codes (README.md, "Exit codes"): one table, mapped from errors by
// report with errors.Is on the packages' sentinels.
const (
	exitOK            = 0
	exitFailure       = 1   // any other error
	exitUsage         = 2   // bad flags or arguments, no password given, an output refused
	exitDamage        = 3   // an integrity problem: check found damage, or corrupt or tampered data stopped the command
	exitWrongPassword = 4   // wrong password, or a token the server does not know
	exitNoRepository  = 5   // no repository, or one of an unknown format version
	exitForbidden     = 6   // the server's token scopes refuse this (HTTP 403)
	exitNotRestorable = 7   // nothing restorable at what was asked, or an unknown stream
	exitInterrupted   = 130 // SIGINT or SIGTERM ended the command
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// damageError marks a check that found problems.
type damageError struct{ n int }

func (e damageError) Error() string { return fmt.Sprintf("check found %d problem(s)", e.n) }

// command is one entry of the command table. Commands with subcommands
// (key, token, retention) list them in subs and have no run: exec
// dispatches on the first argument, the one way every command is chosen.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *environment, args []string) error
	subs          []command
}

// exec runs c, or the subcommand its first argument names.
func (c command) exec(ctx context.Context, env *environment, args []string) error {
	if c.subs == nil {
		return c.run(ctx, env, args)
	}
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	if len(args) == 0 {
		return usagef("usage: strata %s %s [flags]", c.name, strings.Join(names, "|"))
	}
	for _, s := range c.subs {
		if s.name == args[0] {
			return s.exec(ctx, env, args[1:])
		}
	}
	return usagef("unknown %s command %q: want %s", c.name, args[0], strings.Join(names, "|"))
}

// sub makes the subcommand name of a command whose run takes it.
func sub(name string, run func(ctx context.Context, env *environment, sub string, args []string) error) command {
	return command{name: name, run: func(ctx context.Context, env *environment, args []string) error { return run(ctx, env, name, args) }}
}

var commands []command

func init() {
	commands = []command{
		{"init", "create a repository", cmdInit, nil},
		{"backup", "back up an export from a file or stdin", cmdBackup, nil},
		{"snapshots", "list snapshots", cmdSnapshots, nil},
		{"restore", "restore a snapshot, or a stream at any instant (--at)", cmdRestore, nil},
		{"log", "capture a change-event stream into log segments", cmdLog, nil},
		{"coverage", "print the instants a stream can be restored to, and the gaps", cmdCoverage, nil},
		{"forget", "remove snapshots and old log by policy, keeping a point-in-time window restorable", cmdForget, nil},
		{"prune", "delete data no snapshot or log segment references (two-phase, with a grace period)", cmdPrune, nil},
		{"drill", "restore a stream at a chosen or random instant into a digesting sink or a scratch database, verify its proofs, record the result", cmdDrill, nil},
		{"check", "verify the repository, optionally every byte, and repair from parity", cmdCheck, nil},
		{"scrub", "read the slice of the repository that is due, so every byte is read once per cycle, and repair from parity", cmdScrub, nil},
		{"upgrade", "upgrade a version-1 repository to the current format (metadata copies)", cmdUpgrade, nil},
		{"retention", "retention extend: keep every referenced object immutable for the retention period from now", nil,
			[]command{{name: "extend", run: cmdRetentionExtend}}},
		{"key", "manage passwords: key add|list|remove|passwd|rotate", nil,
			[]command{sub("add", cmdKey), sub("list", cmdKey), sub("remove", cmdKey), sub("passwd", cmdKey), {name: "rotate", run: cmdKeyRotate}}},
		{"status", "grade every stream against its recovery objectives (--policy); exit 0 ok, 1 warning, 2 failure", cmdStatus, nil},
		{"serve", "run the index server: lookups, remote backup and restore, scoped tokens, audit, metrics", cmdServe, nil},
		{"audit", "print the audit trail of writes, restores, refusals and admin actions", cmdAudit, nil},
		{"token", "manage the index server's access tokens: token create|list|revoke", nil,
			[]command{sub("create", cmdToken), sub("list", cmdToken), sub("revoke", cmdToken)}},
		{"get", "print one document of an ndjson stream as it was at an instant", cmdGet, nil},
		{"history", "list every version of one document: time, log position, operation", cmdHistory, nil},
		{"diff", "list the keys added, removed and changed between two instants or snapshots", cmdDiff, nil},
		{"sample", "write example data: an NDJSON export, a day's change events, or the state at an instant", cmdSample, nil},
		{"s3", "the S3-compatible gateway: s3 serve|user|restore", cmdS3, nil},
		{"version", "print the version", func(context.Context, *environment, []string) error {
			fmt.Printf("strata %s (repository format %d)\n", version, repo.FormatVersion)
			return nil
		}, nil},
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
			err := c.exec(ctx, env, args[1:])
			if err != nil && ctx.Err() != nil {
				// Whatever the command made of it, a signal ended it.
				fmt.Fprintf(env.stderr, "strata %s: interrupted: %v\n", c.name, err)
				return exitInterrupted
			}
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
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(w, "strata %s: %v\n", cmd, err)
	return exitCode(err)
}

// exitCode maps an error to its exit code (the table above). Integrity
// comes first: a refusal caused by corrupt data is about the corruption.
func exitCode(err error) int {
	// A command whose outcome is itself a code (status) says which.
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	var ue usageError
	var de damageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &de),
		errors.Is(err, repo.ErrCorrupt),
		errors.Is(err, shard.ErrTooFewShards),
		errors.Is(err, shard.ErrBadShard),
		errors.Is(err, index.ErrUnprovable),
		errors.Is(err, engine.ErrMissingBlob),
		errors.Is(err, engine.ErrReplayMismatch),
		errors.Is(err, repo.ErrProofMismatch):
		return exitDamage
	case errors.Is(err, repo.ErrWrongPassword), errors.Is(err, client.ErrUnauthorized):
		return exitWrongPassword
	case errors.Is(err, repo.ErrNotRepository), errors.Is(err, repo.ErrUnsupportedVersion):
		return exitNoRepository
	case errors.Is(err, client.ErrForbidden):
		return exitForbidden
	case errors.Is(err, index.ErrNotRestorable), errors.Is(err, index.ErrNoSnapshot):
		return exitNotRestorable
	}
	return exitFailure
}
