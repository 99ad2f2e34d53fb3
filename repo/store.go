package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) by a Store when the named object does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name string // slash-separated object name, for example "data/ab/ab12….3"
	Size int64  // length in bytes
}

// Store is where a repository's objects live: a flat namespace of immutable
// objects under slash-separated names (FORMAT.md, "Objects and names").
// Implementations MUST be safe for concurrent use by multiple goroutines.
// Cross-cutting concerns (retries, limits, fault injection) are decorators
// that implement Store themselves, composed in one place (repo/location's
// Wrap); a backend does none of them, and a decorator implements Unwrapper
// so StoreAs finds optional interfaces behind it.
//
// Retries: a backend MUST NOT retry on its own. It classifies its errors
// instead, and repo/retry decides (retry.IsTransient):
//   - ErrNotFound, ErrRetained, ErrCorrupt and a cancelled context are
//     permanent, whatever else the error says;
//   - otherwise an error in the chain with a method Transient() bool has
//     the last word: true means a later identical call may succeed (an S3
//     503 or SlowDown, a server's 502/503/504, a request that got no
//     response), false that it will not (a range outside the object);
//   - otherwise network timeouts, refused, reset or aborted connections and
//     io.ErrUnexpectedEOF are transient, and everything else is permanent.
//
// Every method MUST be safe to call again after a transient failure: Put
// writes the same bytes under the same name, Delete is idempotent, and a
// List that failed midway is listed again from the start (the decorator
// skips the names fn has seen).
type Store interface {
	// Put stores data under name. It MUST be atomic: a concurrent or later
	// reader sees either no object or the complete data, never a prefix, even
	// if the process dies midway. When Put returns nil the object MUST be
	// durable and visible to Get, Stat and List (read-after-write). Writing a
	// name that already exists replaces it; the repository only ever does so
	// with identical bytes (objects are content-addressed), so a retried Put
	// is harmless. Put MUST NOT retain data after it returns.
	Put(ctx context.Context, name string, data []byte) error

	// Get returns the whole object. A missing object is an error wrapping
	// ErrNotFound. The caller owns the returned slice.
	Get(ctx context.Context, name string) ([]byte, error)

	// GetRange returns length bytes starting at offset. A missing object
	// wraps ErrNotFound; a range that is not wholly inside the object is an
	// error (wrapping io.ErrUnexpectedEOF), never a short read returned as
	// success. The caller owns the returned slice.
	GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error)

	// Stat returns the object's size. A missing object wraps ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn once for every object whose name starts with prefix, in
	// ascending byte order of names, each name exactly once. It never
	// reports temporary files of unfinished Puts. If fn returns an error,
	// List stops and returns that error.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object. Deleting a missing object is not an error,
	// so deletion is idempotent.
	Delete(ctx context.Context, name string) error
}

// BatchPutter is implemented by stores that can store several objects at
// once for less than a Put each: the local directory syncs each directory
// once for all of a pack's shards instead of once per shard. Decorators
// implement it only when they handle every object as their Put would (the
// fault injector counts and fails each one); PutBatch asks the store
// itself, never through Unwrap, so a decorator without it sees every Put.
type BatchPutter interface {
	// PutBatch stores data[i] under names[i] for every i, each object with
	// Put's guarantees: atomic (whole or absent, even if the process dies
	// midway), replacing an existing object, data not retained after the
	// call. When it returns nil every object MUST be durable and visible,
	// as after a Put of each. On error any subset of the objects may be
	// stored, each whole: the caller MUST NOT reference any of them (an
	// index file names a pack only after its batch returned nil), and MAY
	// retry the whole batch.
	PutBatch(ctx context.Context, names []string, data [][]byte) error
}

// PutBatch stores data[i] under names[i] for every i: through s's own
// PutBatch when s is a BatchPutter, else one Put each, all at once. When
// it returns nil every object is durable; on error any subset is stored.
func PutBatch(ctx context.Context, s Store, names []string, data [][]byte) error {
	if len(names) != len(data) {
		return fmt.Errorf("put batch: %d names for %d objects", len(names), len(data))
	}
	if b, ok := s.(BatchPutter); ok {
		return b.PutBatch(ctx, names, data)
	}
	return putEach(ctx, s, names, data)
}

// putEach stores each object with its own Put, in parallel.
func putEach(ctx context.Context, s Store, names []string, data [][]byte) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() { errs[i] = s.Put(ctx, names[i], data[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ErrRetained is returned (wrapped) by Delete when the store holds the object
// immutable (S3 Object Lock) until a time that has not yet come. Cleanup
// paths defer such objects and report them; they are not failures.
var ErrRetained = errors.New("object is under retention")

// Retainer is implemented by stores that can hold objects immutable until a
// time (S3 Object Lock). Decorators forward it when the inner store has it.
type Retainer interface {
	// RetainUntil extends the retention of the object's current version to
	// until. It MUST NOT shorten a retention already set; a request for an
	// earlier time leaves the object as it is and returns nil. A missing
	// object wraps ErrNotFound.
	RetainUntil(ctx context.Context, name string, until time.Time) error
}

// Verifier checks stored bytes against what their name promises, without
// any key (VerifyObject is the repository's). Stores that keep older
// versions or replicas use it to skip a copy that was overwritten or damaged.
type Verifier func(name string, data []byte) error

// Tampered is implemented by stores that can tell that an object's current
// bytes were replaced or hidden and an older, intact version was served
// instead. check reports the names.
type Tampered interface {
	// TamperedObjects returns the names served from an older version or
	// another replica since the store was opened, sorted, each once.
	TamperedObjects() []string
}
