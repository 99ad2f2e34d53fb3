// Package ops holds what operations keep in a repository about the
// repository itself: the results of restore drills and the progress of
// scrubs (FORMAT.md §24). Drills, scrubs, `strata status`, the index
// server's status page and its metrics all read and write these records
// through this package, so each has one definition.
package ops
