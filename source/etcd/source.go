package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func init() { source.Register("etcd", newEtcdDatabase) }

// etcdDatabase is an etcd cluster named by etcd://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...].
type etcdDatabase struct {
	cfg Config
	env *source.Env
}

var _ source.Source = (*etcdDatabase)(nil)

func newEtcdDatabase(u *url.URL, env *source.Env) (source.Source, error) {
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, source.URLErrorf("%s: an etcd URL is etcd://[USER@]HOST:PORT[,HOST:PORT...], with no path or query", u.Redacted())
	}
	var cfg Config
	for _, hp := range strings.Split(u.Host, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return nil, source.URLErrorf("%s: endpoint %q: want HOST:PORT", u.Redacted(), hp)
		}
		cfg.Endpoints = append(cfg.Endpoints, "http://"+net.JoinHostPort(host, port))
	}
	// etcd logs in with a user and password, so a password only counts with
	// the URL's user; without one, STRATA_SOURCE_PASSWORD (perhaps meant for
	// the other end of a copy) is not read.
	if u.User != nil && u.User.Username() != "" {
		pw, err := source.Password(u, env)
		if err != nil {
			return nil, err
		}
		if pw == "" {
			return nil, source.URLErrorf("%s: user %q but no password: put it in STRATA_SOURCE_PASSWORD or STRATA_SOURCE_PASSWORD_FILE", u.Redacted(), u.User.Username())
		}
		cfg.Username, cfg.Password = u.User.Username(), pw
	} else if _, ok := u.User.Password(); ok {
		return nil, source.URLErrorf("%s: a password but no user: write etcd://USER@HOST:PORT", u.Redacted())
	}
	return &etcdDatabase{cfg: cfg, env: env}, nil
}

func (d *etcdDatabase) Backup(ctx context.Context, r *repo.Repository, stream string, bo source.BackupOptions) (source.BackupReport, error) {
	if err := bo.FromDatabase(); err != nil {
		return source.BackupReport{}, err
	}
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.BackupReport{}, err
	}
	defer cli.Close()
	o := BackupOptions{Stream: stream, Host: env.Host, Logf: env.Logf("")}
	if o.Parent, err = engine.Parent(ctx, r, stream); err != nil {
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	}
	res, err := Backup(ctx, cli, d.cfg, r, o)
	if err != nil {
		return source.BackupReport{}, err
	}
	return source.BackupReport{ID: res.ID, Snapshot: res.Snapshot, Detail: fmt.Sprintf("etcd revision %d, %d keys", res.Revision, res.Keys)}, nil
}

func (d *etcdDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) (source.CaptureReport, error) {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.CaptureReport{}, err
	}
	defer cli.Close()
	st, err := Capture(ctx, cli, d.cfg, r, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease,
		Logf: env.Logf("strata log: "),
	})
	rep := source.CaptureReport{LogStats: st.LogStats, Unit: "revisions", Bases: st.Bases, Reconnects: st.Reconnects}
	if st.Last > 0 {
		rep.Newest = fmt.Sprintf("revision %d", st.Last)
	}
	return rep, err
}

func (d *etcdDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) (source.RestoreReport, error) {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return source.RestoreReport{}, err
	}
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.RestoreReport{}, err
	}
	defer cli.Close()
	if o.DryRun {
		n, err := CountKeys(ctx, cli, d.cfg)
		if err != nil {
			return source.RestoreReport{}, err
		}
		return source.RestoreReport{}, env.PrintDryRun(ctx, r, p, d.cfg.String(), n, "keys", o.Force,
			"--force would delete them first", "the restore would be refused without --force")
	}
	st, err := Restore(ctx, cli, d.cfg, r, p, RestoreOptions{
		Force: o.Force,
		Logf:  env.Logf("strata restore: "),
	})
	if err != nil {
		return source.RestoreReport{}, err
	}
	rep := source.RestoreReport{Snapshot: p.Base.ID, Base: fmt.Sprintf("revision %d, %d keys", st.BaseRevision, st.BaseKeys),
		Events: st.Revisions, Unit: "revisions", Reached: fmt.Sprintf("source revision %d", st.LastRevision)}
	if st.SplitRevisions > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d revisions too large for one transaction were split (%d transactions in all)", st.SplitRevisions, st.Transactions))
	}
	if st.LeasedKeys > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d writes of lease-bound keys were restored without a lease: those keys will not expire in the target", st.LeasedKeys))
	}
	// The read-back is Restore's; say what it proved. A state past the
	// base that is a later snapshot's is checked against its proof too.
	proof := "the snapshot records no proof (unproven)"
	if _, ok := p.Base.Proof(); ok {
		proof = "the snapshot's proof matched"
	}
	if st.Revisions > 0 {
		proof = "no snapshot is at the revision reached (the replay proofs of 'strata check --read-data' and 'strata drill' cover it)"
		for _, s := range cat.Stream(stream) {
			want, ok := s.Proof()
			if ok && s.Position != nil && *s.Position == uint64(st.LastRevision) {
				if err := want.Check(fmt.Sprintf("revision %d (snapshot %s)", st.LastRevision, s.ID.Short()), st.Proof); err != nil {
					return source.RestoreReport{}, err
				}
				proof = "snapshot " + s.ID.Short() + " is at the revision reached, and its proof matched"
			}
		}
	}
	rep.Verified = fmt.Sprintf("the target holds the %d keys written, digest equal; %s", st.Proof.Records, proof)
	return rep, nil
}

var _ source.Holder = (*etcdDatabase)(nil)

// Held counts the cluster's keys: a forced restore deletes them all.
func (d *etcdDatabase) Held(ctx context.Context) (int64, string, error) {
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return 0, "", err
	}
	defer cli.Close()
	n, err := CountKeys(ctx, cli, d.cfg)
	return n, "keys", err
}
