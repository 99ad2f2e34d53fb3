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

func (d *etcdDatabase) Backup(ctx context.Context, r *repo.Repository, stream string) error {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	o := BackupOptions{Stream: stream, Host: env.Host, Logf: env.Logf("")}
	if o.Parent, err = engine.Parent(ctx, r, stream); err != nil {
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	}
	res, err := Backup(ctx, cli, d.cfg, r, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, res.ID)
	fmt.Fprintf(env.Stderr, "snapshot %s of %s: etcd revision %d, %d keys, %s export, %s stored before parity\n",
		res.ID.Short(), stream, res.Revision, res.Keys, source.HumanBytes(res.Snapshot.Size), source.HumanBytes(res.Snapshot.StoredBytes))
	return nil
}

func (d *etcdDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) error {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	st, err := Capture(ctx, cli, d.cfg, r, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease,
		Logf: env.Logf("strata log: "),
	})
	fmt.Fprintf(env.Stderr, "log %s: %d revisions stored in %d segments (%s sealed), %d already stored and skipped, %d gaps, %d base snapshots, %d reconnects; newest revision %d%s\n",
		stream, st.Stored, st.Segments, source.HumanBytes(st.StoredBytes), st.Skipped, st.Gaps, st.Bases, st.Reconnects, st.Last, st.NotStored())
	return err
}

func (d *etcdDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) error {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return err
	}
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	if o.DryRun {
		n, err := CountKeys(ctx, cli, d.cfg)
		if err != nil {
			return err
		}
		return env.PrintDryRun(ctx, r, p, d.cfg.String(), n, "keys", o.Force,
			"--force would delete them first", "the restore would be refused without --force")
	}
	st, err := Restore(ctx, cli, d.cfg, r, p, RestoreOptions{
		Force: o.Force,
		Logf:  env.Logf("strata restore: "),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "restored %s at %s into %s: snapshot %s (revision %d, %d keys) + %d revisions, through source revision %d, in %d transactions",
		stream, t, d.cfg, p.Base.ID.Short(), st.BaseRevision, st.BaseKeys, st.Revisions, st.LastRevision, st.Transactions)
	if st.SplitRevisions > 0 {
		fmt.Fprintf(env.Stderr, " (%d revisions too large for one transaction were split)", st.SplitRevisions)
	}
	fmt.Fprintln(env.Stderr)
	if st.LeasedKeys > 0 {
		fmt.Fprintf(env.Stderr, "note: %d writes of lease-bound keys were restored without a lease: those keys will not expire in the target\n", st.LeasedKeys)
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
					return err
				}
				proof = "snapshot " + s.ID.Short() + " is at the revision reached, and its proof matched"
			}
		}
	}
	fmt.Fprintf(env.Stderr, "verified: the target holds the %d keys written, digest equal; %s\n", st.Proof.Records, proof)
	return nil
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
