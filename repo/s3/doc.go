// Package s3 is a repo.Store in an S3 bucket (AWS S3, MinIO and other
// S3-compatible servers), built on minio-go. It adds S3 Object Lock
// retention (repo.Retainer) and, on versioned buckets, serves intact older
// versions of objects an attacker overwrote or hid (repo.Tampered).
//
// # URL
//
// s3://HOST[:PORT]/BUCKET[/PREFIX] over HTTPS, s3+http://… over plain HTTP
// (ParseURL). Credentials never appear in a URL; the caller passes them in
// Options. The package reads no environment.
//
// # Key
//
// The S3 key of an object is PREFIX + "/" + name, or name without a prefix.
//
// # Version
//
// A versioned bucket (Object Lock implies versioning) keeps every Put as a
// version of its key; a delete marker is a version saying "deleted". The
// newest version is the latest; a version ID names one.
//
// # Retention
//
// With Options.Retention > 0, every Put sets Object Lock retention (mode
// Options.Mode, GOVERNANCE unless COMPLIANCE is asked for) until now +
// Retention on the version it writes; until then no one holding the
// repository's credentials can delete or change that version. Delete of an
// object with a retained version returns an error wrapping repo.ErrRetained;
// RetainUntil extends, never shortens.
//
// # Tamper
//
// The threat: an attacker with the repository's credentials on a locked
// bucket cannot remove locked versions, so they put delete markers on keys
// or overwrite them with junk, which shadows the locked versions. Get reads
// the latest version; if Options.Verify rejects it, or it is a delete
// marker while older versions exist, Get lists the key's versions newest
// first and serves the newest that passes Verify (the newest real one
// without Verify). It records the name as tampered and remembers that
// version, which later Get, GetRange, Stat and RetainUntil calls use. If no
// version passes, Get returns an error wrapping Verify's, never junk.
// GetRange reads the latest version of names not yet found tampered;
// callers verify what they read and fall back to Get, which finds the
// intact version. List reports names whose latest version is a delete
// marker but which have older real versions.
//
// # Transient
//
// Errors worth retrying (connection failures, timeouts, HTTP 5xx, SlowDown)
// have a method Transient() bool returning true; all others returned by the
// store return false (repo/retry reads it). The store itself never retries:
// minio-go's retries are off, and the HTTP transport bounds the time to
// connect and to the first response byte.
package s3
