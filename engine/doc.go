// Package engine runs Strata's backup, restore and check pipelines over a
// repository.
//
// # Backup
// export → chunk → ID → dedup against the parent snapshot and this backup →
// frames (runs of new blobs, compressed together) → packs → erasure-coded
// shards → index files → snapshot manifest, last.
//
// # Restore
// manifest → blob tree walk → index lookups → parallel frame fetches →
// verified blobs written in order.
//
// # Seek
// A SnapshotReader reads chosen data blobs of one snapshot: Seek binary
// searches the blob tree with a predicate that is monotone along the stream
// (in an export sorted by key, "this chunk's first key is below K"), reading
// a few list blobs and frames; a Cursor then walks on from there.
package engine
