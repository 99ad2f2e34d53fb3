package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-backup/strata/repo"
)

// SnapshotRef is a snapshot manifest with its ID.
type SnapshotRef struct {
	ID repo.ID
	*repo.Snapshot
}

// Catalog lists the snapshots of a repository, oldest first, and the log
// segments of every stream.
type Catalog struct {
	Snapshots []SnapshotRef
	Logs      map[string]*Log // by stream
	// ByStream, when set, holds Snapshots grouped by stream (each oldest
	// first), so Stream answers without scanning every snapshot. Whoever
	// sets it keeps it in step with Snapshots (the index server does).
	ByStream map[string][]SnapshotRef
	// Untrusted: the catalog came from someone else (an index server), who
	// may have left snapshots or segments out; its plans are Untrusted.
	Untrusted bool
}

// ErrNoSnapshot: no snapshot matches.
var ErrNoSnapshot = errors.New("no snapshot found")

// LoadCatalog reads every snapshot manifest. Unreadable manifests are
// returned as a joined error alongside the catalog of the rest.
func LoadCatalog(ctx context.Context, r *repo.Repository) (*Catalog, error) {
	ids, err := r.ListIDs(ctx, repo.SnapshotsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	c := &Catalog{Snapshots: make([]SnapshotRef, len(ids))}
	logs, logErr := ListLogs(ctx, r.Store(), "")
	if logs == nil {
		logs = map[string]*Log{}
	}
	c.Logs = logs
	loadErr := repo.ForEach(ctx, r.Store(), len(ids), func(i int) error {
		s, err := r.LoadSnapshot(ctx, ids[i])
		c.Snapshots[i] = SnapshotRef{ID: ids[i], Snapshot: s}
		if err != nil {
			return &ManifestError{ID: ids[i], Stream: labelStream(ctx, r, ids[i]), Err: err}
		}
		return nil
	})
	c.Snapshots = slices.DeleteFunc(c.Snapshots, func(s SnapshotRef) bool { return s.Snapshot == nil })
	SortSnapshots(c.Snapshots)
	return c, errors.Join(loadErr, logErr)
}

// SortSnapshots orders snapshots as a catalog holds them: by consistent
// time, then creation, then ID, so "latest" never depends on the order a
// store or a server listed them in.
func SortSnapshots(s []SnapshotRef) {
	slices.SortStableFunc(s, func(a, b SnapshotRef) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
}

// ManifestError is a snapshot manifest that could not be read or verified.
// Stream is the stream its plaintext label names, "" when that is unknown
// too; a restore of that stream (or of any, when unknown) must not go on
// as if the snapshot did not exist, since it may be the newest.
type ManifestError struct {
	ID     repo.ID
	Stream string
	Err    error
}

func (e *ManifestError) Error() string {
	stream := "stream unknown"
	if e.Stream != "" {
		stream = "stream " + e.Stream
	}
	return fmt.Sprintf("snapshot %s (%s): %v", e.ID.Short(), stream, e.Err)
}

func (e *ManifestError) Unwrap() error { return e.Err }

// labelStream reads the stream a snapshot's label names, "" when the label
// is missing or unreadable.
func labelStream(ctx context.Context, r *repo.Repository, id repo.ID) string {
	b, err := r.Store().Get(ctx, repo.LabelName(id))
	if err != nil {
		return ""
	}
	l, err := repo.DecodeLabel(repo.LabelName(id), b)
	if err != nil {
		return ""
	}
	return l.Stream
}

// ErrorsFor keeps, of the errors LoadCatalog returned, those that may hide
// something of stream: its own unreadable manifests and segment names, and
// manifests whose stream is unknown. Nil when none does.
func ErrorsFor(err error, stream string) error {
	if err == nil {
		return nil
	}
	var all []error
	var flatten func(error)
	flatten = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				flatten(x)
			}
			return
		}
		all = append(all, e)
	}
	flatten(err)
	var keep []error
	for _, e := range all {
		var me *ManifestError
		var ce *repo.CorruptError
		switch {
		case e == nil:
		case errors.As(e, &me):
			if me.Stream == "" || me.Stream == stream {
				keep = append(keep, e)
			}
		case errors.As(e, &ce) && strings.HasPrefix(ce.Object, repo.LogsPrefix):
			if strings.HasPrefix(ce.Object, repo.StreamLogPrefix(stream)) {
				keep = append(keep, e)
			}
		default:
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}

// Stream returns the snapshots of one stream (all when stream is ""), oldest first.
func (c *Catalog) Stream(stream string) []SnapshotRef {
	if c.ByStream != nil && stream != "" {
		return c.ByStream[stream]
	}
	var out []SnapshotRef
	for _, s := range c.Snapshots {
		if stream == "" || s.Stream == stream {
			out = append(out, s)
		}
	}
	return out
}

// Latest returns the newest snapshot of stream by consistent time.
func (c *Catalog) Latest(stream string) (SnapshotRef, error) {
	s := c.Stream(stream)
	if len(s) == 0 {
		return SnapshotRef{}, fmt.Errorf("%w for stream %q", ErrNoSnapshot, stream)
	}
	return s[len(s)-1], nil
}

// Find resolves a snapshot ID or unique hex prefix (at least 4 digits),
// optionally within one stream.
func (c *Catalog) Find(stream, prefix string) (SnapshotRef, error) {
	if len(prefix) < 4 {
		return SnapshotRef{}, fmt.Errorf("snapshot ID %q: give at least 4 hex digits", prefix)
	}
	var match []SnapshotRef
	for _, s := range c.Stream(stream) {
		if strings.HasPrefix(s.ID.String(), strings.ToLower(prefix)) {
			match = append(match, s)
		}
	}
	switch len(match) {
	case 0:
		return SnapshotRef{}, fmt.Errorf("%w: %q", ErrNoSnapshot, prefix)
	case 1:
		return match[0], nil
	}
	return SnapshotRef{}, fmt.Errorf("snapshot ID %q is ambiguous: %d snapshots match", prefix, len(match))
}

// Cataloger is the optional interface of a store that answers catalog
// queries itself: an index server's client, which sees only what its token
// may read. Find it through decorators with repo.StoreAs.
type Cataloger interface {
	// Catalog returns the snapshots and log segments of stream ("" for
	// all). Like LoadCatalog, a partial catalog may come with an error.
	Catalog(ctx context.Context, r *repo.Repository, stream string) (*Catalog, error)
}

// LoadStreamCatalog is the catalog of stream ("" for all) as the
// repository answers it: through its store's Cataloger when it has one,
// else by listing the store (LoadCatalog).
func LoadStreamCatalog(ctx context.Context, r *repo.Repository, stream string) (*Catalog, error) {
	if c, ok := repo.StoreAs[Cataloger](r.Store()); ok {
		return c.Catalog(ctx, r, stream)
	}
	return LoadCatalog(ctx, r)
}
