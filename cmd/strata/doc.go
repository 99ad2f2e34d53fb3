// Command strata backs up database exports into a deduplicating, encrypted,
// erasure-coded repository and restores them byte-exact. See README.md for
// the command reference. This package only wires flags, environment and
// output to the engine.
//
// # Commands
//
// The command table in main.go names every command; newRoot (root.go)
// builds the spf13/cobra tree from it once per invocation, so flag
// defaults (STRATA_REPO) and output (env.stdout, env.stderr) come from the
// environment run is given, and tests run commands in process. Cobra gives
// help (strata help CMD, CMD --help), --version, "did you mean", flags
// after positional arguments, shell completion and man pages. Errors go
// back through report and exitCode (main.go): the one exit-code table.
//
// A command is a builder: it defines its flags on the command it is given
// and returns its body, which cobra calls with the positional arguments:
//
//	func cmdX(env *environment, c *cobra.Command) runFunc {
//		fs := flagsOf(c, "--repo URL --stream NAME [--json]") // the usage line
//		location := repoFlag(fs, env)
//		stream := streamFlag(fs)
//		asJSON := jsonFlag(fs, "print ...")
//		return func(ctx context.Context, args []string) error {
//			if err := parseStreamArgs(args, stream); err != nil {
//				return err
//			}
//			...
//		}
//	}
//
// # Converting an old-style command
//
// A command in the old shape, func(ctx, env, args) error with newFlags and
// parse at its top (legacy.go), still builds and runs: the table accepts it
// as a legacyRun and turns cobra's flag parsing off for it. Converting it
// is mechanical:
//
//   - the signature becomes func cmdX(env *environment, c *cobra.Command) runFunc;
//   - fs := newFlags(env, "x", USAGE) becomes fs := flagsOf(c, USAGE);
//   - the flag definitions stay as they are (repoFlag and streamFlag take
//     either flag set; a flag.Value needs a Type method for pflag);
//   - if err := parse(fs, args); err != nil { return err } becomes
//     return func(ctx context.Context, args []string) error {, closed by a }
//     before the function's own (gofmt reindents);
//   - parseStreamCommand(fs, args, stream) becomes parseStreamArgs(args, stream);
//   - fs.NArg(), fs.Arg(i), fs.Args() become len(args), args[i], args;
//   - a command with subcommands gets one builder per subcommand
//     (cmdKey("add"), ...) and a nil run with subs in the table;
//   - its --json uses jsonFlag and writeJSON (output.go) with a documented
//     shape, and go generate ./cmd/strata refreshes README's reference.
//
// # Output
//
// Results go to env.stdout, notes and progress to env.stderr, never to
// os.Stdout. --json prints one indented document (an array for listings)
// or, for streams of records (audit, log events), NDJSON: README's "JSON
// output" lists each command's shape.
package main
