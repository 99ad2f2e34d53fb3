//go:build unix

package auth

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock beside the tokens file (path + ".lock",
// created 0600 and left in place), waiting for any other holder, and
// returns the function that releases it. The tokens file itself cannot be
// locked: every update replaces it by a rename. flock locks belong to the
// open file, so they exclude other processes and other goroutines alike.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: lock: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tokens file %s: lock: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}
