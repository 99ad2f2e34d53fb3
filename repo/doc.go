// Package repo is Strata's repository format (FORMAT.md): the objects a
// repository holds, how they are named, sealed and verified, and the Store
// interface every backend implements.
//
// # Store
// A flat namespace of immutable objects (store.go). Backends live in leaf
// packages (repo/mem, repo/local, repo/s3, and the index server's client)
// and register by location scheme in repo/location; decorators (repo/retry,
// repo/limit, repo/faulty, repo/multi) implement Store themselves and
// forward the optional interfaces (Retainer, Tampered) honestly
// (Decorated, StoreAs).
//
// # Names
// Every object name, its kind, and its parse and format functions are in
// names.go (FORMAT.md §1): config, the store layout "stores", keys/,
// data/ (pack shards), index/, snapshots/, labels/, logs/ (segment
// manifests), prune/ marks and audit/ batches. ParseObject accepts exactly
// those names; VerifyObject checks an object's bytes against its name
// without a key.
//
// # Copies
// From format version 2 every metadata object (config, store layout, key
// files, index files, snapshot manifests, labels, segment manifests) is
// stored twice, under its name and under copies/<name> (copies.go,
// FORMAT.md §25). WithCopies is the Store decorator that writes, reads
// around, lists and deletes both; Repository.CheckCopies heals one from the
// other; Repository.Upgrade adds them to a version-1 repository.
//
// # Key generation
// The master key is generation 0 of a keyring; Repository.RotateKeys adds a
// generation and re-wraps every key file (version 2) around the keyring
// (rotate.go, keyring.go, FORMAT.md §4.1). New frames and sealed metadata
// use the config's key_generation; readers try the keyring newest first.
// Blob IDs, chunker secrets and the config's sealing stay on generation 0.
//
// # Blob
// A chunk of an export, or a list of blob IDs (a tree node), identified by
// its keyed BLAKE3 ID, compressed and sealed with an AEAD whose associated
// data is the ID.
//
// # Pack
// A run of sealed frames (several blobs compressed together), erasure-coded
// into k data and m parity shards (repo/shard), each stored as
// data/<xx>/<pack>.<i>.
//
// # Index file
// Which pack, frame and offset holds each blob; sealed, content-addressed.
//
// # Snapshot
// A sealed manifest: stream, consistent point (time, log position), the
// root of its blob tree, and the index files it needs. Its clear Label lets
// an index server list it without the key.
//
// # Proof
// A snapshot's record count and logical digest (Proof, Digester): a keyed,
// order-independent sum of its canonical records' hashes, so the export, a
// restore and a replay of the same state agree (FORMAT.md §11.1).
//
// # Log segment
// The change events of one stream at positions First..Last, in a pack of
// their own; the manifest's name carries the range and times, so the
// catalog can be rebuilt by listing.
//
// # Layout
// The clear "stores" object (Layout): which stores hold a multi-store
// repository, and the retention every write gets.
package repo
