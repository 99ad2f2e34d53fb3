package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"os"
	"os/signal"
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

// command is one entry of the command table, from which newRoot (root.go)
// builds the cobra command tree. run is a builder (the cobra shape: define
// flags, return the body), a legacyRun (the old shape, which parses its own
// flags; doc.go says how to convert one), or nil for a group of subs.
type command struct {
	name, summary string
	run           any
	subs          []command
}

var commands []command

func init() {
	commands = []command{
		{"init", "create a repository", cmdInit, nil},
		{"backup", "back up an export from a file or stdin", cmdBackup, nil},
		{"snapshots", "list snapshots", cmdSnapshots, nil},
		{"streams", "list every stream with its newest snapshot and restorable window", cmdStreams, nil},
		{"stats", "logical and stored bytes, the dedup ratio, and counts of snapshots and segments", cmdStats, nil},
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
			[]command{{"extend", "keep every referenced object immutable for the retention period from now", cmdRetentionExtend, nil}}},
		{"key", "manage passwords and key generations: key add|list|remove|passwd|rotate", nil,
			[]command{{"add", "add a password", cmdKey("add"), nil}, {"list", "list the passwords' keys", cmdKey("list"), nil},
				{"remove", "remove a password's key", cmdKey("remove"), nil}, {"passwd", "change the password in use", cmdKey("passwd"), nil},
				{"rotate", "rotate the encryption keys: a new key generation seals new data; old data stays readable", cmdKeyRotate, nil}}},
		{"status", "grade every stream against its recovery objectives (--policy); exit 0 ok, 1 warning, 2 failure", cmdStatus, nil},
		{"serve", "run the index server: lookups, remote backup and restore, scoped tokens, audit, metrics", cmdServe, nil},
		{"audit", "print the audit trail of writes, restores, refusals and admin actions", cmdAudit, nil},
		{"token", "manage the index server's access tokens: token create|list|revoke", nil,
			[]command{{"create", "create a token and print it", cmdToken("create"), nil}, {"list", "list the tokens' names and scopes", cmdToken("list"), nil},
				{"revoke", "revoke a token", cmdToken("revoke"), nil}}},
		{"get", "print one document of an ndjson stream as it was at an instant", cmdGet, nil},
		{"history", "list every version of one document: time, log position, operation", cmdHistory, nil},
		{"diff", "list the keys added, removed and changed between two instants or snapshots", cmdDiff, nil},
		{"sample", "write example data: an NDJSON export, a day's change events, or the state at an instant", cmdSample, nil},
		{"s3", "the S3-compatible gateway: s3 serve|user|restore", nil, []command{
			{"serve", "serve the repository as an S3-compatible endpoint", cmdS3Serve, nil},
			{"user", "manage the gateway's users: s3 user add|list|remove", nil, []command{
				{"add", "add a user and print its access key and secret", cmdS3User("add"), nil},
				{"list", "list the users", cmdS3User("list"), nil},
				{"remove", "remove a user", cmdS3User("remove"), nil}}},
			{"restore", "write a bucket as it was at an instant into a directory", cmdS3Restore, nil}}},
		{"version", "print the version", cmdVersion, nil},
	}
}

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], osEnvironment()))
}

func cmdVersion(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "")
	asJSON := jsonFlag(fs, `print {"version","format"}`)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *asJSON {
			return writeJSON(env, struct {
				Version string `json:"version"`
				Format  int    `json:"format"`
			}{version, repo.FormatVersion})
		}
		fmt.Fprintf(env.stdout, "strata %s (repository format %d)\n", version, repo.FormatVersion)
		return nil
	}
}

// report prints err and maps it to an exit code.
func report(w io.Writer, cmd string, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	if err.Error() != "" { // the usage itself was printed
		fmt.Fprintf(w, "%s: %v\n", cmd, err)
	}
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
