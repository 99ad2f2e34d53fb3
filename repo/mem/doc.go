// Package mem is an in-memory repo.Store for tests and for staging small
// repositories: objects live in a map guarded by a read-write mutex, every
// Put and Get copies its bytes so callers never share memory with the store,
// and List reports names in ascending byte order. Nothing survives the
// process, so "durable" in the Store contract means "visible to later calls".
//
// # Object
//
// An immutable byte string under a non-empty slash-separated name, as in
// FORMAT.md section 1. The store does not interpret names beyond requiring
// them to be non-empty; it keeps "a/b" and "a/b/c" side by side, which a
// file system cannot, so code that must also run on repo/local should not
// rely on that.
package mem
