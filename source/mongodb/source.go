package mongodb

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

func init() {
	source.Register("mongodb", newMongoDatabase)
	source.Register("mongodb+srv", newMongoDatabase)
}

// mongoDatabase is a MongoDB replica set member (or FerretDB) named by
// mongodb://[USER@]HOST[:PORT][/DB][?collections=A,B&DRIVER-OPTIONS].
type mongoDatabase struct {
	cfg Config
	env *source.Env
}

var _ source.Source = (*mongoDatabase)(nil)

func newMongoDatabase(u *url.URL, env *source.Env) (source.Source, error) {
	if u.Fragment != "" || u.Opaque != "" {
		return nil, source.URLErrorf("%s: want mongodb://[USER@]HOST[:PORT][/DB][?collections=A,B]", u.Redacted())
	}
	db := strings.Trim(u.Path, "/")
	if strings.ContainsAny(db, "/\\. \"$") {
		return nil, source.URLErrorf("%s: %q is not a database name", u.Redacted(), db)
	}
	q := u.Query()
	cfg := Config{Database: db, Collections: ParseCollections(q.Get("collections"))}
	if len(cfg.Collections) > 0 && db == "" {
		return nil, source.URLErrorf("%s: ?collections= needs a database: mongodb://HOST/DB?collections=A,B", u.Redacted())
	}
	q.Del("collections")
	if user := u.User.Username(); user != "" {
		pw, err := source.Password(u, env)
		if err != nil {
			return nil, err
		}
		if pw == "" {
			return nil, source.URLErrorf("%s: user %q but no password: put it in STRATA_SOURCE_PASSWORD or STRATA_SOURCE_PASSWORD_FILE", u.Redacted(), user)
		}
		cfg.Username, cfg.Password = user, pw
	} else if _, ok := u.User.Password(); ok {
		return nil, source.URLErrorf("%s: a password but no user: write mongodb://USER@HOST", u.Redacted())
	}
	clean := *u
	clean.User, clean.RawQuery = nil, q.Encode()
	cfg.URI = clean.String()
	return &mongoDatabase{cfg: cfg, env: env}, nil
}

func (d *mongoDatabase) Backup(ctx context.Context, r *repo.Repository, stream string) error {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	o := BackupOptions{Stream: stream, Host: env.Host}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	}
	hasLog := false
	if cat != nil {
		if p, err := cat.Latest(stream); err == nil {
			o.Parent = &p
		}
		_, hasLog = cat.Log(stream).Newest()
	}
	if !hasLog {
		// A stream without a log: this base starts it (position 0); a
		// capture started later continues after it.
		var zero uint64
		o.Position = &zero
	}
	res, err := Backup(ctx, cli, d.cfg, r, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, res.ID)
	if res.Unproven != nil {
		fmt.Fprintf(env.Stderr, "warning: snapshot %s records no proof (it is unproven): %v\n", res.ID.Short(), res.Unproven)
	}
	pos := "no log position: the stream has a log, whose capture takes its bases; this snapshot restores only as itself"
	if res.Snapshot.Position != nil {
		pos = fmt.Sprintf("log position %d", *res.Snapshot.Position)
	}
	fmt.Fprintf(env.Stderr, "snapshot %s of %s: oplog %s, %d collections, %d documents, %d oplog entries replayed over them, %s export, %s stored before parity (%s)\n",
		res.ID.Short(), stream, res.Trailer.EndTS(), res.Trailer.Collections, res.Trailer.Documents, res.Trailer.Oplog,
		source.HumanBytes(res.Snapshot.Size), source.HumanBytes(res.Snapshot.StoredBytes), pos)
	return nil
}

func (d *mongoDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) error {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	logf := env.Logf("strata log: ")
	st, err := Capture(ctx, cli, d.cfg, r, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease, Logf: logf,
	})
	logf("%s: %d oplog entries stored in %d segments (%s sealed), %d already stored and skipped, %d gaps, %d base snapshots, %d reconnects; newest oplog entry %s%s",
		stream, st.Stored, st.Segments, source.HumanBytes(st.StoredBytes), st.Skipped, st.Gaps, st.Bases, st.Reconnects, st.Last, st.NotStored())
	return err
}

func (d *mongoDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) error {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return err
	}
	if p.Base.Format != engine.FormatNDJSON {
		return fmt.Errorf("%w: snapshot %s is a %s export, not a MongoDB base", index.ErrNotRestorable, p.Base.ID.Short(), p.Base.Format)
	}
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	colls := append(ParseCollections(o.Collections), d.cfg.Collections...)
	if o.DryRun {
		n, err := CountCollections(ctx, cli, d.cfg)
		if err != nil {
			return err
		}
		return env.PrintDryRun(ctx, r, p, d.cfg.String(), int64(n), "collections", o.Force,
			"--force would drop those the restore writes", "the restore is refused without --force if it writes any of them")
	}
	start := time.Now()
	st, err := Restore(ctx, cli, d.cfg, r, p, RestoreOptions{
		Force: o.Force, Collections: colls, Database: d.cfg.Database, Logf: env.Logf("strata restore: "),
		Expect: func(pos uint64) (repo.Proof, string, bool) {
			for _, s := range cat.Stream(stream) {
				if want, ok := s.Proof(); ok && s.Position != nil && *s.Position == pos {
					return want, fmt.Sprintf("snapshot %s at position %d", s.ID.Short(), pos), true
				}
			}
			return repo.Proof{}, "", false
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "restored %s at %s into %s: snapshot %s (%d collections, %d documents, %d indexes, exact at oplog %s) + %d oplog entries through %s, in %s\n",
		stream, t, d.cfg, p.Base.ID.Short(), st.Collections, st.Documents, st.Indexes, st.BaseEnd, st.Entries, st.Last, time.Since(start).Round(time.Millisecond))
	proof := "the recorded proof of " + st.Verified + " matched too"
	if st.Verified == "" {
		proof = "no recorded proof to compare it with (unproven): " + st.Unproven
	}
	if st.Checked {
		fmt.Fprintf(env.Stderr, "verified: the target holds the %d documents of the state computed from the repository, digest equal; %s\n", st.Proof.Records, proof)
	} else {
		fmt.Fprintf(env.Stderr, "not verified: %s\n", st.Unproven)
	}
	if st.Missing > 0 {
		fmt.Fprintf(env.Stderr, "note: %d updates found no document to change (replayed entries whose document a later entry deletes)\n", st.Missing)
	}
	return nil
}

var _ source.Holder = (*mongoDatabase)(nil)

// Held counts the collections in the databases a restore would write.
func (d *mongoDatabase) Held(ctx context.Context) (int64, string, error) {
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return 0, "", err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	n, err := CountCollections(ctx, cli, d.cfg)
	return int64(n), "collections", err
}

var _ source.PositionResolver = (*mongoDatabase)(nil)

// ResolvePosition maps an oplog timestamp (ParseTimestamp's forms) to the
// position PositionAt gives; other text is not one (ok false).
func (d *mongoDatabase) ResolvePosition(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream, text string) (uint64, bool, error) {
	ts, err := ParseTimestamp(text)
	if err != nil {
		return 0, false, nil
	}
	pos, err := PositionAt(ctx, r, cat, stream, ts)
	return pos, true, err
}
