package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/auth"
)

// Options configure a Server. Store and Tokens are required.
type Options struct {
	Store repo.Store
	// Tokens returns the current token set; the CLI swaps it on SIGHUP.
	Tokens func() *auth.Set
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // the trusted clock; default time.Now
	// Registry receives the server's metrics; default a new registry, served on /metrics.
	Registry *prometheus.Registry
	// Policy grades streams on the status page and in the metrics; nil
	// sets no limit (ops.Policy). SetPolicy replaces it.
	Policy *ops.Policy
	// StatusDays is how many days the status page's timelines show;
	// default DefaultStatusDays.
	StatusDays int
	// AuditFlush is how often buffered audit records are written; default 1s.
	AuditFlush time.Duration

	// Limits (PROTOCOL.md, "Limits and memory"); zero means the default.
	MaxConns        int           // connections at once (Listener); DefaultMaxConns
	Memory          int64         // bytes of bodies and objects held at once; DefaultMemory, at least two of the largest uploads
	MemoryWait      time.Duration // how long a request waits for memory before a 503; DefaultMemoryWait
	BodyIdleTimeout time.Duration // a request body that sends nothing this long is cut (408); DefaultBodyIdleTimeout
	BodyTimeout     time.Duration // a request body not complete after this long is cut (408); DefaultBodyTimeout
}

// Server is the index server. Create it with New, serve Handler(), and call
// Close after the HTTP server has shut down, to write the last audit records.
type Server struct {
	o       Options
	st      repo.Store
	cat     *catalog
	audit   *auditLog
	metrics *metrics
	scrubs  *scrubMetrics
	mux     *http.ServeMux
	// scrubMu keeps keyless scrub passes (scrub.go) one at a time.
	scrubMu sync.Mutex

	// putLocks serialize uploads of one name, so two replays of the same
	// object cannot both pass the existence check.
	putLocks [64]sync.Mutex
	seed     maphash.Seed
	// budget is the memory that request bodies and objects held in memory
	// may take at once (reserve).
	budget *semaphore.Weighted

	// records reads the drill and scrub records for the status page and
	// metrics; sessions are the page's signed-in browsers.
	records      *ops.RecordReader
	policy       atomic.Pointer[ops.Policy]
	sessions     sessions
	statusErrors atomic.Int64

	// Unlabeled counts snapshots found at start without a label.
	Unlabeled int
	closed    atomic.Bool
}

// New loads the catalog from the store and prepares the handlers.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Store == nil || o.Tokens == nil {
		return nil, errors.New("server: a store and a token set are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.StatusDays <= 0 {
		o.StatusDays = DefaultStatusDays
	}
	if o.AuditFlush <= 0 {
		o.AuditFlush = time.Second
	}
	o.setLimitDefaults()
	if keepCopies(ctx, o.Store) {
		// The server writes the second copy of every metadata object
		// (FORMAT.md §25) and reads around a damaged one: its clients
		// leave that to it (client.Store is a repo.KeepsCopies).
		o.Store = repo.WithCopies(o.Store)
	}
	start := time.Now()
	cat, unlabeled, err := loadCatalog(ctx, o.Store)
	if err != nil {
		return nil, fmt.Errorf("server: load the catalog: %w", err)
	}
	s := &Server{o: o, st: o.Store, cat: cat, Unlabeled: unlabeled, seed: maphash.MakeSeed(), records: ops.NewRecordReader(), budget: semaphore.NewWeighted(o.Memory)}
	if s.audit, err = openAuditLog(ctx, o.Store, o.Now, o.Logger); err != nil {
		return nil, fmt.Errorf("server: open the audit trail: %w", err)
	}
	s.policy.Store(o.Policy)
	s.metrics = newMetrics(o.Registry, s)
	s.scrubs = newScrubMetrics(o.Registry)
	if err := s.scrubs.load(ctx, o.Store); err != nil {
		return nil, fmt.Errorf("server: read the scrub records: %w", err)
	}
	go s.audit.run(o.AuditFlush)
	s.routes()
	var segs int
	s.cat.read(func(c *index.Catalog) {
		for _, l := range c.Logs {
			segs += len(l.Segments)
		}
	})
	o.Logger.Info("catalog loaded", "snapshots", len(cat.cat.Snapshots), "segments", segs,
		"unlabeled_snapshots", unlabeled, "seconds", time.Since(start).Seconds())
	if unlabeled > 0 {
		o.Logger.Warn("snapshots without a label are not served; run `strata check --repair` with the password to label them", "count", unlabeled)
	}
	return s, nil
}

// Handler returns the server's HTTP handler. It refuses request heads over
// wire.MaxHeaderBytes; serve it with HTTPServer for the other limits.
func (s *Server) Handler() http.Handler { return s.limitHeaders(s.mux) }

// Options returns the options in force, defaults filled in.
func (s *Server) Options() Options { return s.o }

// Close writes buffered audit records. Call it after the HTTP server has
// finished its in-flight requests.
func (s *Server) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.audit.close(ctx)
}

func (s *Server) putLock(name string) *sync.Mutex {
	return &s.putLocks[maphash.String(s.seed, name)%uint64(len(s.putLocks))]
}

// keepCopies reports whether the repository on st keeps metadata copies:
// from format version 2 on, and for a store that holds no repository yet
// (a client will create one of the current version). A version-1
// repository is served as version-1 builds wrote it, until it is upgraded.
func keepCopies(ctx context.Context, st repo.Store) bool {
	b, err := repo.WithCopies(st).Get(ctx, repo.ConfigName)
	if err != nil {
		return true
	}
	v, _, err := repo.PeekConfig(b)
	return err != nil || v >= 2
}
