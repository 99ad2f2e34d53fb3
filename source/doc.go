// Package source is the one interface every database or export kind
// implements (Source: backup, capture, restore, with shared CaptureOptions
// and RestoreOptions, an Env from the caller and a Logf-style logger), and
// the registry by URL scheme the CLI looks sources up in (Register, Open).
//
// # Adding a database
// One new package under source/ whose init calls
// source.Register("scheme", open), where open parses the URL (errors are
// *URLError) and returns a value implementing Source; and one blank import
// in cmd/strata/backends.go. The package stores snapshots with
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
