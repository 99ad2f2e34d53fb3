package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// database is a live database that backup --source, log --source and
// restore --target work on. Each kind (redis://, etcd://) registers itself
// in databases from its own file.
type database interface {
	// backup takes one consistent snapshot and stores it as a snapshot of
	// stream, recording the database's consistent point as its position.
	backup(ctx context.Context, env *environment, r *repo.Repository, stream string) error
	// capture streams the database's changes into the stream's log until ctx
	// ends (or the database goes away for good), sealing segments at least
	// every interval. It continues a log an earlier capture left, and takes
	// a base snapshot itself when the stream has none it can continue from.
	capture(ctx context.Context, env *environment, r *repo.Repository, stream string, o captureOptions) error
	// restore writes the state of stream at t into the database, which must
	// be empty unless force is set. dryRun prints the plan and writes nothing.
	restore(ctx context.Context, env *environment, r *repo.Repository, cat *index.Catalog, stream string, t index.Target, o restoreDBOptions) error
}

type captureOptions struct {
	SegmentBytes int
	Interval     time.Duration // seal a segment when its first event is this old
}

type restoreDBOptions struct {
	Force, DryRun bool
	// Collections ("a,b") restores only these collections; only
	// mongodb:// targets have collections.
	Collections string
}

// databases maps a URL scheme to the constructor of its database. The
// password, when the URL has none, comes from STRATA_SOURCE_PASSWORD.
var databases = map[string]func(env *environment, u *url.URL) (database, error){}

// openDatabase parses a --source or --target URL.
func openDatabase(env *environment, raw string) (database, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, usagef("%q: want a database URL such as redis://HOST:PORT or etcd://HOST:PORT", redactURL(raw))
	}
	open, ok := databases[strings.ToLower(u.Scheme)]
	if !ok {
		var known []string
		for k := range databases {
			known = append(known, k+"://")
		}
		sort.Strings(known)
		return nil, usagef("%s://: not a database this build knows (known: %s)", u.Scheme, strings.Join(known, ", "))
	}
	return open(env, u)
}

// sourcePassword is the database password: the URL's, else STRATA_SOURCE_PASSWORD
// or the first line of STRATA_SOURCE_PASSWORD_FILE. "" means none.
func (env *environment) sourcePassword(u *url.URL) (string, error) {
	if p, ok := u.User.Password(); ok {
		return p, nil
	}
	if env.getenv("STRATA_SOURCE_PASSWORD") == "" && env.getenv("STRATA_SOURCE_PASSWORD_FILE") == "" {
		return "", nil
	}
	b, err := env.secret("STRATA_SOURCE_PASSWORD", "STRATA_SOURCE_PASSWORD_FILE", "database password", false)
	return string(b), err
}

// redactURL hides a password in a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// restoreDatabase restores a stream into a live database: the snapshot
// (given, or the latest) or the state at target.
func restoreDatabase(ctx context.Context, env *environment, location, stream, dbURL, snapID string, target *index.Target, o restoreDBOptions) error {
	if snapID != "" && target != nil {
		return usagef("--snapshot and --at/--at-position exclude each other: the plan picks the snapshot")
	}
	db, err := openDatabase(env, dbURL)
	if err != nil {
		return err
	}
	if _, ok := db.(*mongoDatabase); !ok && o.Collections != "" {
		return usagef("--collections: only a mongodb:// target has collections")
	}
	r, err := openRepo(ctx, env, location)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(ctx, r, stream)
	if err != nil {
		// A plan over a partial catalog could pick the wrong base; say so loudly.
		fmt.Fprintf(env.stderr, "warning: some manifests could not be read: %v\n", err)
	}
	t := index.Target{Time: time.Now()}
	switch {
	case target != nil:
		t = *target
	case snapID != "":
		s, err := cat.Find(stream, snapID)
		if err != nil {
			return err
		}
		if s.Position != nil {
			t = index.Target{Position: *s.Position, ByPos: true}
		} else {
			t = index.Target{Time: s.Time}
		}
	default:
		s, err := cat.Latest(stream)
		if err != nil {
			return err
		}
		t = index.Target{Time: s.Time}
		if s.Position != nil {
			t = index.Target{Position: *s.Position, ByPos: true}
		}
	}
	return db.restore(ctx, env, r, cat, stream, t, o)
}
