// Package s3gw is Strata's S3-compatible gateway: unmodified S3 clients
// (the aws CLI, rclone, restic, pgBackRest, …) push into a Strata
// repository and read back any bucket as it was at any instant.
//
// # Bucket
//
// A bucket is the stream "s3/<bucket>". Its change log (engine.LogWriter)
// holds one event per bucket change, object PUT, DELETE and completed
// multipart upload (FORMAT.md, "S3 gateway events").
//
// # Object record
//
// The value of an object event: key, version, size, ETag, metadata and
// the blob trees of the content's parts. Content is stored with
// engine.StoreContent, so it is chunked, deduplicated against every blob
// of the repository, compressed, encrypted and erasure-coded like a backup.
//
// # Key table
//
// The in-memory map from key to versions that listings, GETs and
// point-in-time views read. It is rebuilt at start by replaying every
// bucket's log (up to --at when given), so a restart or a second gateway
// sees exactly what the repository holds.
package s3gw
