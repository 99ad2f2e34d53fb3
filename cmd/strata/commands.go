package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/atomicfile"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/multi"
	"github.com/strata-backup/strata/source"
	"github.com/strata-backup/strata/source/ndjson"
)

func cmdInit(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--store URL]... [--data-shards K] [--parity-shards M] [--cipher NAME] [--retention D --retention-mode governance|compliance] [--allow-store-loss] [--json]")
	location := repoFlag(fs, env)
	var more multiFlag
	fs.Var(&more, "store", "another store `URL` of the same repository (repeatable): shards are spread, metadata replicated")
	k := fs.Int("data-shards", repo.DefaultDataShards, "data shards per pack (k)")
	m := fs.Int("parity-shards", repo.DefaultParityShards, "parity shards per pack (m): any m shards of a pack may be lost")
	cipherName := fs.String("cipher", repo.CipherXChaCha20Poly1305, "frame cipher: xchacha20-poly1305 or aes-256-gcm")
	retention := fs.String("retention", "", "keep every object immutable (S3 Object Lock) for this `duration` after it is written or last extended, e.g. 720h")
	mode := fs.String("retention-mode", "governance", "Object Lock mode: governance or compliance (binds everyone, root included)")
	allowLoss := fs.Bool("allow-store-loss", false, "accept a placement where losing one store loses data")
	asJSON := jsonFlag(fs, "print one JSON object: id, location, stores, data_shards, parity_shards, cipher, retention, retention_mode")
	return func(ctx context.Context, args []string) (err error) {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *k < 1 || *m < 0 || *k+*m > 255 {
			return usagef("--data-shards must be ≥ 1, --parity-shards ≥ 0, and their sum ≤ 255")
		}
		layout := &repo.Layout{}
		if *retention != "" {
			d, err := time.ParseDuration(*retention)
			if err != nil || d < time.Second {
				return usagef("--retention %q: want a duration of at least 1s, such as 720h", *retention)
			}
			switch strings.ToLower(*mode) {
			case "governance", "compliance":
			default:
				return usagef("--retention-mode must be governance or compliance")
			}
			layout.Retention, layout.Mode = d.String(), strings.ToUpper(*mode)
		}
		// A failed init leaves nothing behind: the directories it made go again.
		var made []string
		for _, loc := range append([]string{*location}, more...) {
			if d := firstMissingDir(loc); d != "" {
				made = append(made, d)
			}
		}
		defer func() {
			if err != nil {
				for _, d := range made {
					os.RemoveAll(d)
				}
			}
		}()
		s, err := env.createStores(ctx, append([]string{*location}, more...), layout, *k, *m, *allowLoss)
		if err != nil {
			return err
		}
		pw, err := env.password(true)
		if err != nil {
			return err
		}
		r, err := repo.Init(ctx, s, pw, repo.InitOptions{DataShards: *k, ParityShards: *m, NoParity: *m == 0, Cipher: *cipherName, Host: env.host, User: env.user})
		if err != nil {
			return fmt.Errorf("init %s: %w", *location, err)
		}
		c := r.Config()
		if *asJSON {
			return writeJSON(env, initJSON{ID: c.ID.String(), Location: *location, Stores: append([]string{*location}, more...),
				DataShards: c.DataShards, ParityShards: c.ParityShards, Cipher: c.Cipher, Retention: layout.Retention, RetentionMode: layout.Mode})
		}
		fmt.Fprintf(env.stdout, "created repository %s at %s (erasure coding %d+%d, %s)\n", c.ID.Short(), *location, c.DataShards, c.ParityShards, c.Cipher)
		if len(more) > 0 {
			fmt.Fprintf(env.stdout, "spread over %d stores: %s; losing one loses %d shards of each pack, parity covers %d\n", len(more)+1, strings.Join(append([]string{*location}, more...), ", "), multi.ShardsPerStore(c.DataShards, c.ParityShards, len(more)+1), c.ParityShards)
		}
		if layout.Retention != "" {
			fmt.Fprintf(env.stdout, "every object is retained (%s mode) for %s after it is written or extended\n", layout.Mode, layout.Retention)
		}
		return nil
	}
}

// initJSON is init --json's object.
type initJSON struct {
	ID            string   `json:"id"`
	Location      string   `json:"location"`
	Stores        []string `json:"stores"`
	DataShards    int      `json:"data_shards"`
	ParityShards  int      `json:"parity_shards"`
	Cipher        string   `json:"cipher"`
	Retention     string   `json:"retention,omitempty"`
	RetentionMode string   `json:"retention_mode,omitempty"`
}

func cmdBackup(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME [--format raw|ndjson] [--key-field F] [--allow-duplicate-keys] [--key-map] [--time TIME] [--position N] (--stdin | FILE | - | --source URL) [--json]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	format := fs.String("format", "", "export format: raw (opaque dump) or ndjson (one record a line) (default: ndjson when the first 64 KiB are whole lines of JSON objects with the key field, else raw)")
	at := fs.String("time", "", "instant the export is consistent at: RFC 3339 or unix seconds, fractions allowed (default now)")
	position := fs.String("position", "", "change-log position the export is consistent at, if known")
	stdin := fs.Bool("stdin", false, "read the export from standard input")
	keyField := fs.String("key-field", ndjson.DefaultKeyField, "ndjson: the document field that holds each document's key")
	allowDup := fs.Bool("allow-duplicate-keys", false, "ndjson: accept a key on several lines; the last one is the document (the export is still stored as given)")
	keyMap := fs.Bool("key-map", false, "ndjson, sorted by key: also write a key map, so get, history and diff read ~0.5% of the export instead of ~3% (it costs ~1.6% of the export in every backup)")
	asJSON := jsonFlag(fs, "print the snapshot as one JSON object, the shape of an element of snapshots --json")
	sourceURL := fs.String("source", "", "snapshot a live database instead: redis://[user@]HOST:PORT[/DB], etcd://HOST:PORT[,HOST:PORT...] or mongodb://[USER@]HOST[:PORT][/DB] (password from STRATA_SOURCE_PASSWORD); or an export named as a URL, ndjson:PATH[?format=…&key-field=…]")
	return func(ctx context.Context, args []string) error {
		if err := checkStream(*stream); err != nil {
			return err
		}
		// FILE, - and --stdin are the export source ndjson:FILE, ndjson:-,
		// with --format, --key-field and --allow-duplicate-keys as its
		// URL's parameters: every backup goes through a source.Source.
		var src source.Source
		if *sourceURL != "" {
			if *stdin || len(args) != 0 {
				return usagef("--source names what is backed up: give no FILE or --stdin")
			}
			for _, f := range []string{"format", "key-field", "allow-duplicate-keys", "key-map"} {
				if fs.Changed(f) {
					return usagef("--%s describes a FILE or --stdin export; with --source, an export's URL takes it (ndjson:PATH?format=raw&key-field=F&allow-duplicate-keys=true&key-map=true), and a database has none", f)
				}
			}
			var err error
			if src, err = openDatabase(env, *sourceURL); err != nil {
				return err
			}
		} else {
			if err := keyFieldOK(*keyField); err != nil {
				return err
			}
			if len(args) == 1 && args[0] == "-" && !*stdin {
				*stdin, args = true, nil // FILE "-" is standard input
			}
			if *stdin == (len(args) == 1) || len(args) > 1 {
				return usagef("give exactly one of --stdin or a FILE")
			}
			if *format != "" && *format != engine.FormatRaw && *format != engine.FormatNDJSON {
				return usagef("--format must be raw or ndjson")
			}
			name := "-"
			if !*stdin {
				name = args[0]
				if _, err := os.Stat(name); err != nil {
					return err // before the repository asks for its password
				}
			}
			var err error
			if src, err = openExport(env, name, *format, *keyField, *allowDup, *keyMap); err != nil {
				return err
			}
		}
		var o source.BackupOptions
		if *at != "" {
			var err error
			if o.Time, err = index.ParseTime(*at); err != nil {
				return usageError{err.Error()}
			}
		}
		if *position != "" {
			p, err := strconv.ParseUint(*position, 10, 64)
			if err != nil {
				return usagef("--position %q: want a non-negative integer", *position)
			}
			o.Position = &p
		}
		// The label's date is checked against the server's clock before any
		// data is uploaded (the default date, and a database's, is this
		// host's clock, now).
		dated := o.Time
		if dated.IsZero() {
			dated = time.Now()
		}
		r, _, err := openRepoToWrite(ctx, env, *location, *stream, dated)
		if err != nil {
			return err
		}
		start := time.Now()
		rep, err := src.Backup(ctx, r, *stream, o)
		if rep.Snapshot == nil {
			return sourceUsage(err)
		}
		if perr := printBackup(env, *stream, rep, start, *asJSON); perr != nil {
			return errors.Join(err, perr)
		}
		return err // the snapshot is stored; a failed retention extension still fails the command
	}
}

// openExport opens the export source (source/ndjson) for a FILE, or "-"
// for standard input, with backup's or log's flags as its parameters.
// The URL is built, never parsed, so any file name is taken as it is.
func openExport(env *environment, name, format, keyField string, allowDup, keyMap bool) (source.Source, error) {
	q := url.Values{}
	if format != "" {
		q.Set("format", format)
	}
	q.Set("key-field", keyField)
	if allowDup {
		q.Set("allow-duplicate-keys", "true")
	}
	if keyMap {
		q.Set("key-map", "true")
	}
	src, err := source.OpenURL(&url.URL{Scheme: "ndjson", Path: name, RawQuery: q.Encode()}, env.sourceEnv())
	return src, sourceUsage(err)
}

type snapshotJSON struct {
	ID       string    `json:"id"`
	Stream   string    `json:"stream"`
	Time     time.Time `json:"time"`
	Created  time.Time `json:"created"`
	Format   string    `json:"format"`
	Size     int64     `json:"size"`
	Blobs    int64     `json:"blobs"`
	NewBlobs int64     `json:"new_blobs"`
	Stored   int64     `json:"stored_bytes"`
	Position *uint64   `json:"position,omitempty"`
	Parent   string    `json:"parent,omitempty"`
	Host     string    `json:"host,omitempty"`
}

func snapshotJSONOf(s index.SnapshotRef) snapshotJSON {
	j := snapshotJSON{ID: s.ID.String(), Stream: s.Stream, Time: s.Time, Created: s.Created, Format: s.Format, Size: s.Size, Blobs: s.Blobs, NewBlobs: s.NewBlobs, Stored: s.StoredBytes, Position: s.Position, Host: s.Host}
	if s.Parent != nil {
		j.Parent = s.Parent.String()
	}
	return j
}

func cmdSnapshots(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--stream NAME] [--json]")
	location := repoFlag(fs, env)
	stream := fs.String("stream", "", "only this stream")
	asJSON := jsonFlag(fs, `print a JSON array of {"id","stream","time","created","format","size","blobs","new_blobs","stored_bytes","position","parent","host"}`)
	return func(ctx context.Context, args []string) error {
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		cat, err := index.LoadStreamCatalog(ctx, r, *stream)
		if cat == nil {
			return err
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "warning: %v\n", err)
		}
		list := cat.Stream(*stream)
		if *asJSON {
			out := make([]snapshotJSON, 0, len(list))
			for _, s := range list {
				out = append(out, snapshotJSONOf(s))
			}
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTREAM\tTIME\tFORMAT\tSIZE\tADDED")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.String()[:16], printable(s.Stream), s.Time.Format(time.RFC3339Nano), printable(s.Format), source.HumanBytes(s.Size), source.HumanBytes(s.StoredBytes))
		}
		return tw.Flush()
	}
}

func cmdRestore(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --stream NAME [--snapshot ID | --at TIME | --at-position N] [--dry-run] [--key-prefix P | --keys-from FILE] [--to PATH|- [--force] | --target URL [--force [--no-rollback-point]] [--collections A,B]] [--json with --dry-run or --target]")
	location := repoFlag(fs, env)
	stream := streamFlag(fs)
	snapID := fs.String("snapshot", "", "snapshot ID or unique prefix (default: the latest of the stream)")
	at := fs.String("at", "", "restore the state at this instant (events with time ≤ TIME applied): RFC 3339 or unix seconds, fractions allowed")
	atPos := fs.String("at-position", "", "restore the state after the event at this log position; with --target mongodb://, also an oplog timestamp T:I (the state after every entry with ts ≤ T:I)")
	dryRun := fs.Bool("dry-run", false, "with --at/--at-position: print the plan (base snapshot, segments, bytes to read) and verify its objects, write nothing")
	to := fs.String("to", "-", "output file, written atomically, or - for standard output")
	dbTarget := fs.String("target", "", "restore into a live, empty database instead: redis://HOST:PORT[/DB], etcd://HOST:PORT[,...] or mongodb://[USER@]HOST:PORT[/DB] (password from STRATA_SOURCE_PASSWORD)")
	force := fs.Bool("force", false, "with --to FILE: overwrite an existing file; with --target: restore into a database that is not empty")
	keyPrefix := fs.String("key-prefix", "", "ndjson: restore only the documents whose key starts with this")
	keysFrom := fs.String("keys-from", "", "ndjson: restore only the documents whose keys this `file` lists, one a line (- for stdin)")
	collections := fs.String("collections", "", "with --target mongodb://: restore only these collections (A,B,...)")
	noRollback := fs.Bool("no-rollback-point", false, "with --target --force: replace what the target holds without first snapshotting it into STREAM.rollback.<UTC time>")
	asJSON := jsonFlag(fs, "with --dry-run: print the plan as one JSON object (stream, at or at_position, base, from_position, segments, log_bytes, read_bytes); with --target: print what was restored (stream, at, target, snapshot, base, events, unit, reached, verified, notes, seconds)")
	return func(ctx context.Context, args []string) error {
		if err := parseStreamArgs(args, stream); err != nil {
			return err
		}
		// With --target, an --at-position that is not a plain integer may
		// name a position in the database's own terms (a MongoDB oplog
		// timestamp): the target's source maps it (restoreDatabase).
		posName, posArg := "", *atPos
		if _, err := strconv.ParseUint(*atPos, 10, 64); err != nil && *atPos != "" && *dbTarget != "" && *at == "" {
			posName, posArg = *atPos, ""
		}
		target, err := restoreTarget(*at, posArg)
		if err != nil {
			return err
		}
		if *asJSON && (*dryRun == (*dbTarget != "")) {
			return usagef("--json prints the plan of --dry-run, or the report of a --target restore: a restore to a file or stdout writes the data")
		}
		if *keyPrefix != "" || *keysFrom != "" {
			if *dbTarget != "" || *dryRun {
				return usagef("--key-prefix and --keys-from write a file or stdout: no --target or --dry-run")
			}
			if err := checkOutput(env, *to, *force); err != nil {
				return err
			}
			return partialRestore{location: *location, stream: *stream, snapID: *snapID, target: target, prefix: *keyPrefix, keysFrom: *keysFrom, to: *to}.run(ctx, env)
		}
		if *dbTarget != "" {
			return restoreDatabase(ctx, env, *location, *stream, *dbTarget, *snapID, target, posName, source.RestoreOptions{Force: *force, DryRun: *dryRun, Collections: *collections}, *noRollback, *asJSON)
		}
		if *collections != "" || *noRollback {
			return usagef("--collections and --no-rollback-point go with --target")
		}
		if !*dryRun {
			if err := checkOutput(env, *to, *force); err != nil {
				return err
			}
		}
		if target != nil && *snapID != "" {
			return usagef("--snapshot and --at/--at-position exclude each other: the plan picks the snapshot")
		}
		if target == nil && *dryRun {
			return usagef("--dry-run plans a point-in-time restore: give --at or --at-position")
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		if target != nil && remoteOf(r) != nil {
			// The server plans; the client checks the plan and does the rest.
			return restoreAt(ctx, env, r, func() (*index.Plan, error) { return remoteOf(r).PlanFor(ctx, r, *stream, *target) }, *stream, *target, *to, *dryRun, *asJSON)
		}
		cat, catErr := index.LoadStreamCatalog(ctx, r, *stream)
		if cat == nil {
			return catErr
		}
		if catErr = index.ErrorsFor(catErr, *stream); catErr != nil && *snapID == "" {
			// The snapshot that failed may be the newest: restoring an older one
			// in its place would be a wrong state reported as success.
			return fmt.Errorf("refusing to restore %s: %w; a snapshot that fails verification may be its newest, and Strata never falls back to an older one (run 'strata check'; --snapshot ID restores a snapshot you name)", *stream, catErr)
		}
		if target != nil {
			return restoreAt(ctx, env, r, func() (*index.Plan, error) { return cat.Plan(*stream, *target) }, *stream, *target, *to, *dryRun, *asJSON)
		}
		var snap index.SnapshotRef
		if *snapID != "" {
			snap, err = cat.Find(*stream, *snapID)
		} else {
			snap, err = cat.Latest(*stream)
		}
		if err != nil {
			if catErr != nil {
				return fmt.Errorf("%w (some snapshots could not be read: %w)", err, catErr)
			}
			return err
		}
		start := time.Now()
		var n int64
		var written atomic.Int64
		stopProgress := startProgress(env, "restore", snap.Size, written.Load, nil)
		run := func(w io.Writer) error {
			var err error
			// An ndjson export's proof is recomputed from what is written
			// (FORMAT.md §11.1); a mismatch fails the restore.
			n, _, err = ndjson.RestoreSnapshot(ctx, r, snap, &progressWriter{w: w, n: &written}, restoreOptions(r))
			return err
		}
		if *to == "-" {
			// Blobs are a few KiB: unbuffered, each would be its own write(2).
			bw := newBufferedWriter(env.stdout)
			if err = run(bw); err != nil {
				bw.Flush() // what was verified so far; the error says the output is incomplete
			} else {
				err = bw.Flush()
			}
		} else {
			err = writeAtomic(*to, run)
		}
		stopProgress()
		reportRestore(ctx, env, r, *stream, snap.ID.String(), "snapshot "+snap.ID.Short(), start, n, err)
		if err == nil {
			env.summaryf("restored %s: snapshot %s, %s in %s", *stream, snap.ID.Short(), source.HumanBytes(n), time.Since(start).Round(time.Millisecond))
		}
		return err
	}
}

// checkOutput refuses, before any work, a restore that would write to a
// terminal (binary or pages of NDJSON are never what a person wants on
// screen) or replace an existing file without force. A directory is
// refused by name.
func checkOutput(env *environment, to string, force bool) error {
	if to == "-" {
		if env.stdoutTTY {
			return usagef("refusing to write a restore to a terminal: give --to FILE or redirect standard output")
		}
		return nil
	}
	fi, err := os.Stat(to)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--to %s: %w", to, err)
	case fi.IsDir():
		return usagef("--to %s is a directory: give a file name", to)
	case !force:
		return usagef("--to %s exists: --force overwrites it", to)
	}
	return nil
}

// writeAtomic writes a restore to path through a temporary file, so PATH
// holds either its old content or the complete restore, never a partial one.
func writeAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, 0o600, write)
}

// firstMissingDir returns the outermost directory that does not exist yet
// on the way to a local repository location, or "" when loc is a URL or
// its directory exists: what init creates, and removes again on failure.
func firstMissingDir(loc string) string {
	if loc == "" || strings.Contains(loc, "://") {
		return ""
	}
	d, err := filepath.Abs(loc)
	if err != nil {
		return ""
	}
	missing := ""
	for {
		if _, err := os.Lstat(d); err == nil {
			return missing
		} else if !errors.Is(err, os.ErrNotExist) {
			return ""
		}
		missing = d
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}
