package redis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

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

func (d *redisDatabase) Backup(ctx context.Context, r *repo.Repository, stream string, o source.BackupOptions) (source.BackupReport, error) {
	if err := o.FromDatabase(); err != nil {
		return source.BackupReport{}, err
	}
	env := d.env
	res, err := Backup(ctx, r, d.o, BackupOptions{Stream: stream, Host: env.Host, Logf: env.Logf("strata backup: ")})
	if err != nil {
		return source.BackupReport{}, err
	}
	pos := "no log position"
	if res.Positioned {
		pos = fmt.Sprintf("log position %d", *res.Snapshot.Position)
	}
	return source.BackupReport{ID: res.ID, Snapshot: res.Snapshot,
		Detail: fmt.Sprintf("%s at replication offset %d (%s)", d.o.Name, res.Base.Offset, pos)}, nil
}

func (d *redisDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) (source.CaptureReport, error) {
	env := d.env
	st, err := Capture(ctx, r, d.o, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease, Logf: env.Logf("strata log: "),
	})
	return source.CaptureReport{LogStats: st.LogStats, Unit: "commands", Bases: st.Bases, Reconnects: st.Reconnects, Dropped: st.Dropped}, err
}

func (d *redisDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) (source.RestoreReport, error) {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return source.RestoreReport{}, err
	}
	if o.DryRun {
		if err := env.PrintPlan(ctx, r, p); err != nil {
			return source.RestoreReport{}, err
		}
		fmt.Fprintf(env.Stdout, "target %s: its whole contents would be replaced (it must be empty, or give --force)\n", d.o.Name)
		return source.RestoreReport{}, nil
	}
	st, err := Restore(ctx, r, p, d.o, RestoreOptions{Force: o.Force, Logf: env.Logf("strata restore: "), Expect: expectAt(cat, stream)})
	if err != nil {
		return source.RestoreReport{}, err
	}
	rep := source.RestoreReport{Target: d.o.Name, Snapshot: p.Base.ID, Base: source.HumanBytes(st.RDBBytes) + " of RDB",
		Events: st.Commands, Unit: "commands", Reached: fmt.Sprintf("position %d", st.Through)}
	if st.CutMulti {
		rep.Notes = append(rep.Notes, "the target fell inside a MULTI/EXEC unit, which was left out")
	}
	if st.Verified != "" {
		rep.Verified = fmt.Sprintf("the target holds %d keys without an expiry, digest %x…, as %s records", st.Proof.Records, st.Proof.Digest[:6], st.Verified)
	}
	return rep, nil
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
