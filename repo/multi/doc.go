// Package multi is a repo.Store that spreads one repository over several
// stores (buckets, regions, local directories), so that losing any one whole
// store loses no data whenever the erasure coding and the number of stores
// allow it.
//
// # Shard
//
// An object whose name is a pack shard's (repo.ShardIndex reports its index
// i) lives on one store only, its home store. Parity, not copies, protects
// shards: a lost store takes at most ShardsPerStore(k, m, n) shards of each
// pack, and the repository rebuilds them with repo.Repository.RepairPack.
//
// # Home store
//
// Store i mod n of the n stores, for shard i. Placement depends on the number
// and the order of the stores, so both MUST stay the same for the life of a
// repository: reads still find a shard on another store, but a changed store
// list no longer guarantees that losing one store is survivable.
//
// # Replicated object
//
// Every object that is not a shard: config, keys/, index/, snapshots/,
// logs/ and any other. A copy goes to every store, so the repository opens
// through any surviving store, even through that store alone. Reads skip a
// copy that fails the Verifier and take another store's.
//
// # Resync
//
// Copying replicated objects back onto stores that lack them or hold a
// damaged copy, after a store was lost, re-created or tampered with. Missing
// shards are not copied (there are no copies); RepairPack rebuilds them.
//
// # Degraded
//
// A Store opened with Options.Degraded is read-only and treats a store that
// fails to answer as empty, so a repository can be opened and restored while
// a store is unreachable. A normal Store fails instead: a listing without
// one store could make cleanup delete what that store's objects reference.
//
// # Placement check
//
// Survives, ShardsPerStore and CheckPlacement say whether k+m shards over n
// stores survive the loss of one store: shard i on store i mod n means a lost
// store takes ceil((k+m)/n) shards of every pack, which parity covers only
// if that is at most m.
package multi
