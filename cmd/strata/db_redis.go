package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/redis"
)

func init() { databases["redis"] = newRedisDatabase }

// redisDatabase is a Redis instance reached as a replica (source) or made
// a replica of the restoring process (target); see source/redis.
type redisDatabase struct {
	o redis.Options
}

func newRedisDatabase(env *environment, u *url.URL) (database, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if host == "" {
		return nil, usagef("%s: want redis://[user:password@]HOST:PORT[/DB]", u.Redacted())
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, usagef("%s: bad port %q", u.Redacted(), port)
	}
	// Replication carries every database, so /DB selects nothing; it is
	// accepted, checked, and otherwise ignored, for URLs copied from redis-cli.
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return nil, usagef("%s: the path must be a database number", u.Redacted())
		}
	}
	if u.RawQuery != "" {
		return nil, usagef("%s: redis URLs take no query parameters", u.Redacted())
	}
	pw, err := env.sourcePassword(u)
	if err != nil {
		return nil, err
	}
	name := (&url.URL{Scheme: "redis", Host: net.JoinHostPort(host, port)}).String()
	if user := u.User.Username(); user != "" {
		name = (&url.URL{Scheme: "redis", User: url.User(user), Host: net.JoinHostPort(host, port)}).String()
	}
	return &redisDatabase{o: redis.Options{Addr: net.JoinHostPort(host, port), User: u.User.Username(), Password: pw, Name: name}}, nil
}

// logf prints progress lines to stderr; the capture calls it from more
// than one goroutine.
func redisLogf(env *environment, cmd string) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(env.stderr, "strata "+cmd+": "+format+"\n", args...)
	}
}

func (d *redisDatabase) backup(ctx context.Context, env *environment, r *repo.Repository, stream string) error {
	logf := redisLogf(env, "backup")
	res, err := redis.Backup(ctx, r, d.o, redis.BackupOptions{Stream: stream, Host: env.host, Logf: logf})
	if err != nil {
		return err
	}
	pos := "no log position"
	if res.Positioned {
		pos = fmt.Sprintf("log position %d", *res.Snapshot.Position)
	}
	logf("%s: snapshot %s of %s at replication offset %d (%s), %s", d.o.Name, res.ID.Short(), stream, res.Base.Offset, pos, humanBytes(res.Snapshot.Size))
	fmt.Fprintln(env.stdout, res.ID)
	return nil
}

func (d *redisDatabase) capture(ctx context.Context, env *environment, r *repo.Repository, stream string, o captureOptions) error {
	logf := redisLogf(env, "log")
	st, err := redis.Capture(ctx, r, d.o, redis.CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.host, Logf: logf,
	})
	logf("%s: %d commands stored in %d segments (%s sealed), %d PING/REPLCONF dropped, %d base snapshots, %d gaps, %d reconnects%s",
		stream, st.Stored, st.Segments, humanBytes(st.StoredBytes), st.Dropped, st.Bases, st.Gaps, st.Reconnects, notStored(st.LogStats))
	return err
}

func (d *redisDatabase) restore(ctx context.Context, env *environment, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o restoreDBOptions) error {
	p, err := cat.Plan(stream, t)
	if err != nil {
		return err
	}
	if o.DryRun {
		if err := printPlan(ctx, env, r, p); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "target %s: its whole contents would be replaced (it must be empty, or give --force)\n", d.o.Name)
		return nil
	}
	start := time.Now()
	st, err := redis.Restore(ctx, r, p, d.o, redis.RestoreOptions{Force: o.Force, Logf: redisLogf(env, "restore")})
	if err != nil {
		return err
	}
	cut := ""
	if st.CutMulti {
		cut = " (the target fell inside a MULTI/EXEC unit, which was left out)"
	}
	fmt.Fprintf(env.stderr, "restored %s at %s into %s: snapshot %s (%s of RDB) + %d commands through position %d%s, in %s\n",
		stream, t, d.o.Name, p.Base.ID.Short(), humanBytes(st.RDBBytes), st.Commands, st.Through, cut, time.Since(start).Round(time.Millisecond))
	return nil
}
