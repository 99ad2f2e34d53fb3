// Package fuzz holds the fuzz targets for every decoder of stored bytes:
// key files, the config, pack trailers, frames, index files, snapshot
// manifests, list blobs and shards, plus a round trip through sealing and
// erasure coding. The chunkers' target (checked against a byte-by-byte
// reference) lives beside them in package chunk.
//
// CI runs every Fuzz target of the module for a few seconds (scripts/test);
// run one for longer with, for example:
//
//	go test -run '^$' -fuzz '^FuzzIndexFile$' -fuzztime 10m ./fuzz/
package fuzz
