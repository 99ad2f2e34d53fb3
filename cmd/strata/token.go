package main

import (
	"context"
	"fmt"
	"github.com/spf13/cobra"
	"text/tabwriter"

	"github.com/strata-backup/strata/server/auth"
)

// cmdToken manages the tokens file of the index server (strata serve). It
// never opens the repository: the file is the server's, not the
// repository's.
func cmdToken(sub string) builder {
	return func(env *environment, c *cobra.Command) runFunc {
		flagUsage := "--tokens FILE --name NAME"
		switch sub {
		case "create":
			flagUsage = "--tokens FILE --name NAME --scope SCOPE[,SCOPE]"
		case "list":
			flagUsage = "--tokens FILE"
		}
		flagUsage += " [--json]"
		fs := flagsOf(c, flagUsage)
		path := fs.String("tokens", "", "the server's tokens `file` (required)")
		var name, scopeText *string
		if sub != "list" {
			name = fs.String("name", "", "token `name`: 1 to 64 of [A-Za-z0-9._-] (required)")
		}
		what := `print a JSON array of {"name","scopes":[...]}`
		switch sub {
		case "create":
			what = `print {"name","token","scopes":[...]} (the token is shown only this once)`
		case "revoke":
			what = `print {"name"}: the token revoked`
		}
		asJSON := jsonFlag(fs, what)
		if sub == "create" {
			scopeText = fs.String("scope", "", "comma-separated `scopes`: read, backup:GLOB, restore:GLOB, admin (required);\n"+
				"GLOB matches stream names, '*' any run including '/', '?' one character but '/'")
		}
		return func(ctx context.Context, args []string) error {
			if len(args) != 0 {
				return usagef("unexpected arguments %q", args)
			}
			if *path == "" {
				return usagef("--tokens is required")
			}
			if name != nil {
				if *name == "" {
					return usagef("--name is required")
				}
				if err := auth.ValidName(*name); err != nil {
					return usageError{err.Error()}
				}
			}

			switch sub {
			case "create":
				if *scopeText == "" {
					return usagef("--scope is required, for example --scope read,backup:shop/*")
				}
				scopes, err := auth.ParseScopes(*scopeText)
				if err != nil {
					return usageError{err.Error()}
				}
				token, err := auth.Create(*path, *name, scopes)
				if err != nil {
					return err
				}
				// stdout carries the token alone, so scripts can capture it; the
				// reminder goes to stderr.
				if *asJSON {
					if err := writeJSON(env, tokenJSON{Name: *name, Token: token, Scopes: scopeStrings(scopes)}); err != nil {
						return err
					}
				} else {
					fmt.Fprintln(env.stdout, token)
				}
				fmt.Fprintf(env.stderr, "created token %q with scopes %s. It is shown only this once: the file keeps only its hash.\n"+
					"A running server accepts it after it reloads the file (SIGHUP).\n", *name, auth.FormatScopes(scopes))
			case "list":
				s, err := auth.LoadFile(*path)
				if err != nil {
					return err
				}
				if *asJSON {
					list := []tokenJSON{}
					for _, id := range s.Identities() {
						list = append(list, tokenJSON{Name: id.Name, Scopes: scopeStrings(id.Scopes)})
					}
					return writeJSON(env, list)
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSCOPES")
				for _, id := range s.Identities() {
					fmt.Fprintf(tw, "%s\t%s\n", id.Name, auth.FormatScopes(id.Scopes))
				}
				return tw.Flush()
			case "revoke":
				if err := auth.Revoke(*path, *name); err != nil {
					return err
				}
				if *asJSON {
					if err := writeJSON(env, tokenJSON{Name: *name}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(env.stdout, "revoked token %q\n", *name)
				}
				fmt.Fprintln(env.stderr, "A running server keeps accepting it until it reloads the file (SIGHUP).")
			}
			return nil
		}
	}
}

// tokenJSON is a token in token --json: create adds the token itself,
// revoke gives only the name.
type tokenJSON struct {
	Name   string   `json:"name"`
	Token  string   `json:"token,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

func scopeStrings(scopes []auth.Scope) []string {
	out := []string{}
	for _, sc := range scopes {
		out = append(out, sc.String())
	}
	return out
}
