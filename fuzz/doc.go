// Package fuzz holds the fuzz targets for every decoder of stored bytes:
// key files, the config, pack trailers, frames, index files, snapshot
// manifests, list blobs and shards, plus round trips through sealing,
// erasure coding and the record chunker.
//
// CI runs each target for a few seconds (scripts/test); run one for longer
// with, for example:
//
//	go test -run '^$' -fuzz '^FuzzIndexFile$' -fuzztime 10m ./fuzz/
package fuzz
