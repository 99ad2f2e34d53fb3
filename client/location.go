package client

import (
	"context"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
)

// Remote is the optional interface of a store that is an index server's
// object API. Find it through decorators with repo.StoreAs[client.Remote];
// commands that the server answers better than the store (catalogs, plans,
// forget) ask for it.
type Remote interface {
	Client() *Client
}

var _ Remote = (*Store)(nil)

// storeLimit bounds the object calls in flight to one server: the
// transport's idle connections per host.
const storeLimit = 64

func init() {
	location.Register(location.Backend{
		Name: "strata server", Schemes: []string{"http", "https"},
		Remote: true, Limit: storeLimit, Open: open,
	})
}

// open connects to an index server with the token from STRATA_TOKEN or
// STRATA_TOKEN_FILE (never a flag) and, for a private CA, the certificates
// in STRATA_CACERT.
func open(_ context.Context, loc string, o location.Options) (repo.Store, error) {
	token, err := o.GetSecret("STRATA_TOKEN", "STRATA_TOKEN_FILE")
	if err != nil {
		return nil, err
	}
	c, err := New(loc, token, Options{CAFile: o.Getenv("STRATA_CACERT")})
	if err != nil {
		return nil, &location.Error{Err: err}
	}
	return c.Store(), nil
}

var _ index.Cataloger = (*Store)(nil)

// Catalog asks the server for the catalog of stream (Client.Catalog).
func (s *Store) Catalog(ctx context.Context, r *repo.Repository, stream string) (*index.Catalog, error) {
	return s.c.Catalog(ctx, r, stream)
}
