// Package redis backs up, captures and restores a Redis instance through
// its replication protocol: Strata connects as a replica, stores the RDB the
// master sends as a base snapshot, and stores the command stream that
// follows as change events (FORMAT.md section 20).
//
// # Offset
//
// The master's replication offset: a byte count over the replication
// stream. A replica that has applied the stream up to offset O asks for the
// rest with PSYNC <replid> O+1, and the RDB of a full sync holds exactly
// the state at the offset in its +FULLRESYNC line.
//
// # Base
//
// A snapshot of a Redis stream: a short header naming the replication ID
// and offset the RDB is consistent at, then the RDB as the master sent it.
//
// # Command event
//
// One command of the replication stream, stored as one log event. Its
// position (Seq) is a command counter, since offsets advance by bytes; the
// event's value carries the replication ID, the command's offsets, the
// database it applies to and its arguments. PING and REPLCONF are dropped
// (their bytes still count in the offsets); everything else is kept.
//
// # Proof
//
// A base's record count and logical digest (FORMAT.md §11.1, §20): one
// canonical record per key without an expiry, decoded from the RDB by the
// package's own RDB decoder while the base is stored, and recomputed by
// reading a restore's target back (SCAN and one read per type).
//
// # Restore
//
// The restoring process acts as a master for the target: the target is
// told REPLICAOF this process, receives the base RDB as a full sync (Redis
// itself loads every data type), then the stored commands down the same
// link, and is promoted back with REPLICAOF NO ONE once it has acknowledged
// the last byte, then read back and compared with the proof of the state
// restored.
package redis
