package repo

import (
	"context"
	"time"
)

// Decorated returns d, a decorator of inner, extended with the optional
// interfaces inner implements and no others, so a type assertion on the
// result answers as it would on inner: Retainer when inner is one (calls go
// to retain, the decorator's own wrapping of inner's RetainUntil), and
// Tampered when inner is one (passed straight through: it does no I/O).
func Decorated(d, inner Store, retain func(ctx context.Context, name string, until time.Time) error) Store {
	_, isRetainer := inner.(Retainer)
	t, isTampered := inner.(Tampered)
	switch {
	case isRetainer && isTampered:
		return retainerTampered{d, retainFunc(retain), t}
	case isRetainer:
		return retainer{d, retainFunc(retain)}
	case isTampered:
		return tampered{d, t}
	}
	return d
}

var (
	_ Retainer = retainer{}
	_ Tampered = tampered{}
	_ Retainer = retainerTampered{}
	_ Tampered = retainerTampered{}
)

type retainFunc func(ctx context.Context, name string, until time.Time) error

func (f retainFunc) RetainUntil(ctx context.Context, name string, until time.Time) error {
	return f(ctx, name, until)
}

type retainer struct {
	Store
	retainFunc
}

type tampered struct {
	Store
	Tampered
}

type retainerTampered struct {
	Store
	retainFunc
	Tampered
}

// Unwrapper is implemented by decorators: Unwrap returns the store they
// wrap, so StoreAs can look through them.
type Unwrapper interface {
	Unwrap() Store
}

// StoreAs finds the first store of type T (usually an optional interface)
// in the chain s, s.Unwrap(), s.Unwrap().Unwrap(), …, as restic's
// AsBackend does. Ask for a capability this way, never by a type assertion
// on a concrete store: a decorator added later would silently hide it.
func StoreAs[T any](s Store) (T, bool) {
	for s != nil {
		if t, ok := s.(T); ok {
			return t, true
		}
		u, ok := s.(Unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Unwrap returns the decorator the optional interfaces were added to.
func (r retainer) Unwrap() Store { return r.Store }

// Unwrap returns the decorator the optional interfaces were added to.
func (t tampered) Unwrap() Store { return t.Store }

// Unwrap returns the decorator the optional interfaces were added to.
func (rt retainerTampered) Unwrap() Store { return rt.Store }
