package local

import (
	"context"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
)

func init() {
	location.Register(location.Backend{
		Name: "local directory", Schemes: []string{""},
		Open: func(_ context.Context, dir string, _ location.Options) (repo.Store, error) {
			s, err := Open(dir)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}
