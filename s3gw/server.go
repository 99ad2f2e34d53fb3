package s3gw

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/versity/versitygw/iamapi"
	"github.com/versity/versitygw/s3api"
	"github.com/versity/versitygw/s3api/middlewares"
)

// ServerOptions configure the S3 endpoint. Listen is required.
type ServerOptions struct {
	Listen          string // host:port
	Region          string // default us-east-1
	TLSCert, TLSKey string // both or neither
	MaxConnections  int    // default 1024
	MaxRequests     int    // requests in flight; default 256 (more get SlowDown)
	Logger          *slog.Logger
}

// Server is the S3 endpoint in front of a Gateway.
type Server struct {
	sa   *s3api.S3ApiServer
	addr string
}

// NewServer builds the S3 endpoint: versitygw's router, SigV4 verification
// against users, and the Gateway as its backend. Only one Server may run
// per process (versitygw keeps package-level state).
func NewServer(g *Gateway, users *UserTable, o ServerOptions) (*Server, error) {
	if o.Listen == "" {
		return nil, errors.New("s3 server: no listen address")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1024
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if users == nil {
		users = &UserTable{}
	}
	// versitygw needs a root account; this one is random and never shown,
	// so only the users file's users can sign requests.
	var a, s [20]byte
	rand.Read(a[:])
	rand.Read(s[:])
	users.rootAccess, users.rootSecret = "ROOT"+hex.EncodeToString(a[:]), hex.EncodeToString(s[:])
	be := &backend{g: g, users: users, log: o.Logger}
	opts := []s3api.Option{s3api.WithQuiet(), s3api.WithConcurrencyLimiter(o.MaxConnections, o.MaxRequests), s3api.WithKeepAlive()}
	if g.ReadOnly() {
		opts = append(opts, s3api.WithReadOnly())
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("s3 server: --tls-cert and --tls-key go together")
	}
	if o.TLSCert != "" {
		cs := iamapi.NewCertStorage()
		if err := cs.SetCertificate(o.TLSCert, o.TLSKey); err != nil {
			return nil, fmt.Errorf("s3 server: TLS: %w", err)
		}
		opts = append(opts, s3api.WithTLS(cs))
	}
	sa, err := s3api.New(be, middlewares.RootUserConfig{Access: users.rootAccess, Secret: users.rootSecret}, o.Region, users, nil, nil, nil, nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 server: %w", err)
	}
	return &Server{sa: sa, addr: o.Listen}, nil
}

// Serve listens and serves until Shutdown.
func (s *Server) Serve() error { return s.sa.ServeMultiPort([]string{s.addr}) }

// Shutdown stops accepting requests and waits a while for those in flight.
func (s *Server) Shutdown() error { return s.sa.ShutDown() }
