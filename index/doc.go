// Package index holds what Strata keeps in memory about a repository.
//
// # Blob index
// The map from blob ID to location (pack, frame, offset), built from index
// files. It is a sorted array, not a hash map: 44 bytes a blob, plus 12 a
// frame, held outside the Go heap where the platform allows (arena.go).
//
// # ID set
// A compact set of blob IDs used for deduplication during a backup: the
// parent snapshot's blobs and the blobs this backup has already stored.
//
// # Catalog
// Every snapshot's manifest and every log segment name, by stream, ordered
// by time and position (LoadCatalog; an index server serves the same).
// Latest picks a stream's newest snapshot, the parent of the next backup.
//
// # Log
// A stream's segments sorted by position and cut into runs of contiguous
// ones (NewLog); overlaps are conflicts, a jump between runs is a gap.
// Twins, segments whose names agree but for the manifest ID (a
// re-encryption cut short leaves them), are one candidate that plans list
// whole; engine.LoadPlanSegments decides them on the manifests.
//
// # Plan
// Point-in-time recovery: a Target (a time, or a position) is planned as
// the newest snapshot at or before it plus the contiguous segments after
// it up to the target. A gap on the way is an error naming it and the
// nearest restorable instants, never a silent short restore. Coverage
// reports a stream's restorable windows and gaps. FormatTime and the
// target parsers give times one spelling.
package index
