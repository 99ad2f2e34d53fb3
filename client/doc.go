// Package client talks to a Strata index server (PROTOCOL.md). Store makes
// the server's object API a repo.Store, so every engine operation (backup,
// log capture, restore, check, prune) runs unchanged on the client, which
// keeps the key: the server only ever sees sealed objects. The lookup
// methods ask the server's catalog for streams, snapshots, plans and
// coverage; PlanFor follows a plan's pages and fetches each page's
// segment manifests ahead of the restore that reads them (prefetch.go).
package client
