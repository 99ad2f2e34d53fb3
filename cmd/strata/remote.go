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
// request, so more of them are in flight.
func restoreOptions(r *repo.Repository) engine.RestoreOptions {
	if remoteOf(r) != nil {
		return engine.RestoreOptions{Workers: 16}
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
	if err := c.ReportRestore(context.WithoutCancel(ctx), rep); err != nil {
		fmt.Fprintf(env.stderr, "warning: the server did not take the restore report: %v\n", err)
	}
}

// openRepoToWrite opens the repository for a backup or capture of stream.
// Through a server it first checks that the token may write the stream, so
// a backup the server would refuse at the end uploads nothing.
func openRepoToWrite(ctx context.Context, env *environment, location, stream string) (*repo.Repository, error) {
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return nil, err
	}
	if c := remoteOf(r); c != nil {
		if err := c.MayBackup(ctx, stream); err != nil {
			return nil, err
		}
	}
	return r, nil
}
