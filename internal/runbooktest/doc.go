// Package runbooktest holds the test that keeps docs/runbooks.md true: for
// each runbook it builds strata, sets up the failure the runbook recovers
// from against real servers (redis-server, etcd, MinIO) on loopback, runs
// the runbook's ```sh blocks in order with bash, and checks the outcome.
//
// A runbook is a "## " section of docs/runbooks.md whose heading is
// followed by <!-- runbook: ID -->; its ```sh blocks are its commands, and
// the test sets the variables the runbook names at its top.
package runbooktest
