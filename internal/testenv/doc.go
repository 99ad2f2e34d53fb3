// Package testenv holds what the tests that run real servers (MinIO,
// redis-server, etcd, strata serve) share: finding a server binary, a free
// loopback port, and a buffer that a child process may write while the test
// reads it.
package testenv
