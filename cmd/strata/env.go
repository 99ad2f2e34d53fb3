package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime/debug"

	"golang.org/x/term"

	"github.com/strata-backup/strata/repo"
)

// environment is everything a command reads from outside its flags, so tests
// can run commands in-process.
type environment struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	// stderrTTY: progress goes to stderr only on a terminal.
	stderrTTY bool
	// stdoutTTY: restore refuses to write to a terminal.
	stdoutTTY bool
	// prompt asks for a password on the terminal; nil when there is none.
	prompt func(msg string) ([]byte, error)
	host   string
	user   string
	// quiet (--quiet) drops progress and summaries; verbose (--verbose)
	// adds detail lines. Root's persistent flags set them.
	quiet, verbose bool
}

func osEnvironment() *environment {
	host, _ := os.Hostname()
	u := ""
	if cu, err := user.Current(); err == nil {
		u = cu.Username
	}
	env := &environment{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())), stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())), host: host, user: u}
	// Prompt on the controlling terminal, not stdin: stdin may carry the export.
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil && term.IsTerminal(int(tty.Fd())) {
		env.prompt = func(msg string) ([]byte, error) {
			fmt.Fprint(tty, msg)
			pw, err := term.ReadPassword(int(tty.Fd()))
			fmt.Fprintln(tty)
			return pw, err
		}
	}
	return env
}

// parseStreamArgs checks, after cobra parsed the flags, a command that
// works on one stream and takes no positional arguments: --stream, then
// that nothing is left.
func parseStreamArgs(args []string, stream *string) error {
	if err := checkStream(*stream); err != nil {
		return err
	}
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	return nil
}

// stringFlagger is what both flag sets, the standard library's (legacy
// commands) and pflag's, offer for the shared flag helpers below.
type stringFlagger interface {
	String(name, value, usage string) *string
}

// streamFlag registers --stream; checkStream requires and validates it.
func streamFlag[F stringFlagger](fs F) *string {
	return fs.String("stream", "", "stream `name`, for example shop/users (required)")
}

func checkStream(stream string) error {
	if stream == "" {
		return usagef("--stream is required")
	}
	if err := repo.ValidStream(stream); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// repoFlag registers --repo, defaulting to STRATA_REPO.
func repoFlag[F stringFlagger](fs F, env *environment) *string {
	return fs.String("repo", env.getenv("STRATA_REPO"), "repository `URL`: a directory, s3://BUCKET, or http(s)://HOST:PORT of a strata server (token from STRATA_TOKEN) (default $STRATA_REPO)")
}

// password reads the repository password from STRATA_PASSWORD,
// STRATA_PASSWORD_FILE, or the terminal, in that order. Never from a flag:
// flags show up in process listings and shell history.
func (env *environment) password(confirm bool) ([]byte, error) {
	return env.secret("STRATA_PASSWORD", "STRATA_PASSWORD_FILE", "repository password", confirm)
}

// readSecretFile reads a password from the first line of file f; what
// names where f came from in errors, which are usage errors (exit 2).
func readSecretFile(what, f string) ([]byte, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		// No password given is a usage error (exit 2), as README says.
		return nil, usagef("read %s: %v", what, err)
	}
	// A password file conventionally ends with one newline; only the first line counts.
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, usagef("%s %s: the first line is empty", what, f)
	}
	return line, nil
}

func (env *environment) secret(varName, fileVar, what string, confirm bool) ([]byte, error) {
	if pw := env.getenv(varName); pw != "" {
		return []byte(pw), nil
	}
	if f := env.getenv(fileVar); f != "" {
		return readSecretFile(fileVar, f)
	}
	if env.prompt == nil {
		return nil, usagef("no %s: set %s or %s (no terminal to prompt on)", what, varName, fileVar)
	}
	pw, err := env.prompt("Enter " + what + ": ")
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	if confirm {
		again, err := env.prompt("Enter " + what + " again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("passwords do not match")
		}
	}
	return pw, nil
}

// openRepo opens the repository at location with the password.
func openRepo(ctx context.Context, env *environment, location string) (*repo.Repository, error) {
	s, err := env.openStore(ctx, location)
	if err != nil {
		return nil, err
	}
	pw, err := env.password(false)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, s, pw)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	// argon2id's 64 MiB arena is garbage now: hand it back to the OS before
	// the real work, so it does not count twice towards peak memory.
	debug.FreeOSMemory()
	return r, nil
}

// logf writes one note line to stderr; it is the Logf the CLI hands the
// engine and the sources.
func (env *environment) logf(format string, args ...any) {
	fmt.Fprintf(env.stderr, format+"\n", args...)
}
