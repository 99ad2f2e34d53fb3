package ndjson

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func init() { source.RegisterExport("ndjson", openExport) }

// exportSource is an export file, or standard input, named by
//
//	ndjson:PATH | ndjson:///ABS/PATH | ndjson:- [?format=raw|ndjson&key-field=F&allow-duplicate-keys=true&key-map=true]
//
// A backup stores it as a snapshot (an NDJSON export validated line by
// line, or an opaque raw dump; without format= its first 64 KiB choose,
// Sniff); a capture reads change events (ParseEvent) from it into the log.
type exportSource struct {
	name     string // the file, or "-" for Env.Stdin
	format   string // engine.FormatRaw, engine.FormatNDJSON, or "" to sniff
	keyField string
	allowDup bool
	// keyMap: a backup of a sorted export also writes a key map (FORMAT.md
	// §26), which makes get, history and diff read ~0.5% of the export
	// instead of ~3% and costs ~1.6% of the export in every backup.
	keyMap bool
	env    *source.Env
}

var _ source.Source = (*exportSource)(nil)

// exportURL is the form an ndjson URL takes, for messages.
const exportURL = "ndjson:PATH, ndjson:///ABS/PATH or ndjson:- (standard input), with ?format=raw|ndjson, ?key-field=F, ?allow-duplicate-keys=true, ?key-map=true"

func openExport(u *url.URL, env *source.Env) (source.Source, error) {
	if (u.Host != "" && u.Host != "localhost") || u.User != nil || u.Fragment != "" {
		return nil, source.URLErrorf("%s: an ndjson URL names a file, not a host: want %s", u.Redacted(), exportURL)
	}
	name := u.Path
	if u.Opaque != "" {
		var err error
		if name, err = url.PathUnescape(u.Opaque); err != nil {
			return nil, source.URLErrorf("%s: %v", u.Redacted(), err)
		}
	}
	if name == "" {
		return nil, source.URLErrorf("%s: no file: want %s", u.Redacted(), exportURL)
	}
	x := &exportSource{name: name, keyField: DefaultKeyField, env: env}
	for k, v := range u.Query() {
		if len(v) != 1 {
			return nil, source.URLErrorf("%s: %s= given %d times", u.Redacted(), k, len(v))
		}
		switch k {
		case "format":
			if v[0] != engine.FormatRaw && v[0] != engine.FormatNDJSON {
				return nil, source.URLErrorf("%s: format=%q: want raw or ndjson", u.Redacted(), v[0])
			}
			x.format = v[0]
		case "key-field":
			if err := CheckKeyField(v[0]); err != nil {
				return nil, source.URLErrorf("%s: key-field: %v", u.Redacted(), err)
			}
			x.keyField = v[0]
		case "allow-duplicate-keys":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, source.URLErrorf("%s: allow-duplicate-keys=%q: want true or false", u.Redacted(), v[0])
			}
			x.allowDup = b
		case "key-map":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, source.URLErrorf("%s: key-map=%q: want true or false", u.Redacted(), v[0])
			}
			x.keyMap = b
		default:
			return nil, source.URLErrorf("%s: unknown parameter %q: want %s", u.Redacted(), k, exportURL)
		}
	}
	return x, nil
}

// CheckKeyField refuses a key field name that is not a plain field name.
func CheckKeyField(f string) error {
	if f == "" || strings.ContainsAny(f, "\"\\") || len(f) > 256 {
		return fmt.Errorf("%q: want a plain field name", f)
	}
	return nil
}

// open opens the export; total is its size when it is a regular file
// (the progress bar's 100%), else 0.
func (x *exportSource) open() (in io.Reader, total int64, done func(), err error) {
	if x.name == "-" {
		if x.env.Stdin == nil {
			return nil, 0, nil, fmt.Errorf("ndjson:-: no standard input")
		}
		return x.env.Stdin, 0, func() {}, nil
	}
	f, err := os.Open(x.name)
	if err != nil {
		return nil, 0, nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		total = fi.Size()
	}
	return f, total, func() { f.Close() }, nil
}

// Backup stores the export as a snapshot of stream: validated line by
// line as NDJSON (a bad line stops it, with its number, before the
// manifest is written), or as an opaque raw dump. Without a format its
// first SniffBytes choose, and what was chosen, and why, is said on
// Env.Stderr; a raw backup of what looks like NDJSON is warned about.
func (x *exportSource) Backup(ctx context.Context, r *repo.Repository, stream string, o source.BackupOptions) (source.BackupReport, error) {
	env := x.env
	in, total, done, err := x.open()
	if err != nil {
		return source.BackupReport{}, err
	}
	defer done()
	format := x.format
	br := bufio.NewReaderSize(in, SniffBytes)
	head, _ := br.Peek(SniffBytes) // a short read is the whole export, or its error comes again to the backup
	looks, why := Sniff(head, len(head) < SniffBytes, x.keyField)
	switch {
	case format == "" && looks:
		format = engine.FormatNDJSON
		fmt.Fprintf(env.Stderr, "backup: no --format given: %s, so backing up as ndjson (--format raw stores an opaque dump)\n", why)
	case format == "":
		format = engine.FormatRaw
		fmt.Fprintf(env.Stderr, "backup: no --format given: %s, so backing up as raw\n", why)
	}
	if format == engine.FormatRaw && (looks || strings.HasPrefix(why, "it looks like NDJSON")) {
		fmt.Fprintf(env.Stderr, "warning: the export looks like NDJSON, but a raw backup stores it as an opaque dump: it loses record-level deduplication (each backup stores far more), point-in-time restore and get/history/diff; give --format ndjson\n")
	}
	if o.Position != nil && format != engine.FormatNDJSON {
		// A position makes a snapshot a point-in-time base, and change
		// events from 'strata log' apply to ndjson exports only.
		return source.BackupReport{}, &source.UsageError{Err: fmt.Errorf("--position needs --format ndjson: change events apply only to ndjson exports, so a raw snapshot is restorable only at its own time")}
	}
	if x.allowDup && format != engine.FormatNDJSON {
		return source.BackupReport{}, &source.UsageError{Err: fmt.Errorf("--allow-duplicate-keys applies to --format ndjson")}
	}
	if x.keyMap && format != engine.FormatNDJSON {
		return source.BackupReport{}, &source.UsageError{Err: fmt.Errorf("--key-map applies to --format ndjson")}
	}
	bo := engine.BackupOptions{Stream: stream, Format: format, Host: env.Host, Time: o.Time, Position: o.Position, Logf: env.Logf("")}
	var src io.Reader = br
	if format == engine.FormatNDJSON {
		// Every line is checked on its way to the chunker: a bad one fails
		// the backup before its manifest is written. Whether the export is
		// sorted by key decides how a point-in-time restore merges changes
		// into it; learn it on the way through. The proof's key comes from
		// the repository's master key.
		oc := NewExportChecker(x.keyField, x.allowDup)
		oc.Prove(r.NewDigester())
		src = oc.Reader(src)
		bo.Describe = func(s *repo.Snapshot) {
			s.KeyField = x.keyField
			s.Sorted, _ = oc.Sorted()
			if p, ok := oc.Proof(); ok {
				s.SetProof(p)
			}
		}
		if x.keyMap {
			bo.KeyMap = KeyMapSource(x.keyField) // written if the export turns out sorted
		}
	}
	if bo.Parent, err = engine.Parent(ctx, r, stream); err != nil {
		// A damaged manifest must not stop new backups; it only loses a parent candidate.
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	}
	p := &engine.Progress{}
	bo.Progress = p
	stop := func() {}
	if env.Progress != nil {
		stop = env.Progress("backup", total, p.BytesRead.Load, func() string {
			return fmt.Sprintf("(%d chunks, %d new)", p.Blobs.Load(), p.NewBlobs.Load())
		})
	}
	id, snap, err := engine.Backup(ctx, r, src, bo)
	stop()
	// The progress counters count data chunks only (snap.NewBlobs adds
	// the tree's list blobs), so "new" never exceeds "chunks".
	return source.BackupReport{ID: id, Snapshot: snap, Chunks: p.Blobs.Load(), NewChunks: p.NewBlobs.Load()}, err
}

// Capture reads change events from the file, or standard input, until it
// ends (Capture, the function, says how).
func (x *exportSource) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) (source.CaptureReport, error) {
	if x.format == engine.FormatRaw || x.allowDup || x.keyMap {
		return source.CaptureReport{}, &source.UsageError{Err: fmt.Errorf("ndjson:%s: a capture reads change events: format=, allow-duplicate-keys= and key-map= describe an export", x.name)}
	}
	in, _, done, err := x.open()
	if err != nil {
		return source.CaptureReport{}, err
	}
	defer done()
	st, err := Capture(ctx, r, in, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Logf: x.env.Logf("strata log: "),
		KeyField: x.keyField, Admit: o.Admit, Lease: o.Lease,
	})
	return source.CaptureReport{LogStats: st}, err
}

// Restore refuses: an export is restored to a file or standard output by
// restore --to, not through this interface. That path restores raw
// snapshots and key selections too (which are no Source's business),
// checks the output before any work (a terminal, an existing file without
// --force), writes atomically through a temporary file, and streams to
// stdout; a Restore here would copy all of it for no new ability.
func (x *exportSource) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) (source.RestoreReport, error) {
	return source.RestoreReport{}, &source.UsageError{Err: fmt.Errorf("ndjson:%s is an export, not a database: restore it with --to FILE (or --to - for standard output)", x.name)}
}
