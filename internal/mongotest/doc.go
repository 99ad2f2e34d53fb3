// Package mongotest gives tests a real MongoDB wire-protocol server:
// FerretDB v1 embedded with its SQLite backend (the program in
// internal/ferretdb), started on a free loopback port with a temporary
// data directory and an oplog, stopped when the test ends.
//
// # Binary
//
// The binary is STRATA_FERRETDB_BIN, else the one scripts/ferretdb.sh build
// caches in ${STRATA_CACHE:-~/.cache/strata}/ferretdb-v1.24.2/, else
// strata-ferretdb on PATH. Without one Start skips the test, unless
// STRATA_REQUIRE_DATABASES=1 (CI sets it), which makes it a failure.
//
// # What FerretDB cannot show
//
// It logs every update as {$v:1, $set: <whole new document>} (the capture
// stores such entries as replacements, source/mongodb OpsOptions), has no
// snapshot reads, no transactions (so no applyOps entries) and no $v:2
// diffs, and with SQLite it refuses every credential (SCRAM is only there
// with its "new auth", which the embedded package does not enable).
package mongotest
