// Package location is the registry of store backends by location scheme,
// as restic's location registry and kopia's AddSupportedStorage are: each
// backend registers itself from its own package (repo/local for a bare
// directory, repo/s3 for s3:// and s3+http://, client for http:// and
// https:// of an index server), and Open looks the scheme up, opens the
// store and applies the cross-cutting decorators in one place (Wrap), the
// same way to every remote store.
//
// # Location
//
// A string naming one store: a directory path (no "://"), or SCHEME://….
//
// # Remote
//
// A backend that talks over a network. Open wraps its stores in
// repo/limit (at most Backend.Limit calls in flight) and, outside it,
// repo/retry, so a call sleeping between attempts gives its slot back.
// Backends never retry on their own (repo.Store's contract); they classify
// their errors with a Transient() method instead.
//
// # Adding a store
//
// A new backend is one package that calls Register from an init function
// and one blank import in cmd/strata.
package location
