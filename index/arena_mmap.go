//go:build linux || darwin || freebsd || netbsd || openbsd

package index

import "golang.org/x/sys/unix"

// mapBlock maps size bytes of private anonymous memory; nil when the
// system refuses (the caller then uses the Go heap).
func mapBlock(size int) []byte {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil
	}
	return mem
}

func unmapBlock(mem []byte) { _ = unix.Munmap(mem) }
