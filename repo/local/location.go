package local

import (
	"context"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
)

func init() {
	location.Register(location.Backend{
		Name: "local directory", Schemes: []string{""},
		Open: func(_ context.Context, dir string, o location.Options) (repo.Store, error) {
			// Only a new repository (o.Create, strata init) makes its
			// directory: reading commands never do.
			open := OpenExisting
			if o.Create {
				open = Open
			}
			s, err := open(dir)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}
