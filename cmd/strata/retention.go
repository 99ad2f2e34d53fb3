package main

import (
	"context"
	"errors"
	"github.com/spf13/cobra"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// layoutOf reads the repository's store layout; nil when it has none.
func layoutOf(ctx context.Context, r *repo.Repository) (*repo.Layout, error) {
	b, err := r.Store().Get(ctx, repo.LayoutName)
	if errors.Is(err, repo.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return repo.DecodeLayout(b)
}

// extendRetention pushes the retention of everything still referenced to
// now + the repository's retention (engine.RetainReferenced). It does
// nothing for a repository without retention or opened through a server
// (retention is the storage's: the operator extends it where the store is).
func extendRetention(ctx context.Context, env *environment, r *repo.Repository) error {
	rep, done, err := engine.RetainReferenced(ctx, r)
	if err != nil || !done {
		return err
	}
	rep.Log(env.logf)
	return nil
}

// cmdRetentionExtend runs retention extend.
func cmdRetentionExtend(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--json]")
	location := repoFlag(fs, env)
	asJSON := jsonFlag(fs, `print {"objects","until","mode","missing":[...]}`)
	return func(ctx context.Context, args []string) error {
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		if err := localOnly(r, "retention extend"); err != nil {
			return err
		}
		l, err := layoutOf(ctx, r)
		if err != nil {
			return err
		}
		if l == nil || l.RetentionPeriod() <= 0 {
			return usagef("this repository was created without --retention")
		}
		if !*asJSON {
			return extendRetention(ctx, env, r)
		}
		rep, _, err := engine.RetainReferenced(ctx, r)
		if err != nil {
			return err
		}
		return writeJSON(env, struct {
			Objects int       `json:"objects"`
			Until   time.Time `json:"until"`
			Mode    string    `json:"mode"`
			Missing []string  `json:"missing"`
		}{rep.Objects, rep.Until.UTC(), rep.Mode, append([]string{}, rep.Missing...)})
	}
}
