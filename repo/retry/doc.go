// Package retry is a repo.Store decorator that retries calls failing with a
// transient error, waiting an exponentially growing, jittered time between
// attempts, and returns permanent errors at once.
//
// # Attempt
//
// One call to the inner store. Policy.Attempts counts them all, the first
// included, so Attempts = 1 never retries.
//
// # Transient
//
// An error that a later identical call may not have: a dropped or refused
// connection, a timeout, a body cut short (io.ErrUnexpectedEOF), a server
// asking to slow down. IsTransient decides; an error in the chain with a
// method Transient() bool has the last word, so a backend classifies its own
// errors without importing this package (repo/s3 marks S3 5xx and SlowDown
// transient, and a GetRange outside the object permanent although it wraps
// io.ErrUnexpectedEOF). repo.ErrNotFound, repo.ErrRetained, repo.ErrCorrupt,
// a cancelled context and everything unknown are permanent.
//
// # Backoff
//
// The wait before attempt n+1 is a random time between half and all of
// min(Base·2^(n-1), Max). A done context ends the wait and the call.
//
// # Forwarding
//
// New returns a store implementing repo.Retainer exactly when the inner
// store does (RetainUntil is retried like the other calls), and
// repo.Tampered exactly when the inner store does (passed through), so type
// assertions on the result answer as they would on the inner store.
package retry
