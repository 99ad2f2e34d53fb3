package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/strata-backup/strata/client"
	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// isRemote reports whether a repository location is an index server.
func isRemote(location string) bool {
	return strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://")
}

// remoteOf returns the server client of a repository opened through one,
// found through any decorators by its optional interface.
func remoteOf(r *repo.Repository) *client.Client {
	if s, ok := repo.StoreAs[client.Remote](r.Store()); ok {
		return s.Client()
	}
	return nil
}

// localOnly refuses commands that need the store itself.
func localOnly(r *repo.Repository, what string) error {
	if c := remoteOf(r); c != nil {
		return fmt.Errorf("%s works on the repository's storage, not through a server (%s): run it where the store is reachable", what, c.Location())
	}
	return nil
}

// restoreOptions tunes a restore: through a server every frame is a
// request, so as many are in flight as the store takes at once
// (repo.Concurrency: its limit decorator's, or the default).
func restoreOptions(r *repo.Repository) engine.RestoreOptions {
	if remoteOf(r) != nil {
		return engine.RestoreOptions{Workers: repo.Concurrency(r.Store())}
	}
	return engine.RestoreOptions{}
}

// reportRestore tells a server that a restore ended, for its audit trail
// and metrics. A failed report is a warning: the restore's own result stands.
func reportRestore(ctx context.Context, env *environment, r *repo.Repository, stream, snapshot, target string, start time.Time, bytes int64, restoreErr error) {
	c := remoteOf(r)
	if c == nil {
		return
	}
	rep := wire.RestoreReport{Stream: stream, Snapshot: snapshot, Target: target, Seconds: time.Since(start).Seconds(), Bytes: bytes}
	if restoreErr != nil {
		rep.Error = restoreErr.Error()
	}
	// The server refuses longer fields (PROTOCOL.md, section 7).
	rep.Error, rep.Target = clipString(rep.Error, 4096), clipString(rep.Target, 512)
	if err := c.ReportRestore(context.WithoutCancel(ctx), rep); err != nil {
		fmt.Fprintf(env.stderr, "warning: the server did not take the restore report: %v\n", err)
	}
}

// openRepoToWrite opens the repository for a backup or capture of stream.
// Through a server it first checks that the token may write the stream
// and, when at is not zero, that the server accepts a snapshot dated at,
// so a backup the server would refuse at the end uploads nothing. The
// returned check refuses event times the server would refuse (nil for a
// repository opened on its storage, which has no trusted clock).
func openRepoToWrite(ctx context.Context, env *environment, location, stream string, at time.Time) (*repo.Repository, func(*repo.Event) error, error) {
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return nil, nil, err
	}
	c := remoteOf(r)
	if c == nil {
		return r, nil, nil
	}
	clock, err := c.MayBackup(ctx, stream, at)
	if err != nil {
		return nil, nil, err
	}
	return r, func(e *repo.Event) error {
		// A capture runs for days: read the server's clock again now and
		// then, so the two clocks drifting apart cannot add up.
		if time.Since(clock.Synced()) > 10*time.Minute {
			if fresh, err := c.MayBackup(ctx, stream, time.Time{}); err == nil {
				clock = fresh
			}
		}
		if err := clock.Admit(time.Unix(0, e.Time)); err != nil {
			return fmt.Errorf("event at position %d is dated %w; the events before it are sealed", e.Seq, err)
		}
		return nil
	}, nil
}
