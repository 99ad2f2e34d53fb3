// Package engine runs Strata's pipelines over a repository: backup,
// restore, log capture, check, forget, prune and retention.
//
// # Backup
// export → chunk → ID → dedup against the parent snapshot and this backup →
// frames (runs of new blobs, compressed together) → packs → erasure-coded
// shards → index files → snapshot manifest, last. After every snapshot it
// writes, Backup extends the retention of everything still referenced when
// the store layout sets one (RetainReferenced, FORMAT.md §17), so a base
// never expires under a newer snapshot that deduplicates against it.
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
//
// # Log
// OpenLog returns a LogWriter that appends a stream's change events and
// seals them into log segments: a pack of their own plus a manifest whose
// name carries the position range and times (FORMAT.md §15), chained to the
// previous segment. ReadSegment and LoadPlanSegments read them back for a
// point-in-time restore, checking the chain.
//
// # Point in time
// A restore at T takes index.Plan's base snapshot (the newest at or before
// T) and the contiguous segments after it; the source (ndjson, redis, etcd)
// applies the events with time ≤ T in position order.
//
// # Forget and prune
// Forget removes snapshot and segment manifests a keep policy no longer
// needs (manifests first, so nothing live points at missing data). Prune is
// two-phase: it marks packs no manifest references (prune/marks-…, FORMAT.md
// §18) and deletes them only on a later run after a grace period, so a
// backup running concurrently never loses a pack it deduplicated against.
// Objects under retention are deferred, not failed.
//
// # Re-encryption
// Reencrypt (`key rotate --reencrypt`) rewrites every pack and sealed
// manifest still sealed under an older key generation under the newest,
// recording each replacement in a journal (rekey/…, FORMAT.md §4.1) before
// storing it, leaves the replaced packs to prune's two phases, and retires
// the old generations from the key files once nothing sealed under them
// remains and no capture may still write under them.
//
// # Check
// Check verifies manifests, index files and shards (with ReadData, every
// shard's checksum and every blob's AEAD) and, with Repair, rebuilds
// damaged shards from parity and rewrites index files. Select reads only
// part of the packs: a Subset (N/M slices by pack ID, or P%), or a scrub's.
//
// # Scrub
// A scrub pass is a check with repair that reads the slice of packs due
// now, so passes at any spacing read every pack once per cycle; its
// position and findings are ops.ScrubRecords in the repository (FORMAT.md
// §24.2). The index server's keyless scrub (package server) shares the
// planning (ops.PlanPass) and checks shards only.
package engine
