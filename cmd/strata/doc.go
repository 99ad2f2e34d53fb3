// Command strata backs up database exports into a deduplicating, encrypted,
// erasure-coded repository and restores them byte-exact. See README.md for
// the command reference. This package only wires flags, environment and
// output to the engine.
package main
