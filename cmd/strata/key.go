package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/repo"
)

// cmdKey runs key add, list, remove or passwd (dispatched by command.exec).
func cmdKey(ctx context.Context, env *environment, sub string, args []string) error {
	const usage = "add|list|remove ID|passwd --repo DIR"
	fs := newFlags(env, "key "+sub, "--repo DIR")
	location := repoFlag(fs, env)
	asJSON := false
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	switch sub {
	case "add", "list", "passwd":
		if fs.NArg() != 0 {
			return usagef("unexpected arguments %q", fs.Args())
		}
	case "remove":
		if fs.NArg() != 1 {
			return usagef("usage: strata key remove --repo DIR ID")
		}
	default:
		return usagef("unknown key command %q: want %s", sub, usage)
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
		fmt.Fprintf(env.stdout, "added key %s\n", name[len(repo.KeysPrefix):])
	case "passwd":
		pw, err := newPassword()
		if err != nil {
			return err
		}
		name, err := r.ChangePassword(ctx, pw, repo.KDFParams{}, env.host, env.user)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "password changed: key %s replaces the old one\n", name[len(repo.KeysPrefix):])
	case "remove":
		name, err := r.RemoveKey(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "removed key %s\n", name[len(repo.KeysPrefix):])
	case "list":
		keys, err := r.ListKeys(ctx)
		if err != nil && !errors.Is(err, repo.ErrCorrupt) {
			return err
		}
		// Damaged key files are reported (exit 1) after the intact ones are listed.
		damage := err
		if asJSON {
			if err := json.NewEncoder(env.stdout).Encode(keys); err != nil {
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
