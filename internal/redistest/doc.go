// Package redistest gives tests a real Redis: redis-server started on a
// free loopback port with a temporary directory, no persistence and DEBUG
// enabled (for DEBUG DIGEST), stopped when the test ends.
//
// # Binary
//
// The binary is STRATA_REDIS_BIN, else redis-server on PATH (Debian's
// redis-server package). Without it Start skips the test, unless
// STRATA_REQUIRE_DATABASES=1 (CI sets it), which makes a missing binary a
// failure instead.
//
// # Client
//
// Client is a minimal RESP client of its own, so this package depends on
// nothing it helps to test.
package redistest
