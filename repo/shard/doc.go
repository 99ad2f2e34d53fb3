// Package shard erasure-codes sealed packs into shard objects and back
// (FORMAT.md, section 9).
//
// # Pack
// A sealed byte string of encrypted frames and a trailer; its ID is the
// unkeyed BLAKE3 of its bytes.
//
// # Shard
// One of k+m objects made from a pack: k data shards hold the pack's bytes
// in order (the last zero-padded), m parity shards hold Reed–Solomon parity.
// Each carries a clear header (k, m, its index, the pack's length and ID)
// and a BLAKE3 checksum, so a damaged shard is found before reconstruction
// and anyone can verify shards without the repository key.
//
// # Reconstruction
// Any k intact shards give back the pack; the result is checked against the
// pack ID, so a reconstruction from wrong shards is never returned.
package shard
