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
package engine
