package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// rollbackStamp is the UTC time in a rollback stream's name (ISO 8601
// basic format: digits, 'T' and 'Z' are all allowed in stream names).
const rollbackStamp = "20060102T150405Z"

// rollbackStream names the stream that keeps what a target held before a
// forced restore of stream at t: "<stream>.rollback.<UTC stamp>". It is a
// sibling of the stream, never a partition of it ("<stream>/…"), so
// nothing that reads the stream or its partitions sees it.
func rollbackStream(stream string, t time.Time) (string, error) {
	name := stream + ".rollback." + t.UTC().Format(rollbackStamp)
	if err := repo.ValidStream(name); err != nil {
		return "", fmt.Errorf("no room for a rollback point's stream: %w (give --no-rollback-point to restore without one)", err)
	}
	return name, nil
}

// rollbackPoint is what a forced restore leaves behind before it starts:
// the snapshot of the target's former contents, and the command that puts
// them back.
type rollbackPoint struct {
	stream, snapshot, command string
}

// takeRollbackPoint snapshots what the database at dbURL holds into a
// stream of its own, through the source's own backup, before a forced
// restore replaces it. It returns nil (and takes nothing) when the
// restore is not forced or is a dry run, and when the target is empty.
// An error means no rollback point exists, and the restore must not start.
func takeRollbackPoint(ctx context.Context, env *environment, r *repo.Repository, location, stream, dbURL string, db source.Source, o source.RestoreOptions) (*rollbackPoint, error) {
	if !o.Force || o.DryRun {
		return nil, nil
	}
	refuse := func(err error) error {
		return fmt.Errorf("no rollback point, so the restore did not start: %w; give --no-rollback-point to replace the target without one", err)
	}
	h, ok := db.(source.Holder)
	if !ok {
		return nil, refuse(fmt.Errorf("%s: this database cannot tell whether it holds anything", source.RedactURL(dbURL)))
	}
	n, what, err := h.Held(ctx)
	if err != nil {
		return nil, refuse(err)
	}
	if n == 0 {
		return nil, nil // nothing is replaced, nothing to roll back to
	}
	name, err := rollbackStream(stream, time.Now())
	if err != nil {
		return nil, refuse(err)
	}
	if c := remoteOf(r); c != nil {
		if _, err := c.MayBackup(ctx, name, time.Now()); err != nil {
			return nil, refuse(err)
		}
	}
	fmt.Fprintf(env.stderr, "the target holds %d %s: taking a rollback point of them into stream %s before the restore\n", n, what, name)
	// The restore's own output has no place for the snapshot's ID: the
	// summary and the command below name it.
	start := time.Now()
	rep, err := db.Backup(ctx, r, name, source.BackupOptions{})
	if rep.Snapshot == nil {
		return nil, refuse(err)
	}
	printBackupSummary(env, name, rep, start)
	if err != nil {
		return nil, refuse(err)
	}
	id := rep.ID.String()
	p := &rollbackPoint{stream: name, snapshot: id}
	p.command = shellJoin("strata", "restore", "--repo", commandLocation(location), "--stream", name,
		"--snapshot", id, "--target", commandURL(dbURL), "--force")
	fmt.Fprintf(env.stderr, "rollback point: snapshot %s of stream %s holds what the target held; to put it back:\n  %s\n", id[:16], name, p.command)
	if c, ok := db.(source.RollbackCaveat); ok {
		fmt.Fprintf(env.stderr, "  (%s)\n", c.RollbackCaveat())
	}
	return p, nil
}

// failed adds to a restore's error the command that puts back what the
// target held, since a forced restore that fails after it began leaves the
// target partly replaced (one that failed its own checks first left it
// alone, and the command then restores what it still holds).
func (p *rollbackPoint) failed(err error) error {
	if p == nil || err == nil {
		return err
	}
	return fmt.Errorf("%w; if the target was changed, what it held before is in rollback point %s: %s", err, p.stream, p.command)
}

// commandLocation is a repository location as a command run from any
// directory reaches it: a local path made absolute.
func commandLocation(location string) string {
	if strings.Contains(location, "://") {
		return location
	}
	if abs, err := filepath.Abs(location); err == nil {
		return abs
	}
	return location
}

// commandURL is a database URL to print in a command: without its
// password, which comes from STRATA_SOURCE_PASSWORD as for any restore.
func commandURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return source.RedactURL(raw)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.User(u.User.Username())
		}
	}
	return u.String()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellJoin joins a command's words for a POSIX shell, single-quoting those
// it would otherwise split or expand.
func shellJoin(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if shellSafe.MatchString(w) {
			q[i] = w
		} else {
			q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
