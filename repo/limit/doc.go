// Package limit holds repo.Store decorators that bound the load on the
// inner store: New bounds how many calls are in flight at once, so a backup
// with many workers does not open more connections to a remote store than
// it can serve; Reads bounds the bytes read a second (golang.org/x/time/rate),
// so a scrub does not starve the backups and restores beside it.
//
// # Slot
//
// One of the n places a call occupies while the inner store works on it.
// A call waits for a free slot, or returns an error wrapping the context's
// cause when its context is done first. List holds a slot only while the
// inner store lists: the slot is given back while the callback runs, so a
// callback may call the store (prune deletes as it lists) even with n = 1.
//
// # Forwarding
//
// New returns a store implementing repo.Retainer exactly when the inner
// store does (RetainUntil takes a slot), and repo.Tampered exactly when the
// inner store does (TamperedObjects does no I/O and takes none).
package limit
