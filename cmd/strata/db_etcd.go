package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/etcd"
)

func init() { databases["etcd"] = newEtcdDatabase }

// etcdDatabase is an etcd cluster named by etcd://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...].
type etcdDatabase struct {
	cfg etcd.Config
}

func newEtcdDatabase(env *environment, u *url.URL) (database, error) {
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, usagef("%s: an etcd URL is etcd://[USER@]HOST:PORT[,HOST:PORT...], with no path or query", u.Redacted())
	}
	var cfg etcd.Config
	for _, hp := range strings.Split(u.Host, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return nil, usagef("%s: endpoint %q: want HOST:PORT", u.Redacted(), hp)
		}
		cfg.Endpoints = append(cfg.Endpoints, "http://"+net.JoinHostPort(host, port))
	}
	// etcd logs in with a user and password, so a password only counts with
	// the URL's user; without one, STRATA_SOURCE_PASSWORD (perhaps meant for
	// the other end of a copy) is not read.
	if u.User != nil && u.User.Username() != "" {
		pw, err := env.sourcePassword(u)
		if err != nil {
			return nil, err
		}
		if pw == "" {
			return nil, usagef("%s: user %q but no password: put it in STRATA_SOURCE_PASSWORD or STRATA_SOURCE_PASSWORD_FILE", u.Redacted(), u.User.Username())
		}
		cfg.Username, cfg.Password = u.User.Username(), pw
	} else if _, ok := u.User.Password(); ok {
		return nil, usagef("%s: a password but no user: write etcd://USER@HOST:PORT", u.Redacted())
	}
	return &etcdDatabase{cfg: cfg}, nil
}

func (d *etcdDatabase) backup(ctx context.Context, env *environment, r *repo.Repository, stream string) error {
	cli, err := etcd.Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	o := etcd.BackupOptions{Stream: stream, Host: env.host}
	// Through a server only the stream's own catalog is visible to a
	// backup token: ask for that one.
	cat, err := loadCatalog(ctx, r, stream)
	if cat == nil {
		return fmt.Errorf("look up the parent snapshot of %s: %w", stream, err)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "warning: %v\n", err)
	}
	{
		if p, err := cat.Latest(stream); err == nil {
			o.Parent = &p
		}
	}
	res, err := etcd.Backup(ctx, cli, d.cfg, r, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, res.ID)
	fmt.Fprintf(env.stderr, "snapshot %s of %s: etcd revision %d, %d keys, %s export, %s stored before parity\n",
		res.ID.Short(), stream, res.Revision, res.Keys, humanBytes(res.Snapshot.Size), humanBytes(res.Snapshot.StoredBytes))
	return nil
}

func (d *etcdDatabase) capture(ctx context.Context, env *environment, r *repo.Repository, stream string, o captureOptions) error {
	cli, err := etcd.Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	st, err := etcd.Capture(ctx, cli, d.cfg, r, etcd.CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.host,
		Log: func(format string, a ...any) { fmt.Fprintf(env.stderr, "strata log: "+format+"\n", a...) },
	})
	fmt.Fprintf(env.stderr, "log %s: %d revisions stored in %d segments (%s sealed), %d already stored and skipped, %d gaps, %d base snapshots, %d reconnects; newest revision %d%s\n",
		stream, st.Stored, st.Segments, humanBytes(st.StoredBytes), st.Skipped, st.Gaps, st.Bases, st.Reconnects, st.Last, notStored(st.LogStats))
	return err
}

func (d *etcdDatabase) restore(ctx context.Context, env *environment, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o restoreDBOptions) error {
	p, err := cat.Plan(stream, t)
	if err != nil {
		return err
	}
	cli, err := etcd.Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	if o.DryRun {
		if err := printPlan(ctx, env, r, p); err != nil {
			return err
		}
		n, err := etcd.CountKeys(ctx, cli, d.cfg)
		if err != nil {
			return err
		}
		switch {
		case n == 0:
			fmt.Fprintf(env.stdout, "target %s: empty\n", d.cfg)
		case o.Force:
			fmt.Fprintf(env.stdout, "target %s: %d keys, which --force would delete first\n", d.cfg, n)
		default:
			fmt.Fprintf(env.stdout, "target %s: %d keys: the restore would be refused without --force\n", d.cfg, n)
		}
		return nil
	}
	st, err := etcd.Restore(ctx, cli, d.cfg, r, p, etcd.RestoreOptions{
		Force: o.Force,
		Log:   func(format string, a ...any) { fmt.Fprintf(env.stderr, "strata restore: "+format+"\n", a...) },
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "restored %s at %s into %s: snapshot %s (revision %d, %d keys) + %d revisions, through source revision %d, in %d transactions",
		stream, t, d.cfg, p.Base.ID.Short(), st.BaseRevision, st.BaseKeys, st.Revisions, st.LastRevision, st.Transactions)
	if st.SplitRevisions > 0 {
		fmt.Fprintf(env.stderr, " (%d revisions too large for one transaction were split)", st.SplitRevisions)
	}
	fmt.Fprintln(env.stderr)
	if st.LeasedKeys > 0 {
		fmt.Fprintf(env.stderr, "note: %d writes of lease-bound keys were restored without a lease: those keys will not expire in the target\n", st.LeasedKeys)
	}
	return nil
}
