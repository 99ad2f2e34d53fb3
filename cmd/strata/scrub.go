package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/source"
)

// cmdScrub runs one scrub pass: the slice of packs that is due now, so
// that passes at any spacing (a systemd timer, cron) read the whole
// repository once per --cycle, with the repair check --read-data --repair
// does. Exit 0 when nothing is wrong or everything was repaired, 3 when
// damage remains.
func cmdScrub(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--cycle 30d] [--limit-read MB/s] [--json]")
	location := repoFlag(fs, env)
	cycle := days(ops.DefaultCycle)
	fs.Var(&cycle, "cycle", "read the whole repository once in this long (a Go duration, or days: 30d)")
	limitRead := fs.Float64("limit-read", 0, "read at most this many MB (10⁶ bytes) a second; 0 for no limit")
	asJSON := jsonFlag(fs, "print one JSON object: record (the scrub record stored), packs, notes, repaired, problems, ok")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) != 0:
			return usagef("unexpected arguments %q", args)
		case *limitRead < 0 || math.IsNaN(*limitRead) || math.IsInf(*limitRead, 0):
			return usagef("--limit-read must be a positive number of MB a second, or 0 for no limit")
		case cycle <= 0:
			return usagef("--cycle must be positive")
		}
		st, err := env.openStore(ctx, *location)
		if err != nil {
			return err
		}
		if *limitRead > 0 {
			st = limit.Reads(st, *limitRead*1e6)
		}
		pw, err := env.password(false)
		if err != nil {
			return err
		}
		r, err := repo.Open(ctx, st, pw)
		if err != nil {
			return fmt.Errorf("open %s: %w", *location, err)
		}
		res, err := engine.Scrub(ctx, r, engine.ScrubOptions{Cycle: time.Duration(cycle)})
		if err != nil {
			return err
		}
		rec, rep := res.Record, res.Report
		var damage error
		if len(rep.Problems) > 0 {
			damage = damageError{len(rep.Problems)}
		}
		if *asJSON {
			return errors.Join(writeJSON(env, scrubJSON{Record: rec, Packs: rep.Packs, findings: newFindings(rep.Notes, rep.Repaired, rep.Problems)}), damage)
		}
		next := "the cycle is complete: the next pass starts a new one"
		if rec.Next != "" {
			next = "the next pass starts at pack " + rec.Next[:8]
		}
		fmt.Fprintf(env.stdout, "scrubbed %d of %d packs (%s); %d bad shards, %d rebuilt from parity; %s (cycle of %s started %s)\n",
			rec.PacksRead, rep.Packs, source.HumanBytes(rec.BytesRead), rec.BadShards, rec.Repaired, next,
			days(cycle), rec.CycleStart.Format(time.RFC3339))
		printFindings(env, rep.Notes, rep.Repaired, rep.Problems)
		return damage
	}
}

// scrubJSON is scrub --json's one object (README, "Scrubs"): the record
// the pass stored, the packs in the repository, and the check's findings.
type scrubJSON struct {
	Record *ops.ScrubRecord `json:"record"`
	Packs  int              `json:"packs"`
	findings
}

// days is a duration flag that also takes whole or fractional days ("30d"),
// the unit scrub cycles are thought of in.
type days time.Duration

// String prints whole days as "Nd", anything else as a Go duration.
func (d days) String() string {
	if td := time.Duration(d); td > 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(d).String()
}

// Type names the flag's value in help (pflag.Value).
func (d *days) Type() string { return "duration" }

// Set parses "30d", "1.5d" or a Go duration ("36h").
func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseFloat(n, 64)
		if err != nil || !(v >= 0) || v > 100*365 {
			return errors.New("want a number of days (30d) or a duration (36h)")
		}
		*d = days(time.Duration(v * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a number of days (30d) or a duration (36h)")
	}
	*d = days(v)
	return nil
}
