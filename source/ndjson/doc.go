// Package ndjson is the NDJSON export and change-log format: documents one
// per line keyed by a field (KeyOf, DefaultKeyField), and change events
// ({"seq","ts","op","key","doc"}, ParseEvent) that a capture stores as log
// segments.
//
// # Export
// A snapshot of documents, one JSON object a line. The engine stores it
// with record-aligned chunks; whether the export is sorted by key
// (NewOrderChecker) decides how a point-in-time restore merges changes into
// it.
//
// # Event
// One change: seq is the log position (the next event has seq+1, a jump is
// a gap), ts its time, op put (with the whole new document) or delete.
//
// # Restore
// A point-in-time restore reads the base export, applies the net effect of
// the plan's events up to the target (Changes), and writes the documents
// sorted by key, one per line.
package ndjson
