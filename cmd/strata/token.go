package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/strata-backup/strata/server/auth"
)

// cmdToken manages the tokens file of the index server (strata serve). It
// never opens the repository: the file is the server's, not the
// repository's.
func cmdToken(_ context.Context, env *environment, sub string, args []string) error {
	const usage = "create|list|revoke --tokens FILE [--name NAME] [--scope SCOPES]"
	var flagUsage string
	switch sub {
	case "create":
		flagUsage = "--tokens FILE --name NAME --scope SCOPE[,SCOPE]"
	case "list":
		flagUsage = "--tokens FILE [--json]"
	case "revoke":
		flagUsage = "--tokens FILE --name NAME"
	default:
		return usagef("unknown token command %q: want %s", sub, usage)
	}
	fs := newFlags(env, "token "+sub, flagUsage)
	path := fs.String("tokens", "", "the server's tokens `file` (required)")
	var name, scopeText *string
	if sub != "list" {
		name = fs.String("name", "", "token `name`: 1 to 64 of [A-Za-z0-9._-] (required)")
	}
	asJSON := new(bool)
	if sub == "list" {
		asJSON = fs.Bool("json", false, `print a JSON array of {"name","scopes":[...]}`)
	}
	if sub == "create" {
		scopeText = fs.String("scope", "", "comma-separated `scopes`: read, backup:GLOB, restore:GLOB, admin (required);\n"+
			"GLOB matches stream names, '*' any run including '/', '?' one character but '/'")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
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
		fmt.Fprintln(env.stdout, token)
		fmt.Fprintf(env.stderr, "created token %q with scopes %s. It is shown only this once: the file keeps only its hash.\n"+
			"A running server accepts it after it reloads the file (SIGHUP).\n", *name, auth.FormatScopes(scopes))
	case "list":
		s, err := auth.LoadFile(*path)
		if err != nil {
			return err
		}
		if *asJSON {
			type tokenJSON struct {
				Name   string   `json:"name"`
				Scopes []string `json:"scopes"`
			}
			list := []tokenJSON{}
			for _, id := range s.Identities() {
				t := tokenJSON{Name: id.Name, Scopes: []string{}}
				for _, sc := range id.Scopes {
					t.Scopes = append(t.Scopes, sc.String())
				}
				list = append(list, t)
			}
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
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
		fmt.Fprintf(env.stdout, "revoked token %q\n", *name)
		fmt.Fprintln(env.stderr, "A running server keeps accepting it until it reloads the file (SIGHUP).")
	}
	return nil
}
