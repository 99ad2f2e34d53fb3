package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// ErrObjectExists is returned (wrapped) by Creator.Create when an object of that
// name already exists.
var ErrObjectExists = errors.New("object already exists")

// ErrNoCreate is returned (wrapped) by CreateObject for a store that cannot
// create an object only if it is absent.
var ErrNoCreate = errors.New("the store cannot create objects exclusively")

// Creator is the optional interface of a store that can create an object
// only if no object of that name exists (FORMAT.md §13): O_EXCL semantics
// on a directory, If-None-Match: * on S3, a create-only upload through an
// index server. Leases (FORMAT.md §15, "One writer per stream") are built
// on it. Find it through decorators with StoreAs.
type Creator interface {
	// Create stores data under name if, and only if, no object of that name
	// exists. It MUST be atomic against every other Create and Put of the
	// same name, from any process or host sharing the store: of concurrent
	// Creates of one name exactly one returns nil and the others return an
	// error wrapping ErrObjectExists, and a reader never sees a partial object.
	// On nil the object is durable and visible to Get and List, as after
	// Put. A Create whose response was lost after it landed MAY, when
	// called again, return ErrObjectExists: CreateObject tells that case apart.
	// Create MUST NOT retain data after it returns.
	Create(ctx context.Context, name string, data []byte) error
}

// CreateObject creates name with data through s's Creator. When Create
// reports ErrObjectExists it reads the object back: identical bytes mean an
// earlier attempt of this same write landed (its response was lost), so
// the write is done and CreateObject returns nil. Callers make their
// content unique (a lease carries its holder's random ID) so that identical
// bytes can only be their own. A store without a Creator gives ErrNoCreate.
func CreateObject(ctx context.Context, s Store, name string, data []byte) error {
	c, ok := StoreAs[Creator](s)
	if !ok {
		return fmt.Errorf("create %s: %w", name, ErrNoCreate)
	}
	err := c.Create(ctx, name, data)
	if !errors.Is(err, ErrObjectExists) {
		return err
	}
	old, gerr := s.Get(ctx, name)
	if gerr == nil && bytes.Equal(old, data) {
		return nil
	}
	return err
}
