package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// One writer per stream (FORMAT.md §15): `strata log` holds the stream's
// lease while it captures. The flags are registered by the command, beside
// its own, and the lease is taken after the repository is open and before
// the log is listed.

// leaseFlags are the flags of a command that writes a stream's log.
type leaseFlags struct {
	standby  *bool
	interval *time.Duration
	missed   *int
}

// addLeaseFlags registers --standby, --lease-interval and --lease-missed.
func addLeaseFlags(fs *pflag.FlagSet) leaseFlags {
	return leaseFlags{
		standby:  fs.Bool("standby", false, "if another capture holds the stream, wait and take over once it stops renewing its lease, instead of refusing"),
		interval: fs.Duration("lease-interval", engine.DefaultLeaseInterval, "renew the stream's lease this often; a standby takes over after --lease-missed intervals without a renewal"),
		missed:   fs.Int("lease-missed", engine.DefaultLeaseMissed, "intervals without a renewal after which a standby takes over (at least 2)"),
	}
}

func (f leaseFlags) check() error {
	switch {
	case *f.interval < time.Millisecond || *f.interval > repo.MaxLeaseInterval:
		return usagef("--lease-interval must be between 1ms and %s", repo.MaxLeaseInterval)
	case *f.missed < 2 || *f.missed > repo.MaxLeaseMissed:
		return usagef("--lease-missed must be between 2 and %d", repo.MaxLeaseMissed)
	}
	return nil
}

// takeLease takes the stream's lease for a capture, or refuses naming its
// holder (with --standby, waits for it). The returned context is ctx,
// cancelled with the lease's loss as its cause, so a deposed capture
// stops; release gives the lease up and must be called once the capture's
// last write is done.
func takeLease(ctx context.Context, env *environment, r *repo.Repository, stream string, f leaseFlags) (*engine.Lease, context.Context, func(), error) {
	host := env.host
	if h := env.getenv("STRATA_LEASE_HOST"); h != "" {
		host = h // hosts that share a name (containers) must tell their captures apart
	}
	if host == "" {
		host = "unknown-host"
	}
	l, err := engine.AcquireLease(ctx, r.Store(), engine.LeaseOptions{
		Stream: stream, Host: host, PID: os.Getpid(),
		Interval: *f.interval, Missed: *f.missed, Standby: *f.standby,
		Alive: processAlive,
		Logf:  func(format string, args ...any) { fmt.Fprintf(env.stderr, "strata log: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Lost():
			cancel(l.Check())
		case <-lctx.Done():
		}
	}()
	release := func() {
		cancel(nil)
		if err := l.Release(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(env.stderr, "strata log: %v\n", err)
		}
	}
	return l, lctx, release, nil
}

// leaseOutcome is the capture's error, or the lease's loss when that is
// what ended it.
func leaseOutcome(l *engine.Lease, err error) error {
	if lerr := l.Check(); lerr != nil && !errors.Is(err, engine.ErrLeaseLost) {
		return errors.Join(lerr, err)
	}
	return err
}

// processAlive reports whether process pid of this host runs: signal 0
// checks without signalling, and EPERM means it runs as another user.
func processAlive(pid int) bool {
	if pid <= 0 {
		return true // not a process we can ask about: assume it runs
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
