// Package index holds what Strata keeps in memory about a repository.
//
// # Blob index
// The map from blob ID to location (pack, frame, offset), built from index
// files. It is a sorted slice, not a hash map: about 56 bytes a blob.
//
// # ID set
// A compact set of blob IDs used for deduplication during a backup: the
// parent snapshot's blobs and the blobs this backup has already stored.
//
// # Catalog
// Every snapshot's manifest, by stream and time.
package index
