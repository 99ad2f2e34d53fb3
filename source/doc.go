// Package source is the one interface every database or export kind
// implements (Source: backup, capture, restore, with shared BackupOptions,
// CaptureOptions and RestoreOptions, an Env from the caller and a
// Logf-style logger), the reports they return (BackupReport,
// CaptureReport, RestoreReport: one shape the CLI prints for every
// source), and the registry by URL scheme the CLI looks sources up in
// (Register for databases, RegisterExport for exports, Open).
//
// # Export
// An export is a file or standard input the operator made, named by a URL
// without a host: ndjson:PATH, ndjson:///ABS/PATH, ndjson:- (package
// ndjson). `strata backup FILE`, `backup --stdin` and `log --stdin` open
// it as that URL, so every backup and capture goes through a Source. Only
// an export takes BackupOptions' time and position; a database refuses
// them (BackupOptions.FromDatabase).
//
// # Adding a database
// One new package under source/ whose init calls
// source.Register("scheme", open), where open parses the URL (errors are
// *URLError) and returns a value implementing Source; and one blank import
// in cmd/strata/backends.go. Its methods return reports and print nothing
// but progress notes (Env.Logf) and dry-run plans; the CLI prints the
// summaries and --json. Reconnections wait by ReconnectBackoff, and base
// snapshots deduplicate against engine.Parent. The package stores snapshots with
// engine.Backup (which extends retention), log segments with
// engine.OpenLog, and plans restores with index.Catalog.Plan and
// engine.LoadPlanSegments.
//
// # Proofs
// A source that defines a canonical record (FORMAT.md §11.1) records each
// snapshot's proof (repo.Snapshot.SetProof), checks it in its restores, and
// registers a StateProver: the digesting restore that drills and replay
// proofs (ProveState, SnapshotProof, ReplayProof) use without a database.
package source
