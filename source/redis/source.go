package redis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func init() { source.Register("redis", newRedisDatabase) }

// redisDatabase is a Redis instance reached as a replica (source) or made
// a replica of the restoring process (target); see source/
type redisDatabase struct {
	o   Options
	env *source.Env
}

var _ source.Source = (*redisDatabase)(nil)

func newRedisDatabase(u *url.URL, env *source.Env) (source.Source, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if host == "" {
		return nil, source.URLErrorf("%s: want redis://[user:password@]HOST:PORT[/DB]", u.Redacted())
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, source.URLErrorf("%s: bad port %q", u.Redacted(), port)
	}
	// Replication carries every database, so /DB selects nothing; it is
	// accepted, checked, and otherwise ignored, for URLs copied from redis-cli.
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return nil, source.URLErrorf("%s: the path must be a database number", u.Redacted())
		}
	}
	if u.RawQuery != "" {
		return nil, source.URLErrorf("%s: redis URLs take no query parameters", u.Redacted())
	}
	pw, err := source.Password(u, env)
	if err != nil {
		return nil, err
	}
	name := (&url.URL{Scheme: "redis", Host: net.JoinHostPort(host, port)}).String()
	if user := u.User.Username(); user != "" {
		name = (&url.URL{Scheme: "redis", User: url.User(user), Host: net.JoinHostPort(host, port)}).String()
	}
	return &redisDatabase{o: Options{Addr: net.JoinHostPort(host, port), User: u.User.Username(), Password: pw, Name: name}, env: env}, nil
}

func (d *redisDatabase) Backup(ctx context.Context, r *repo.Repository, stream string) error {
	env := d.env
	logf := env.Logf("strata backup: ")
	res, err := Backup(ctx, r, d.o, BackupOptions{Stream: stream, Host: env.Host, Logf: logf})
	if err != nil {
		return err
	}
	pos := "no log position"
	if res.Positioned {
		pos = fmt.Sprintf("log position %d", *res.Snapshot.Position)
	}
	logf("%s: snapshot %s of %s at replication offset %d (%s), %s", d.o.Name, res.ID.Short(), stream, res.Base.Offset, pos, source.HumanBytes(res.Snapshot.Size))
	fmt.Fprintln(env.Stdout, res.ID)
	return nil
}

func (d *redisDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) error {
	env := d.env
	logf := env.Logf("strata log: ")
	st, err := Capture(ctx, r, d.o, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease, Logf: logf,
	})
	logf("%s: %d commands stored in %d segments (%s sealed), %d PING/REPLCONF dropped, %d base snapshots, %d gaps, %d reconnects%s",
		stream, st.Stored, st.Segments, source.HumanBytes(st.StoredBytes), st.Dropped, st.Bases, st.Gaps, st.Reconnects, st.NotStored())
	return err
}

func (d *redisDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) error {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return err
	}
	if o.DryRun {
		if err := env.PrintPlan(ctx, r, p); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "target %s: its whole contents would be replaced (it must be empty, or give --force)\n", d.o.Name)
		return nil
	}
	start := time.Now()
	st, err := Restore(ctx, r, p, d.o, RestoreOptions{Force: o.Force, Logf: env.Logf("strata restore: "), Expect: expectAt(cat, stream)})
	if err != nil {
		return err
	}
	cut := ""
	if st.CutMulti {
		cut = " (the target fell inside a MULTI/EXEC unit, which was left out)"
	}
	fmt.Fprintf(env.Stderr, "restored %s at %s into %s: snapshot %s (%s of RDB) + %d commands through position %d%s, in %s\n",
		stream, t, d.o.Name, p.Base.ID.Short(), source.HumanBytes(st.RDBBytes), st.Commands, st.Through, cut, time.Since(start).Round(time.Millisecond))
	if st.Verified != "" {
		fmt.Fprintf(env.Stderr, "verified: the target holds %d keys without an expiry, digest %x…, as %s records\n", st.Proof.Records, st.Proof.Digest[:6], st.Verified)
	}
	return nil
}

// expectAt finds the recorded proof of a snapshot of the stream at a
// log position: the state a restore reaches there must have it.
func expectAt(cat *index.Catalog, stream string) func(uint64) (repo.Proof, string, bool) {
	return func(pos uint64) (repo.Proof, string, bool) {
		for _, s := range cat.Stream(stream) {
			if want, ok := s.Proof(); ok && s.Position != nil && *s.Position == pos {
				return want, fmt.Sprintf("snapshot %s at position %d", s.ID.Short(), pos), true
			}
		}
		return repo.Proof{}, "", false
	}
}

var _ source.PlanProver = (*redisDatabase)(nil)

// ProveRestore restores the plan into the instance, replacing what it
// holds, and returns the proof of what it then holds, read back: the
// replay proof of a drill with --target, which only a server can apply
// commands for.
func (d *redisDatabase) ProveRestore(ctx context.Context, r *repo.Repository, p *index.Plan) (source.StateProof, error) {
	st, err := Restore(ctx, r, p, d.o, RestoreOptions{Force: true, ReadBack: true, Logf: d.env.Logf("strata drill: ")})
	if err != nil {
		return source.StateProof{}, err
	}
	return source.StateProof{Proof: st.Proof, Reached: st.Through, Events: st.Commands}, nil
}

var _ source.Holder = (*redisDatabase)(nil)

// Held counts the keys of every database: a restore replaces them all.
func (d *redisDatabase) Held(ctx context.Context) (int64, string, error) {
	conn, err := Dial(ctx, d.o)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	keys, err := conn.Keyspace()
	if err != nil {
		return 0, "", err
	}
	var n int64
	for _, k := range keys {
		n += k
	}
	return n, "keys", nil
}
