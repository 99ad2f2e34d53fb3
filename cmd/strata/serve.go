package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// cmdServe runs the index server until SIGTERM or SIGINT, then finishes
// the requests in flight (up to --shutdown-timeout) and writes the audit
// records still buffered.
func cmdServe(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --tokens FILE [--listen ADDR] [--tls-cert F --tls-key F] [--shutdown-timeout D] [--max-connections N] [--memory MIB] [--log-level LEVEL] [--scrub-every D [--scrub-cycle D]] [--policy FILE] [--status-days N]")
	location := repoFlag(fs, env)
	listen := fs.String("listen", "127.0.0.1:8420", "address to listen on")
	tokensFile := fs.String("tokens", "", "tokens file (strata token create); reloaded on SIGHUP (required)")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM); with --tls-key, serve HTTPS")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	logLevel := fs.String("log-level", "info", "the least `level` logged: debug, info, warn or error")
	maxConns := fs.Int("max-connections", server.DefaultMaxConns, "connections served at once; more wait in the listen backlog")
	memory := fs.Int64("memory", server.DefaultMemory>>20, "MiB of request bodies and objects held in memory at once (at least 514)")
	var scrubEvery days
	fs.Var(&scrubEvery, "scrub-every", "run a keyless scrub this often (a Go duration, or days: 1d): verify shard checksums, rebuild bad shards from parity; 0 for none")
	scrubCycle := days(ops.DefaultCycle)
	fs.Var(&scrubCycle, "scrub-cycle", "with --scrub-every, read every shard once in this long")
	policyFile := fs.String("policy", "", "recovery objectives (YAML) the status page at / and the metrics grade streams by; reloaded on SIGHUP")
	statusDays := fs.Int("status-days", server.DefaultStatusDays, "days the status page's timelines show")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) != 0:
			return usagef("unexpected arguments %q", args)
		case *tokensFile == "":
			return usagef("--tokens is required: create one with strata token create --tokens FILE")
		case (*certFile == "") != (*keyFile == ""):
			return usagef("give both --tls-cert and --tls-key, or neither")
		case *memory<<20 < server.MinMemory:
			return usagef("--memory must be at least %d MiB: the largest upload is reserved twice", server.MinMemory>>20)
		case *maxConns < 1:
			return usagef("--max-connections must be at least 1")
		case isRemote(*location):
			return usagef("--repo must be the repository's storage (a directory or s3://), not another server")
		case scrubEvery < 0 || scrubCycle <= 0:
			return usagef("--scrub-every and --scrub-cycle must be positive")
		case *statusDays < 1 || *statusDays > 3660:
			return usagef("--status-days must be 1 to 3660")
		}
		var policy *ops.Policy
		if *policyFile != "" {
			p, err := ops.LoadPolicy(*policyFile)
			if err != nil {
				return usageError{err.Error()}
			}
			policy = p
		}
		tokens, err := auth.LoadFile(*tokensFile)
		if err != nil {
			return err
		}
		var current atomic.Pointer[auth.Set]
		current.Store(tokens)
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
		}
		logger := slog.New(slog.NewJSONHandler(env.stderr, &slog.HandlerOptions{Level: level}))

		st, err := env.openStore(ctx, *location)
		if err != nil {
			return err
		}
		srv, err := server.New(ctx, server.Options{Store: st, Tokens: current.Load, Logger: logger, MaxConns: *maxConns, Memory: *memory << 20,
			Policy: policy, StatusDays: *statusDays})
		if err != nil {
			return err
		}
		hs := srv.HTTPServer()
		bound := srv.Options().MemoryBound()
		if env.getenv("GOMEMLIMIT") == "" {
			// A soft limit makes the collector return the memory of finished
			// uploads before the heap doubles (PROTOCOL.md, "Limits and memory").
			debug.SetMemoryLimit(bound + srv.CatalogBytes() + 64<<20)
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		ln = srv.Listener(ln)
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				return fmt.Errorf("TLS: %w", err)
			}
			hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, hs.TLSConfig)
		}
		logger.Info("serving", "addr", ln.Addr().String(), "tls", *certFile != "", "tokens", tokens.Len(),
			"max_connections", srv.Options().MaxConns, "memory_bound_mib", bound>>20)

		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				if t, err := auth.LoadFile(*tokensFile); err != nil {
					logger.Error("tokens not reloaded; the old set stays in force", "error", err)
				} else {
					current.Store(t)
					logger.Info("tokens reloaded", "tokens", t.Len())
				}
				if *policyFile == "" {
					continue
				}
				if p, err := ops.LoadPolicy(*policyFile); err != nil {
					logger.Error("policy not reloaded; the old one stays in force", "error", err)
				} else {
					srv.SetPolicy(p)
					logger.Info("policy reloaded", "rules", len(p.Streams))
				}
			}
		}()

		scrubCtx, stopScrubs := context.WithCancel(ctx)
		scrubbed := make(chan struct{})
		if scrubEvery > 0 {
			logger.Info("keyless scrubs", "every", scrubEvery.String(), "cycle", scrubCycle.String())
			go func() {
				defer close(scrubbed)
				srv.RunScrubs(scrubCtx, time.Duration(scrubEvery), time.Duration(scrubCycle))
			}()
		} else {
			close(scrubbed)
		}

		served := make(chan error, 1)
		go func() { served <- hs.Serve(ln) }()
		select {
		case err = <-served:
		case <-ctx.Done():
			logger.Info("shutting down: finishing in-flight requests", "timeout", grace.String())
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *grace)
			err = hs.Shutdown(sctx)
			cancel()
			<-served
		}
		// A scrub pass in progress stops at its next store call; its audit
		// record must be in before the last ones are written.
		stopScrubs()
		<-scrubbed
		if cerr := srv.Close(context.WithoutCancel(ctx)); cerr != nil {
			logger.Error("the last audit records were not written", "error", cerr)
			err = errors.Join(err, cerr)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		logger.Info("stopped")
		return err
	}
}

// cmdAudit prints the audit trail: through a server (admin token), or
// straight from the repository's storage.
func cmdAudit(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL [--since TIME] [--stream NAME] [--who TOKEN] [--action ACTION] [--json]")
	location := repoFlag(fs, env)
	since := fs.String("since", "", "only records at or after this instant (RFC 3339 or unix seconds)")
	stream := fs.String("stream", "", "only records of this `stream`")
	who := fs.String("who", "", "only records of the token with this `name`")
	action := fs.String("action", "", "only records of this `action` (backup, log, put, get, delete, forget, restore, check, audit-read, refusals-summary, ...)")
	asJSON := jsonFlag(fs, `print the records as NDJSON, one {"time","token","remote","action","object","stream","status","result","detail","bytes","seconds"} a line, as stored`)
	return func(ctx context.Context, args []string) error {
		var from time.Time
		if *since != "" {
			t, err := index.ParseTime(*since)
			if err != nil {
				return usageError{err.Error()}
			}
			from = t
		}
		enc := json.NewEncoder(env.stdout)
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		if !*asJSON {
			fmt.Fprintln(tw, "TIME\tTOKEN\tACTION\tSTATUS\tRESULT\tSTREAM\tOBJECT\tDETAIL")
		}
		print := func(r wire.AuditRecord) error {
			if *stream != "" && r.Stream != *stream || *who != "" && r.Token != *who || *action != "" && r.Action != *action {
				return nil
			}
			if *asJSON {
				return enc.Encode(r)
			}
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339Nano), orDash(r.Token), printable(r.Action), r.Status, printable(r.Result), orDash(r.Stream), orDash(r.Object), printable(r.Detail))
			return err
		}
		var err error
		st, err := env.openStore(ctx, *location)
		if err != nil {
			return err
		}
		if rs, ok := repo.StoreAs[client.Remote](st); ok {
			err = rs.Client().Audit(ctx, from, print)
		} else {
			err = server.ReadAudit(ctx, st, from, print)
		}
		if !*asJSON {
			tw.Flush()
		}
		return err
	}
}

// orDash is a table cell: "-" when empty, else s made printable, so a
// field cannot forge a row or hide text (printable).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}
