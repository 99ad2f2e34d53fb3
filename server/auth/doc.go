// Package auth holds the index server's access tokens and the scopes they
// grant. It knows nothing of HTTP: the server authenticates a request's
// bearer token with [Set.Authenticate] and asks the returned [Identity]
// whether it [Identity.Allows] the operation.
//
// # Glossary
//
//   - Token: the secret a client presents, "strata_" followed by the
//     unpadded base64url encoding of 32 random bytes. It is shown once, when
//     it is created, and never stored.
//   - Tokens file: the server's list of identities, one line per token:
//     "NAME SCOPES SHA256HEX" (see [Parse]). It stores only the SHA-256 of
//     each token, so reading the file does not reveal a usable token; it
//     must not be writable by group or others, because writing a line to it
//     grants access.
//   - Identity: a token's name and scopes, the result of authenticating.
//   - Scope: one permission, written "read", "backup:GLOB", "restore:GLOB"
//     or "admin"; a token's scopes are written comma-separated (see
//     [ParseScopes]).
//   - Glob: the streams a backup or restore scope covers. '*' matches any
//     run of characters including '/', '?' matches one character other than
//     '/', and every other character matches itself.
//   - Set: the parsed tokens file. It never changes after parsing, so the
//     server reloads the file on SIGHUP by parsing a new Set and swapping a
//     pointer (atomic.Pointer[Set]) while requests keep using the old one.
package auth
