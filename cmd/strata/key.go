package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/repo"
)

// cmdKey runs key add, list, remove or passwd (one builder per subcommand).
func cmdKey(sub string) builder {
	return func(env *environment, c *cobra.Command) runFunc {
		usage := "--repo URL [--json]"
		if sub == "remove" {
			usage = "--repo URL [--json] ID"
		}
		fs := flagsOf(c, usage)
		location := repoFlag(fs, env)
		what := `print {"id"}: the key file added, made or removed`
		if sub == "list" {
			what = `print a JSON array of {"name","id","created","host","user","current"}`
		}
		asJSON := jsonFlag(fs, what)
		// done prints what add, passwd and remove did to key file name.
		done := func(text, name string) error {
			id := name[len(repo.KeysPrefix):]
			if *asJSON {
				return writeJSON(env, struct {
					ID string `json:"id"`
				}{id})
			}
			_, err := fmt.Fprintf(env.stdout, text+"\n", id)
			return err
		}
		return func(ctx context.Context, args []string) error {
			switch sub {
			case "add", "list", "passwd":
				if len(args) != 0 {
					return usagef("unexpected arguments %q", args)
				}
			case "remove":
				if len(args) != 1 {
					return usagef("usage: strata key remove --repo URL ID")
				}
			}
			r, err := openRepo(ctx, env, *location)
			if err != nil {
				return err
			}
			newPassword := func() ([]byte, error) {
				return env.secret("STRATA_NEW_PASSWORD", "STRATA_NEW_PASSWORD_FILE", "new password", true)
			}
			switch sub {
			case "add":
				pw, err := newPassword()
				if err != nil {
					return err
				}
				name, err := r.AddKey(ctx, pw, repo.KDFParams{}, env.host, env.user)
				if err != nil {
					return err
				}
				return done("added key %s", name)
			case "passwd":
				pw, err := newPassword()
				if err != nil {
					return err
				}
				name, err := r.ChangePassword(ctx, pw, repo.KDFParams{}, env.host, env.user)
				if err != nil {
					return err
				}
				return done("password changed: key %s replaces the old one", name)
			case "remove":
				name, err := r.RemoveKey(ctx, args[0])
				if err != nil {
					return err
				}
				return done("removed key %s", name)
			case "list":
				keys, err := r.ListKeys(ctx)
				if err != nil && !errors.Is(err, repo.ErrCorrupt) {
					return err
				}
				// Damaged key files are reported (exit 1) after the intact ones are listed.
				damage := err
				if *asJSON {
					if keys == nil {
						keys = []repo.KeyInfo{}
					}
					if err := writeJSON(env, keys); err != nil {
						return err
					}
					return damage
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, " \tID\tCREATED\tUSER\tHOST")
				for _, k := range keys {
					cur := " "
					if k.Current {
						cur = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, k.ID[:16], k.Created.Format(time.RFC3339), printable(k.User), printable(k.Host))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return damage
			}
			return nil
		}
	}
}
