package mongodb

import (
	"context"
	"fmt"
	"net/url"
	"strings"

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

func (d *mongoDatabase) Backup(ctx context.Context, r *repo.Repository, stream string, bo source.BackupOptions) (source.BackupReport, error) {
	if err := bo.FromDatabase(); err != nil {
		return source.BackupReport{}, err
	}
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.BackupReport{}, err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	o := BackupOptions{Stream: stream, Host: env.Host}
	// A damaged manifest only loses a parent candidate (engine.Parent).
	if o.Parent, err = engine.Parent(ctx, r, stream); err != nil {
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	}
	hasLog := false
	if cat, _ := index.LoadStreamCatalog(ctx, r, stream); cat != nil {
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
		return source.BackupReport{}, err
	}
	rep := source.BackupReport{ID: res.ID, Snapshot: res.Snapshot,
		Detail: fmt.Sprintf("oplog %s, %d collections, %d documents, %d oplog entries replayed over them",
			res.Trailer.EndTS(), res.Trailer.Collections, res.Trailer.Documents, res.Trailer.Oplog)}
	if res.Unproven != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: snapshot %s records no proof (it is unproven): %v", res.ID.Short(), res.Unproven))
	}
	if res.Snapshot.Position == nil {
		rep.Notes = append(rep.Notes, "no log position: the stream has a log, whose capture takes its bases; this snapshot restores only as itself")
	}
	return rep, nil
}

func (d *mongoDatabase) Capture(ctx context.Context, r *repo.Repository, stream string, o source.CaptureOptions) (source.CaptureReport, error) {
	env := d.env
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.CaptureReport{}, err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	st, err := Capture(ctx, cli, d.cfg, r, CaptureOptions{
		Stream: stream, SegmentBytes: o.SegmentBytes, Interval: o.Interval, Host: env.Host, Lease: o.Lease, Logf: env.Logf("strata log: "),
	})
	rep := source.CaptureReport{LogStats: st.LogStats, Unit: "oplog entries", Bases: st.Bases, Reconnects: st.Reconnects}
	if st.Last != (Timestamp{}) {
		rep.Newest = "oplog entry " + st.Last.String()
	}
	return rep, err
}

func (d *mongoDatabase) Restore(ctx context.Context, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o source.RestoreOptions) (source.RestoreReport, error) {
	env := d.env
	p, err := cat.Plan(stream, t)
	if err != nil {
		return source.RestoreReport{}, err
	}
	if p.Base.Format != engine.FormatNDJSON {
		return source.RestoreReport{}, fmt.Errorf("%w: snapshot %s is a %s export, not a MongoDB base", index.ErrNotRestorable, p.Base.ID.Short(), p.Base.Format)
	}
	cli, err := Connect(ctx, d.cfg)
	if err != nil {
		return source.RestoreReport{}, err
	}
	defer cli.Disconnect(context.WithoutCancel(ctx))
	colls := append(ParseCollections(o.Collections), d.cfg.Collections...)
	if o.DryRun {
		n, err := CountCollections(ctx, cli, d.cfg)
		if err != nil {
			return source.RestoreReport{}, err
		}
		return source.RestoreReport{}, env.PrintDryRun(ctx, r, p, d.cfg.String(), int64(n), "collections", o.Force,
			"--force would drop those the restore writes", "the restore is refused without --force if it writes any of them")
	}
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
		return source.RestoreReport{}, err
	}
	rep := source.RestoreReport{Target: d.cfg.String(), Snapshot: p.Base.ID,
		Base:   fmt.Sprintf("%d collections, %d documents, %d indexes, exact at oplog %s", st.Collections, st.Documents, st.Indexes, st.BaseEnd),
		Events: st.Entries, Unit: "oplog entries", Reached: "oplog " + st.Last.String()}
	proof := "the recorded proof of " + st.Verified + " matched too"
	if st.Verified == "" {
		proof = "no recorded proof to compare it with (unproven): " + st.Unproven
	}
	if st.Checked {
		rep.Verified = fmt.Sprintf("the target holds the %d documents of the state computed from the repository, digest equal; %s", st.Proof.Records, proof)
	} else {
		rep.Notes = append(rep.Notes, "not verified: "+st.Unproven)
	}
	if st.Missing > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d updates found no document to change (replayed entries whose document a later entry deletes)", st.Missing))
	}
	return rep, nil
}

var (
	_ source.Partitioned    = (*mongoDatabase)(nil)
	_ source.RollbackCaveat = (*mongoDatabase)(nil)
)

// RollbackCaveat: a rollback point holds the collections the target held;
// putting it back replaces those and leaves any the restore added.
func (d *mongoDatabase) RollbackCaveat() string {
	return "MongoDB: collections the restore adds that the target did not hold are left by that command; drop them"
}

// RestoresCollections says Restore takes RestoreOptions.Collections.
func (d *mongoDatabase) RestoresCollections() {}

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
