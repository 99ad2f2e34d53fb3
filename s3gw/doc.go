// Package s3gw is Strata's S3-compatible gateway: unmodified S3 clients
// (the aws CLI, rclone, restic, pgBackRest, …) push into a Strata
// repository and read back any bucket as it was at any instant.
//
// # Bucket
//
// A bucket is the stream "s3/<bucket>". Its change log (engine.LogWriter)
// holds one event per bucket change, object PUT, DELETE and completed
// multipart upload, and per start, stored part and end of a multipart
// upload, so uploads in progress survive a restart (FORMAT.md §22.1).
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
// The in-memory tree from key to versions that listings, GETs and
// point-in-time views read. It is rebuilt at start from each bucket's
// newest base at or before the target (now, or --at) and the log after it,
// so a restart or a second gateway sees exactly what the repository holds.
//
// # Base
//
// A snapshot of stream "s3/<bucket>" whose export is the bucket's key
// table at a log position, as NDJSON (FORMAT.md §22.5). The gateway writes
// one every Options.BaseEvery events or Options.BaseInterval; opening
// reads the newest base instead of the whole log, and forget can drop the
// log before a kept base. Prune reaches the content of every version a
// base holds through engine.RegisterSnapshotTrees.
package s3gw
