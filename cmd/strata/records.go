package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
	"github.com/strata-backup/strata/source/ndjson"
)

// Record-level commands: get, history, diff, and restore's --key-prefix and
// --keys-from. The logic is in source/ndjson; this file wires flags and
// output.

// errKeyNotFound: get found no document with the key at the instant.
var errKeyNotFound = errors.New("no such document")

// recordsCatalog opens the repository and loads the stream's catalog.
func recordsCatalog(ctx context.Context, env *environment, location, stream string) (*repo.Repository, *index.Catalog, error) {
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return nil, nil, err
	}
	cat, err := index.LoadStreamCatalog(ctx, r, stream)
	if cat == nil {
		return nil, nil, err
	}
	if err = index.ErrorsFor(err, stream); err != nil {
		// The snapshot that failed may be the newest: answering from an
		// older one would be a wrong answer reported as success.
		return nil, nil, fmt.Errorf("refusing to read %s: %w; a snapshot that fails verification may be its newest (run 'strata check')", stream, err)
	}
	return r, cat, nil
}

// latest returns the newest instant the stream can be restored to.
func latest(cat *index.Catalog, stream string) (index.Target, error) {
	cov := cat.Coverage(stream)
	if len(cov.Windows) == 0 {
		return index.Target{}, fmt.Errorf("%w: stream %q has no snapshot", index.ErrNotRestorable, stream)
	}
	return index.Target{Time: cov.Windows[len(cov.Windows)-1].To}, nil
}

// instant resolves TIME|SNAPSHOT to a plan: a time plans a point-in-time
// restore; anything else names a snapshot (ID or prefix), taken alone.
func instant(cat *index.Catalog, stream, s string) (*index.Plan, error) {
	if t, err := index.ParseTime(s); err == nil {
		return cat.Plan(stream, index.Target{Time: t})
	}
	snap, err := cat.Find(stream, s)
	if err != nil {
		return nil, usagef("%q is neither a time (RFC 3339 or unix seconds) nor a snapshot of %s: %v", s, stream, err)
	}
	return snapshotPlan(snap), nil
}

// snapshotPlan is a plan that applies no events: the snapshot as it is. By
// its position when it has one, since a plan at its time would also apply
// later events that carry the same time.
func snapshotPlan(s index.SnapshotRef) *index.Plan {
	p := &index.Plan{Stream: s.Stream, Target: index.Target{Time: s.Time}, Base: s}
	if s.Position != nil {
		p.From = *s.Position + 1
		p.Target = index.Target{Position: *s.Position, ByPos: true}
	}
	return p
}

func keyFlagOK(k string) error {
	if k == "" {
		return usagef("--key is required")
	}
	if len(k) > repo.MaxEventKey {
		return usagef("--key of %d bytes, over the limit %d", len(k), repo.MaxEventKey)
	}
	return nil
}

type versionJSON struct {
	Time     string          `json:"time"`
	Position uint64          `json:"position"`
	Op       string          `json:"op"`
	Doc      json.RawMessage `json:"doc"`
}

func versionOf(v ndjson.Version) versionJSON {
	j := versionJSON{Time: index.FormatTime(v.Time), Position: v.Position, Op: v.Op, Doc: json.RawMessage("null")}
	if v.Doc != nil && json.Valid(v.Doc) {
		j.Doc = v.Doc
	} else if v.Doc != nil {
		b, _ := json.Marshal(string(v.Doc)) // a document that is not JSON still prints, as a string
		j.Doc = b
	}
	return j
}

func cmdGet(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME --key K [--at TIME] [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	key := fs.String("key", "", "the document's key (the value of the snapshot's key field, _id by default) (required)")
	at := fs.String("at", "", "the instant: RFC 3339 or unix seconds (default: the newest restorable instant)")
	asJSON := jsonFlag(fs, `print {"stream","key","at","found","doc","version":{"time","position","op"}}`)
	return func(ctx context.Context, args []string) error {
		if err := parseStreamArgs(args, stream); err != nil {
			return err
		}
		if err := keyFlagOK(*key); err != nil {
			return err
		}
		var target *index.Target
		if *at != "" {
			t, err := index.ParseTime(*at)
			if err != nil {
				return usageError{err.Error()}
			}
			target = &index.Target{Time: t}
		}
		r, cat, err := recordsCatalog(ctx, env, *location, *stream)
		if err != nil {
			return err
		}
		if target == nil {
			t, err := latest(cat, *stream)
			if err != nil {
				return err
			}
			target = &t
		}
		p, err := cat.Plan(*stream, *target)
		if err != nil {
			return err
		}
		res, err := ndjson.Get(ctx, r, p, []byte(*key))
		if err != nil {
			return err
		}
		if *asJSON {
			out := struct {
				Stream  string          `json:"stream"`
				Key     string          `json:"key"`
				At      string          `json:"at"`
				Found   bool            `json:"found"`
				Doc     json.RawMessage `json:"doc"`
				Version *versionJSON    `json:"version,omitempty"`
			}{Stream: *stream, Key: *key, At: index.FormatTime(target.Time), Found: res.Found, Doc: json.RawMessage("null")}
			if res.Found || res.Version.Op == ndjson.OpDelete {
				v := versionOf(res.Version)
				out.Version, out.Doc = &v, v.Doc
			}
			if err := json.NewEncoder(env.stdout).Encode(out); err != nil {
				return err
			}
		} else if res.Found {
			if _, err := fmt.Fprintf(env.stdout, "%s\n", res.Doc); err != nil {
				return err
			}
		}
		if !res.Found {
			why := "not in the base snapshot and no event created it"
			if res.Version.Op == ndjson.OpDelete {
				why = fmt.Sprintf("deleted at %s (position %d)", index.FormatTime(res.Version.Time), res.Version.Position)
			}
			return fmt.Errorf("%w: %q in %s at %s: %s", errKeyNotFound, *key, *stream, index.FormatTime(target.Time), why)
		}
		return nil
	}
}

func cmdHistory(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME --key K [--since TIME] [--until TIME] [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	key := fs.String("key", "", "the document's key (required)")
	sinceS := fs.String("since", "", "first instant: the version in effect then, and every change after (default: the oldest snapshot the log continues)")
	untilS := fs.String("until", "", "last instant, inclusive (default: the newest restorable instant)")
	asJSON := jsonFlag(fs, `print an array of {"time","position","op","doc"}`)
	return func(ctx context.Context, args []string) error {
		if err := parseStreamArgs(args, stream); err != nil {
			return err
		}
		if err := keyFlagOK(*key); err != nil {
			return err
		}
		var since, until time.Time
		for _, f := range []struct {
			s   string
			dst *time.Time
		}{{*sinceS, &since}, {*untilS, &until}} {
			if f.s == "" {
				continue
			}
			t, err := index.ParseTime(f.s)
			if err != nil {
				return usageError{err.Error()}
			}
			*f.dst = t
		}
		if !since.IsZero() && !until.IsZero() && until.Before(since) {
			return usagef("--until is before --since")
		}
		r, cat, err := recordsCatalog(ctx, env, *location, *stream)
		if err != nil {
			return err
		}
		target := index.Target{Time: until}
		if until.IsZero() {
			if target, err = latest(cat, *stream); err != nil {
				return err
			}
		}
		p, err := historyPlan(cat, *stream, since, target)
		if err != nil {
			return err
		}
		vs, err := ndjson.History(ctx, r, p, []byte(*key), since)
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]versionJSON, 0, len(vs))
			for _, v := range vs {
				out = append(out, versionOf(v))
			}
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		if len(vs) == 0 {
			fmt.Fprintf(env.stderr, "%q has no version in %s from %s to %s\n", *key, *stream, index.FormatTime(p.Base.Time), target)
			return nil
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tPOSITION\tOP\tDOCUMENT")
		for _, v := range vs {
			doc := string(v.Doc)
			if v.Doc == nil {
				doc = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", index.FormatTime(v.Time), v.Position, v.Op, doc)
		}
		return tw.Flush()
	}
}

// historyPlan reads the log from the base in effect at since, or without
// since from the oldest snapshot whose log reaches the target, so history
// sees as many versions as the repository holds.
func historyPlan(cat *index.Catalog, stream string, since time.Time, t index.Target) (*index.Plan, error) {
	if !since.IsZero() {
		ps, err := cat.Plan(stream, index.Target{Time: since})
		if err != nil {
			return nil, err
		}
		return cat.PlanFrom(stream, ps.Base, t)
	}
	for _, s := range cat.Stream(stream) {
		if s.Position == nil {
			continue
		}
		if p, err := cat.PlanFrom(stream, s, t); err == nil {
			return p, nil
		}
	}
	return cat.Plan(stream, t)
}

func cmdDiff(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME --from TIME|SNAPSHOT --to TIME|SNAPSHOT [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	from := fs.String("from", "", "the earlier state: a time (RFC 3339 or unix seconds) or a snapshot ID (prefix) (required)")
	to := fs.String("to", "", "the later state, as --from (required)")
	asJSON := jsonFlag(fs, `print NDJSON, one {"key","change"} a line; change is added, removed or changed`)
	return func(ctx context.Context, args []string) error {
		if err := checkStream(*stream); err != nil {
			return err
		}
		if *from == "" || *to == "" || len(args) != 0 {
			return usagef("give --from and --to, and no arguments")
		}
		r, cat, err := recordsCatalog(ctx, env, *location, *stream)
		if err != nil {
			return err
		}
		pf, err := instant(cat, *stream, *from)
		if err != nil {
			return err
		}
		pt, err := instant(cat, *stream, *to)
		if err != nil {
			return err
		}
		bw := newBufferedWriter(env.stdout)
		counts := map[string]int{}
		enc := json.NewEncoder(bw)
		sign := map[string]string{ndjson.Added: "+", ndjson.Removed: "-", ndjson.Changed: "~"}
		err = ndjson.Diff(ctx, r, pf, pt, func(e ndjson.DiffEntry) error {
			counts[e.Change]++
			if *asJSON {
				return enc.Encode(struct {
					Key    string `json:"key"`
					Change string `json:"change"`
				}{string(e.Key), e.Change})
			}
			_, err := fmt.Fprintf(bw, "%s %s\n", sign[e.Change], e.Key)
			return err
		})
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "diff %s: %s → %s: %d added, %d removed, %d changed\n", *stream, pf.Target, pt.Target, counts[ndjson.Added], counts[ndjson.Removed], counts[ndjson.Changed])
		return nil
	}
}

// partialRestore is restore's hook for --key-prefix and --keys-from: it
// restores only the chosen documents, of a snapshot (target nil) or at an
// instant.
type partialRestore struct {
	location, stream, snapID string
	target                   *index.Target
	prefix, keysFrom, to     string
}

func (pr partialRestore) run(ctx context.Context, env *environment) error {
	if pr.prefix != "" && pr.keysFrom != "" {
		return usagef("give --key-prefix or --keys-from, not both")
	}
	if pr.target != nil && pr.snapID != "" {
		return usagef("--snapshot and --at/--at-position exclude each other: the plan picks the snapshot")
	}
	sel := ndjson.Selector{Prefix: []byte(pr.prefix)}
	if pr.keysFrom != "" {
		keys, err := readKeys(env, pr.keysFrom)
		if err != nil {
			return err
		}
		sel = ndjson.Selector{Keys: keys}
	}
	r, cat, err := recordsCatalog(ctx, env, pr.location, pr.stream)
	if err != nil {
		return err
	}
	var p *index.Plan
	switch {
	case pr.target != nil:
		p, err = cat.Plan(pr.stream, *pr.target)
	case pr.snapID != "":
		var s index.SnapshotRef
		if s, err = cat.Find(pr.stream, pr.snapID); err == nil {
			p = snapshotPlan(s)
		}
	default:
		var s index.SnapshotRef
		if s, err = cat.Latest(pr.stream); err == nil {
			p = snapshotPlan(s)
		}
	}
	if err != nil {
		return err
	}
	start := time.Now()
	var st ndjson.RestoreStats
	var n int64
	write := func(w io.Writer) error {
		cw := &countWriter{w: w}
		var err error
		st, err = ndjson.RestoreSelected(ctx, r, p, sel, cw)
		n = cw.n
		return err
	}
	if pr.to == "-" {
		bw := newBufferedWriter(env.stdout)
		err = write(bw)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	} else {
		err = writeAtomic(pr.to, write)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "restored part of %s at %s: %s of documents from snapshot %s + %d events (%d keys chosen changed), in %s\n",
		pr.stream, p.Target, source.HumanBytes(n), p.Base.ID.Short(), st.EventsApplied, st.KeysChanged, time.Since(start).Round(time.Millisecond))
	return nil
}

// maxKeysFile bounds --keys-from, which is held in memory.
const maxKeysFile = 10_000_000

// readKeys reads one key a line from path (- for stdin); blank lines are
// skipped.
func readKeys(env *environment, path string) ([][]byte, error) {
	var src io.Reader = env.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		src = f
	}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 64<<10), repo.MaxEventKey+2)
	var keys [][]byte
	for line := 1; sc.Scan(); line++ {
		k := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(k) == "" {
			continue
		}
		if len(keys) == maxKeysFile {
			return nil, fmt.Errorf("--keys-from %s: more than %d keys", path, maxKeysFile)
		}
		keys = append(keys, []byte(k))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--keys-from %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, usagef("--keys-from %s: no keys", path)
	}
	return keys, nil
}
