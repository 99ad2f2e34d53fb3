package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
)

// runFunc is a command's body: it runs after cobra has parsed the flags
// its builder defined, with the positional arguments left over.
type runFunc func(ctx context.Context, args []string) error

// builder defines a command's flags on c (through flagsOf) and returns
// its body. It runs once per invocation of strata, for every command, so it
// MUST only define flags and capture their pointers: no I/O, no errors.
type builder = func(env *environment, c *cobra.Command) runFunc

// legacyRun is the old shape of a command, which parses its own flags
// with newFlags and parse (legacy.go). Such a command still runs, with
// cobra's flag parsing off, until it is converted (doc.go says how).
type legacyRun = func(ctx context.Context, env *environment, args []string) error

// flagsOf sets the usage line of c (its name plus usage) and returns the
// flag set its builder defines flags on.
func flagsOf(c *cobra.Command, usage string) *pflag.FlagSet {
	if usage != "" {
		c.Use += " " + usage
	}
	return c.Flags()
}

// newRoot builds the command tree of one invocation: flags default from
// env (STRATA_REPO), and all output goes to env's writers.
func newRoot(env *environment) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata backs up databases into a deduplicating, encrypted, erasure-coded repository",
		Long: "Strata backs up database exports and change streams into a deduplicating, encrypted,\n" +
			"erasure-coded repository and restores them byte-exact, at any instant.\n\n" +
			"The repository comes from --repo URL or STRATA_REPO; the password from STRATA_PASSWORD,\n" +
			"STRATA_PASSWORD_FILE, or a prompt on a terminal.",
		Version:       fmt.Sprintf("%s (repository format %d)", version, repo.FormatVersion),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noSuchCommand,
		RunE: func(c *cobra.Command, args []string) error {
			// strata alone: the usage, and exit 2 (nothing was asked).
			c.SetOut(env.stderr)
			c.Usage()
			return usageError{}
		},
	}
	root.SetVersionTemplate("strata {{.Version}}\n")
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().BoolVarP(&env.quiet, "quiet", "q", false, "no progress and no summary lines on stderr: only results and errors")
	root.PersistentFlags().BoolVar(&env.verbose, "verbose", false, "more detail on stderr: timings, rates, what was read")
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range commands {
		root.AddCommand(c.cobra(env))
	}
	root.AddCommand(manCommand(env), docsCommand(env))
	var long func(c *cobra.Command)
	long = func(c *cobra.Command) {
		if h := longHelp(strings.TrimPrefix(c.CommandPath(), "strata ")); h != "" {
			c.Long = h
		}
		for _, s := range c.Commands() {
			long(s)
		}
	}
	long(root)
	return root
}

// cobra makes the cobra command of a table entry.
func (cm command) cobra(env *environment) *cobra.Command {
	c := &cobra.Command{Use: cm.name, Short: cm.summary}
	switch run := cm.run.(type) {
	case nil:
		// A group: its subcommands, and a usage error for anything else.
		names := make([]string, len(cm.subs))
		for i, s := range cm.subs {
			c.AddCommand(s.cobra(env))
			names[i] = s.name
		}
		c.Use = cm.name + " " + strings.Join(names, "|")
		c.Args = noSuchCommand
		c.RunE = func(c *cobra.Command, args []string) error {
			return usagef("usage: %s (strata help %s)", c.UseLine(), cm.name)
		}
	case builder:
		body := run(env, c)
		c.RunE = func(c *cobra.Command, args []string) error { return body(c.Context(), args) }
	case legacyRun:
		c.DisableFlagParsing = true
		c.RunE = func(c *cobra.Command, args []string) error { return run(c.Context(), env, args) }
	default:
		panic(fmt.Sprintf("strata %s: run has type %T, want a builder or a legacyRun", cm.name, cm.run))
	}
	return c
}

// noSuchCommand is the Args check of the root and of every group: any
// argument names a command that does not exist, and the error suggests
// the closest ones.
func noSuchCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	what := "command"
	if c.HasParent() {
		what = c.Name() + " command"
	}
	msg := fmt.Sprintf("unknown %s %q", what, args[0])
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default, set only on its own path
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{msg + fmt.Sprintf(" ('%s --help' lists them)", c.CommandPath())}
}

// run is strata's entry point, in process: tests call it with their own
// environment. It returns the exit code (main.go's table).
func run(ctx context.Context, args []string, env *environment) int {
	root := newRoot(env)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	name := "strata"
	if c != nil {
		name = c.CommandPath()
	}
	if err != nil && ctx.Err() != nil {
		// Whatever the command made of it, a signal ended it.
		fmt.Fprintf(env.stderr, "%s: interrupted: %v\n", name, err)
		return exitInterrupted
	}
	return report(env.stderr, name, err)
}

// flagError makes a flag parsing error a usage error, with a hint for the
// one mistake the old flag package allowed: a long flag with one dash.
func flagError(_ *cobra.Command, err error) error {
	msg := err.Error()
	if _, flag, ok := strings.Cut(msg, "unknown shorthand flag: "); ok {
		if _, arg, ok := strings.Cut(flag, " in -"); ok && len(arg) > 1 {
			msg += fmt.Sprintf(" (long flags take two dashes: --%s)", arg)
		}
	}
	return usageError{msg}
}
