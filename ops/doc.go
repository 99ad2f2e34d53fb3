// Package ops holds what operations keep in a repository about the
// repository itself: the results of restore drills and the progress of
// scrubs (FORMAT.md §24). Drills, scrubs, `strata status`, the index
// server's status page and its metrics all read and write these records
// through this package, so each has one definition.
//
// It also holds the recovery objectives and their grading, shared by
// `strata status` and the index server so both say the same thing:
//
//   - Policy: per stream glob, the limits on snapshot age, RPO, drill age
//     and RTO, and the repository's scrub age; each a Limit with a warning
//     and a failure level (ParsePolicy reads it from YAML).
//   - RPO: now minus the newest restorable instant (the end of the newest
//     restorable window), what losing the database now would lose.
//   - RTO: the restore time the newest passing drill measured.
//   - State: ok, warning or failure; also the exit code of `strata status`.
//   - Compute: grades every stream of a catalog (index.Catalog) with its
//     newest drills and the newest scrub (RecordReader) against a Policy.
package ops
