// Package etcdtest gives tests a real etcd: /usr/bin/etcd started on free
// loopback ports with a temporary data directory, stopped when the test ends.
//
// # Binary
//
// The binary is STRATA_ETCD_BIN, else etcd on PATH (Debian's etcd-server
// installs /usr/bin/etcd). Without it Start skips the test, unless
// STRATA_REQUIRE_DATABASES=1 (CI sets it), which makes a missing binary a
// failure instead.
//
// # Auth
//
// EnableAuth adds a root user and turns authentication on, for tests of a
// wrong password; Client keeps working with the root credentials.
package etcdtest
