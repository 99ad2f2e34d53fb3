// Package etcd backs up an etcd v3 cluster into a Strata repository: full
// snapshots, continuous capture of every revision, and restore of the
// keyspace as it was at an instant into another cluster (FORMAT.md §21).
//
// # Revision
//
// etcd numbers its write transactions: each one that changes something gets
// the next revision. A stream's log position is the revision, so positions
// count up by one exactly as the log requires, and a hole in them is a gap.
//
// # Snapshot
//
// Every key-value of the cluster at one revision, read in pages at that
// fixed revision (so the result is consistent however long the read takes),
// encoded as described in snapshot.go and stored as a raw export whose
// position is the revision.
//
// # Revision event
//
// One log event per revision: Seq is the revision, Time is when the change
// reached the capture, and Value holds every change of the revision
// (revision.go). A revision's changes are restored as one transaction.
//
// # Base
//
// The snapshot a restore starts from, and a capture continues after. A
// capture whose start revision was compacted away records a gap and takes a
// new base at the current revision.
package etcd
