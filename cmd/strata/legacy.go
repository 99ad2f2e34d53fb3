package main

import (
	"errors"
	"flag"
	"fmt"
)

// The old shape of a command, kept so that commands written in it still
// build and run (with cobra's flag parsing off) until they are converted:
// see doc.go. New commands use flagsOf and a builder instead.

var errHelp = errors.New("help requested")

// newFlags makes a standard-library flag set that reports errors instead
// of exiting, for a legacyRun command.
func newFlags(env *environment, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: strata %s %s\n\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a legacyRun command's flags: -h is errHelp (exit 0), any
// other error a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	return nil
}

// parseStreamCommand parses a legacyRun command that works on one stream
// and takes no positional arguments.
func parseStreamCommand(fs *flag.FlagSet, args []string, stream *string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	return parseStreamArgs(fs.Args(), stream)
}
