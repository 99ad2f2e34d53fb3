// Package server is Strata's index server (`strata serve`): an HTTP/JSON
// API, specified in PROTOCOL.md, in front of one repository's store.
//
// Clients keep the repository key. They chunk, compress and encrypt locally
// and push sealed objects; the server checks each upload against what its
// name promises (repo.VerifyObject), never overwrites or deletes for a
// client that only has a backup scope, stamps its own receive time on every
// snapshot label, and answers lookups (streams, snapshots, restore plans,
// coverage) from the plaintext metadata the format exposes: stream names,
// times, positions and sizes. It never needs the password.
//
// With RunScrubs it also scrubs without the key (scrub.go): it verifies
// every shard's clear header and checksum, rebuilds bad shards from parity
// after checking the rebuilt pack against its ID, and keeps its position
// and findings as keyless scrub records (FORMAT.md §24.2).
package server
