package location

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/limit"
	"github.com/strata-backup/strata/repo/retry"
)

// Options is what a backend's Open gets besides the location. The zero
// value opens an existing store without retention.
type Options struct {
	// Create makes a missing bucket or directory; with Lock, a bucket is
	// created with Object Lock.
	Create, Lock bool
	// Retention, when positive, is the retention every write gets (from the
	// repository's store layout), in Mode ("GOVERNANCE" or "COMPLIANCE").
	Retention time.Duration
	Mode      string
	// Verify tells an intact object from an overwritten one; nil for none.
	Verify repo.Verifier
	// Env returns a setting of the caller's environment by name (for
	// example AWS_ACCESS_KEY_ID) and Secret a secret from the variable
	// varName or the file fileVar names. The caller passes them so that no
	// backend reads process state; nil reads as empty.
	Env    func(name string) string
	Secret func(varName, fileVar string) (string, error)
}

// Getenv returns the named setting of the caller's environment, "" when
// unset or when the caller passed none.
func (o Options) Getenv(name string) string {
	if o.Env == nil {
		return ""
	}
	return o.Env(name)
}

// GetSecret returns the secret in varName or the file fileVar names, ""
// when neither is set.
func (o Options) GetSecret(varName, fileVar string) (string, error) {
	if o.Secret == nil {
		return "", nil
	}
	return o.Secret(varName, fileVar)
}

// Backend is one kind of store.
type Backend struct {
	// Name describes the backend in messages ("S3", "local directory").
	Name string
	// Schemes are the location schemes it opens; "" is a bare path.
	Schemes []string
	// Remote marks a store reached over a network: Open decorates it (Wrap).
	Remote bool
	// Limit bounds the calls in flight to one remote store; 0 means DefaultLimit.
	Limit int
	// Retention says the backend can hold objects under retention; Open
	// refuses Options.Retention for one that cannot.
	Retention bool
	// Open opens (with o.Create, creates) the store at location. Errors in
	// the location itself are *Error.
	Open func(ctx context.Context, location string, o Options) (repo.Store, error)
}

// DefaultLimit bounds the calls in flight to one remote store when its
// backend sets no Limit.
const DefaultLimit = 16

// Error is an error in a location (unknown scheme, malformed URL, a
// setting the backend cannot honour): a usage error, not a failure of the
// store.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error.
func Errorf(format string, args ...any) error { return &Error{fmt.Errorf(format, args...)} }

var (
	mu       sync.RWMutex
	backends = map[string]*Backend{}
)

// Register adds a backend. It panics when a scheme is registered twice or
// the backend has no Open, programming errors.
func Register(b Backend) {
	if b.Open == nil || len(b.Schemes) == 0 {
		panic(fmt.Sprintf("location: backend %q without Open or schemes", b.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range b.Schemes {
		if _, dup := backends[s]; dup {
			panic(fmt.Sprintf("location: scheme %q registered twice", s))
		}
		backends[s] = &b
	}
}

// Scheme returns the scheme of a location, "" for a bare path.
func Scheme(location string) string {
	scheme, _, ok := strings.Cut(location, "://")
	if !ok {
		return ""
	}
	return scheme
}

// Lookup returns the backend for location's scheme, or an *Error naming the
// schemes there are.
func Lookup(location string) (Backend, error) {
	scheme := Scheme(location)
	mu.RLock()
	b, ok := backends[scheme]
	mu.RUnlock()
	if !ok {
		return Backend{}, Errorf("repository %q: scheme %q is not supported; give %s", location, scheme, describe())
	}
	return *b, nil
}

// Registered reports whether location's scheme has a backend.
func Registered(location string) bool {
	_, err := Lookup(location)
	return err == nil
}

// describe lists the registered schemes for messages.
func describe() string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for s := range backends {
		if s == "" {
			out = append(out, "a directory")
		} else {
			out = append(out, s+"://")
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// Open opens the store at location through its backend and decorates it
// with Wrap.
func Open(ctx context.Context, location string, o Options) (repo.Store, error) {
	if location == "" {
		return nil, Errorf("no repository: give --repo or set STRATA_REPO")
	}
	b, err := Lookup(location)
	if err != nil {
		return nil, err
	}
	if o.Retention > 0 && !b.Retention {
		return nil, Errorf("store %s: a %s cannot hold objects under retention; retention needs s3:// stores", location, b.Name)
	}
	s, err := b.Open(ctx, location, o)
	if err != nil {
		return nil, err
	}
	return Wrap(b, s), nil
}

// Wrap applies the cross-cutting decorators to a store of backend b: for a
// remote store, retries outside a limit on calls in flight (a call sleeping
// between attempts gives its slot back). Local stores are returned as they
// are.
func Wrap(b Backend, s repo.Store) repo.Store {
	if !b.Remote {
		return s
	}
	n := b.Limit
	if n <= 0 {
		n = DefaultLimit
	}
	return retry.New(limit.New(s, n), retry.Policy{})
}
