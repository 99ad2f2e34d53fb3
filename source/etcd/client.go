package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config says how to reach a cluster.
type Config struct {
	// Endpoints are client URLs, "http://HOST:PORT".
	Endpoints []string
	// Username and Password log in when Username is set.
	Username, Password string
	// DialTimeout bounds connecting and the first request; default 5 s.
	DialTimeout time.Duration
}

// ErrUnreachable is wrapped when no endpoint answers within the dial timeout.
var ErrUnreachable = errors.New("etcd unreachable")

// ErrAuth is wrapped when the cluster refuses the credentials.
var ErrAuth = errors.New("etcd refused the credentials")

// String names the endpoints, never the password.
func (c Config) String() string {
	s := strings.Join(c.Endpoints, ",")
	if c.Username != "" {
		s = c.Username + "@" + s
	}
	return s
}

// Connect opens a client and proves the cluster answers with one read, so
// a wrong address or password fails here, clearly, instead of in a watch
// that retries forever.
func Connect(ctx context.Context, c Config) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints, Username: c.Username, Password: c.Password,
		DialTimeout: c.DialTimeout, Context: ctx,
		// Dead connections are noticed by keepalives, not only by the
		// next request, so a cut mid-watch is seen within seconds.
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		// The client's own log would repeat each retry on stderr;
		// errors reach the caller instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, classify(c, err, cctx)
	}
	if _, err := cli.Get(cctx, "\x00", clientv3.WithCountOnly(), clientv3.WithLimit(1)); err != nil {
		cli.Close()
		return nil, classify(c, err, cctx)
	}
	return cli, nil
}

func classify(c Config, err error, ctx context.Context) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return fmt.Errorf("etcd %s: %w: authentication failed (wrong user or password?)", c, ErrAuth)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrGRPCUserEmpty),
		errors.Is(err, rpctypes.ErrInvalidAuthToken), errors.Is(err, rpctypes.ErrGRPCInvalidAuthToken):
		return fmt.Errorf("etcd %s: %w: authentication is enabled on the cluster: give a user and password (etcd://USER@HOST:PORT and STRATA_SOURCE_PASSWORD)", c, ErrAuth)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrGRPCPermissionDenied):
		return fmt.Errorf("etcd %s: %w: permission denied (the user needs read access to the whole keyspace, and write access to restore)", c, ErrAuth)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return fmt.Errorf("etcd %s: %w: no endpoint answered within %s (%v)", c, ErrUnreachable, c.DialTimeout, err)
	}
	return fmt.Errorf("etcd %s: %w", c, err)
}

// rpcErr maps an error from a request on an open client the way Connect does.
func rpcErr(c Config, err error) error {
	return classify(c, err, context.Background())
}
