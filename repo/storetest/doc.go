// Package storetest is the conformance suite every repo.Store runs: Run
// checks the Store contract of repo/store.go (round trips, not-found errors,
// exact ranges, byte-ordered listing, idempotent deletes, buffer ownership,
// concurrency) against fresh stores made by the caller, so each backend's
// own test is a few lines. It uses only names a file system can hold: no
// name is both an object and a directory prefix of another object.
package storetest
