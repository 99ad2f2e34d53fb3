package source

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Source is one live database or export kind (redis://, etcd://,
// ndjson:PATH, …) that backups, log captures and restores work on. A value
// is made by its package's Opener from a URL and the caller's Env, and is
// used for one command. Its methods print progress notes through Env and
// return what they did as a report (report.go), which the caller prints:
// every source's summary and --json have one shape.
type Source interface {
	// Backup takes one consistent snapshot and stores it as a snapshot of
	// stream, recording the source's consistent point as its time and
	// position (an export's are o's, a database's its own: a database
	// MUST refuse o's, BackupOptions.FromDatabase). The engine extends
	// retention after the snapshot (engine.Backup). The report's
	// Snapshot is set whenever the manifest was written, error or not.
	Backup(ctx context.Context, r *repo.Repository, stream string, o BackupOptions) (BackupReport, error)
	// Capture streams the source's changes into the stream's log until ctx
	// ends (or the source ends or goes away for good), sealing segments as
	// o says. It MUST continue a log an earlier capture left (never store a
	// position twice), and a database source MUST take a base snapshot
	// itself when the stream has none it can continue from. A lost
	// position is a recorded gap, never a silent one. The report counts
	// what was stored, error or not.
	Capture(ctx context.Context, r *repo.Repository, stream string, o CaptureOptions) (CaptureReport, error)
	// Restore writes the state of stream at t (planned from cat) into the
	// database, which MUST be empty unless o.Force. With o.DryRun it shows
	// the plan (Env.PrintPlan) and what the target holds, writes nothing,
	// and returns a zero report.
	Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o RestoreOptions) (RestoreReport, error)
}

// Holder is the optional interface of a Source that can say whether the
// database holds anything a restore would replace. The CLI asks for it
// (by type assertion) before a forced restore, to take a rollback point
// of what the target holds; a Source without it gets none.
type Holder interface {
	// Held returns how many items the database holds where a restore
	// would write, and what they are ("keys", "collections"); 0 means a
	// restore replaces nothing. It MUST NOT change the database.
	Held(ctx context.Context) (n int64, what string, err error)
}

// Partitioned is the optional interface of a Source whose restores can
// be limited to some of its collections (RestoreOptions.Collections). The
// CLI refuses --collections for a Source without it, before it reads
// anything; a Source without it never sees Collections set.
type Partitioned interface {
	// RestoresCollections does nothing: having it says that Restore
	// honours RestoreOptions.Collections.
	RestoresCollections()
}

// RollbackCaveat is the optional interface of a Holder whose rollback
// point does not undo everything a forced restore does. The CLI prints
// the caveat under the command that puts the rollback point back.
type RollbackCaveat interface {
	// RollbackCaveat says what restoring the rollback point leaves as the
	// forced restore made it, in one line.
	RollbackCaveat() string
}

// PositionResolver is the optional interface of a Source whose log
// positions can also be named in the database's own terms (MongoDB: an
// oplog timestamp). The CLI asks for it (by type assertion) when
// restore --at-position is not a plain integer.
type PositionResolver interface {
	// ResolvePosition maps text, an --at-position that is not a plain
	// integer, to the log position of stream whose restore is the state
	// text names. ok is false when text is not such a name. It MUST
	// refuse, wrapping index.ErrNotRestorable, a name the stream's log
	// does not cover exactly, and MUST NOT change the database.
	ResolvePosition(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream, text string) (pos uint64, ok bool, err error)
}

// CaptureOptions tune a capture. The zero value is not valid: the caller
// sets both (the CLI's defaults are 16 MiB and 10 s).
type CaptureOptions struct {
	SegmentBytes int           // seal a segment when its events reach this many bytes
	Interval     time.Duration // seal a segment when its first event is this old (the RPO)
	// Lease is the stream's lease the capture holds (engine.AcquireLease),
	// passed to the log writer; nil for none.
	Lease *engine.Lease
	// Admit, when set, refuses an event before it is appended: one dated
	// later than an index server's clock allows, which would make the
	// server refuse the segment holding it. Sources whose events carry
	// the sender's times (ndjson:) MUST call it; those that date events
	// by their arrival here may skip it.
	Admit func(*repo.Event) error
}

// RestoreOptions tune a restore into a database.
type RestoreOptions struct {
	Force  bool // replace what the target holds
	DryRun bool // show the plan, write nothing
	// Collections ("a,b") restores only these collections; only a
	// Partitioned source is given it.
	Collections string
}

// Logf prints one note; every Logf a source gets may be called from
// several goroutines.
type Logf func(format string, args ...any)

// Env is what a source gets from the program that runs it, so no source
// reads flags, environment variables or the process's files itself.
type Env struct {
	Host   string    // recorded in the snapshots and segments it writes
	Stdin  io.Reader // what an export source reads for "-" (ndjson:-)
	Stdout io.Writer // dry-run plans
	Stderr io.Writer // progress notes and warnings
	// Progress, when set, shows how far a long read has come: what labels
	// it, total is the bytes expected (0: unknown), done and detail are
	// called at each redraw from another goroutine. It returns the
	// function that stops the display, which MUST be called.
	Progress func(what string, total int64, done func() int64, detail func() string) (stop func())
	// Secret returns a secret from the variable varName or the file fileVar
	// names ("" when neither is set): database passwords.
	Secret func(varName, fileVar string) (string, error)
	// PrintPlan shows a restore plan on Stdout (the dry-run output).
	PrintPlan func(ctx context.Context, r *repo.Repository, p *index.Plan) error

	mu *sync.Mutex // serialises Logf lines; shared by copies of the Env
}

// PrintDryRun is a restore's dry run: the plan (PrintPlan), then what the
// target holds — held items of kind what — and what happens to them: forced
// says what Force does, refused what a restore without it does.
func (e *Env) PrintDryRun(ctx context.Context, r *repo.Repository, p *index.Plan, target string, held int64, what string, force bool, forced, refused string) error {
	if err := e.PrintPlan(ctx, r, p); err != nil {
		return err
	}
	switch {
	case held == 0:
		fmt.Fprintf(e.Stdout, "target %s: empty\n", target)
	case force:
		fmt.Fprintf(e.Stdout, "target %s: %d %s; %s\n", target, held, what, forced)
	default:
		fmt.Fprintf(e.Stdout, "target %s: %d %s: %s\n", target, held, what, refused)
	}
	return nil
}

// Logf returns a logger that writes "prefix: format" lines to Stderr, one
// at a time.
func (e *Env) Logf(prefix string) Logf {
	if e.mu == nil {
		e.mu = new(sync.Mutex)
	}
	mu := e.mu
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.Stderr, prefix+format+"\n", args...)
	}
}

// GetSecret is Secret, or "" without one.
func (e *Env) GetSecret(varName, fileVar string) (string, error) {
	if e.Secret == nil {
		return "", nil
	}
	return e.Secret(varName, fileVar)
}

// URLError is a source URL that cannot be used (unknown scheme, malformed
// parts): a usage error, not a failure of the database.
type URLError struct{ Err error }

func (e *URLError) Error() string { return e.Err.Error() }
func (e *URLError) Unwrap() error { return e.Err }

// URLErrorf returns a *URLError.
func URLErrorf(format string, args ...any) error { return &URLError{fmt.Errorf(format, args...)} }

// Opener makes the Source a URL names. Errors in the URL are *URLError.
// The password, when the URL has none, comes from
// Env.Secret("STRATA_SOURCE_PASSWORD", "STRATA_SOURCE_PASSWORD_FILE").
// An Opener MUST NOT read or change the source: a bad URL is found before
// the repository is opened, a missing database or file when it is used.
type Opener func(u *url.URL, env *Env) (Source, error)

// registered is one scheme's Opener and whether its URLs name a host.
type registered struct {
	open   Opener
	export bool // URLs name a file or "-" (ndjson:PATH), no host
}

var (
	mu      sync.RWMutex
	openers = map[string]registered{}
)

// Register adds the Opener of a database's URL scheme (scheme://HOST…):
// Open refuses a URL of it without a host before the Opener sees it. It
// panics when the scheme is registered twice, a programming error. Each
// source package calls it from an init function.
func Register(scheme string, open Opener) { register(scheme, registered{open: open}) }

// RegisterExport adds the Opener of an export's URL scheme, whose URLs
// name a file rather than a host (scheme:PATH, scheme:///ABS/PATH,
// scheme:- for standard input): Open hands it URLs without a host, and
// the Opener checks the rest. It panics like Register.
func RegisterExport(scheme string, open Opener) {
	register(scheme, registered{open: open, export: true})
}

func register(scheme string, r registered) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic(fmt.Sprintf("source: scheme %q registered twice", scheme))
	}
	openers[scheme] = r
}

// Open parses a source or target URL and opens it through the Opener of
// its scheme.
func Open(raw string, env *Env) (Source, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, URLErrorf("%q: want a database URL such as redis://HOST:PORT or etcd://HOST:PORT, or an export such as ndjson:FILE", RedactURL(raw))
	}
	return OpenURL(u, env)
}

// OpenURL is Open for a URL already parsed or built (the CLI builds
// ndjson:FILE from a file name that need not survive a round trip
// through text).
func OpenURL(u *url.URL, env *Env) (Source, error) {
	mu.RLock()
	reg, ok := openers[strings.ToLower(u.Scheme)]
	var known []string
	for k, r := range openers {
		if r.export {
			known = append(known, k+":FILE")
		} else {
			known = append(known, k+"://")
		}
	}
	mu.RUnlock()
	if !ok {
		sort.Strings(known)
		return nil, URLErrorf("%s: not a database or export this build knows (known: %s)", u.Scheme, strings.Join(known, ", "))
	}
	if !reg.export && u.Host == "" {
		return nil, URLErrorf("%q: want a database URL such as %s://HOST:PORT", u.Redacted(), u.Scheme)
	}
	return reg.open(u, env)
}

// Password is a source URL's password, else the secret the Env gives for
// STRATA_SOURCE_PASSWORD or STRATA_SOURCE_PASSWORD_FILE; "" means none.
func Password(u *url.URL, env *Env) (string, error) {
	if p, ok := u.User.Password(); ok {
		return p, nil
	}
	return env.GetSecret("STRATA_SOURCE_PASSWORD", "STRATA_SOURCE_PASSWORD_FILE")
}

// RedactURL hides a password in a URL for messages.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// HumanBytes prints a size in binary units ("1.5 MiB").
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
