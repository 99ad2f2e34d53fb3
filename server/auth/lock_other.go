//go:build !unix

package auth

// lockFile does nothing where flock is missing: two updates of one tokens
// file at the same time may then lose one (the last rename wins).
func lockFile(string) (func(), error) { return func() {}, nil }
