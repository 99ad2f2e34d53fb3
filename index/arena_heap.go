//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package index

// mapBlock: no anonymous mappings here; entries stay in the Go heap.
func mapBlock(int) []byte { return nil }

func unmapBlock([]byte) {}
