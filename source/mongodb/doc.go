// Package mongodb backs up MongoDB databases into a Strata repository:
// logical base snapshots with mongodump --oplog semantics, continuous
// capture of the oplog, and restore of a database, or of chosen
// collections, as it was at an instant (FORMAT.md §23).
//
// # Oplog timestamp
//
// MongoDB orders its oplog by timestamps (seconds, increment). Timestamp
// packs one into a uint64 (seconds<<32 | increment), so they compare as
// numbers. Every stored entry keeps its own timestamp and wall time.
//
// # Position
//
// A stream's log positions count the oplog entries it stores: the next
// stored entry gets the next position, as FORMAT.md §15 requires; the
// timestamps inside the events say where in the oplog each one is, and
// PositionAt maps an oplog timestamp back to a position (position.go).
//
// # Base
//
// Every wanted collection's options, indexes and documents (BSON, one per
// line, in _id order, so the record chunker deduplicates day to day), then
// the oplog entries written while they were read (base.go). Replaying
// them over the documents gives the state at the trailer's End exactly.
//
// # Oplog event
//
// One log event per oplog entry: key the namespace, time the entry's wall
// time, value the entry's BSON byte for byte (event.go).
//
// # Op
//
// What an entry asks of a restore: an insert, replacement, update ($set
// and $unset paths, or a $v:2 diff applied in memory), delete, or a
// command (create, drop, rename, indexes), with applyOps expanded (oplog.go,
// diff.go).
//
// # Proof
//
// A base records the proof (FORMAT.md §11.1, §23.5) of its documents at
// its trailer's end: canonical records (canon.go) of the state the
// prover computes in memory, without a server, from the stored base and
// log (proof.go, memapply.go). Restores read the target back against it
// (verify.go); drill and check use the prover through
// source.RegisterStateProver.
package mongodb
