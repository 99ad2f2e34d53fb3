// Package ndjson is the NDJSON source: exports of one JSON document a line,
// keyed by a top-level field, and change events in the log's event format.
//
// # Export
// A snapshot of documents, one a line. Its key field (default "_id") keys
// each document; a backup records whether the keys strictly ascend
// ("sorted"), which lets a point-in-time restore merge as it streams and a
// record-level read search the export instead of reading it.
//
// # Event
// {"seq":N,"ts":T,"op":"put"|"delete","key":K,"doc":{...}}: ParseEvent.
//
// # Point-in-time restore
// RestoreAt: the base snapshot's documents with the plan's events folded
// per key (Changes) and merged in (Merge, MergeUnsorted), sorted by key.
// Past a bound the changes spill to sorted runs in a temporary file
// (NewSpillingChanges), merged back k-way.
//
// # Record-level reads
// Get (one document at an instant), History (every version of one
// document), Diff (keys added, removed and changed between two instants)
// and RestoreSelected (the documents under a key prefix, or listed keys).
// Each reads the plan's log segments and, in a sorted export, only the
// chunks where its keys lie (engine.SnapshotReader.Seek).
package ndjson
