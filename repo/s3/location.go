package s3

import (
	"context"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
)

// uploads bounds the calls in flight to one S3 endpoint.
const uploads = 16

func init() {
	location.Register(location.Backend{
		Name: "S3", Schemes: []string{"s3", "s3+http"},
		Remote: true, Limit: uploads, Retention: true, Open: open,
	})
}

// open opens (with o.Create, creates) the bucket a location names, with
// the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func open(ctx context.Context, loc string, lo location.Options) (repo.Store, error) {
	o, err := ParseURL(loc)
	if err != nil {
		return nil, &location.Error{Err: err}
	}
	o.AccessKey, o.SecretKey = lo.Getenv("AWS_ACCESS_KEY_ID"), lo.Getenv("AWS_SECRET_ACCESS_KEY")
	o.Verify = lo.Verify
	if lo.Retention > 0 {
		o.Retention, o.Mode = lo.Retention, lo.Mode
	}
	var s *Store
	if lo.Create {
		s, err = Create(ctx, o, lo.Lock)
	} else {
		s, err = Open(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}
