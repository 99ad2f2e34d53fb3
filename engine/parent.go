package engine

import (
	"context"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Parent selects the snapshot a new backup of stream deduplicates against:
// the stream's latest (index.Catalog.Latest) in the catalog the repository
// answers (index.LoadStreamCatalog, so through an index server only what
// the token may read). It returns nil when the stream has none. A catalog
// that loaded only in part still gives its latest snapshot, with the load
// error beside it: a damaged manifest costs a parent candidate, never the
// backup, so callers report the error as a warning.
func Parent(ctx context.Context, r *repo.Repository, stream string) (*index.SnapshotRef, error) {
	cat, err := index.LoadStreamCatalog(ctx, r, stream)
	if cat == nil {
		return nil, err
	}
	p, lerr := cat.Latest(stream)
	if lerr != nil {
		return nil, err
	}
	return &p, err
}
