package index

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// The blob index of a large restore is tens of megabytes of pointer-free
// entries that live as long as the operation. Held in the Go heap they
// count twice towards peak memory (the collector lets the heap grow to
// twice what is live before it runs) and are copied at every append
// growth. Held outside it, in blocks mapped from the operating system and
// unmapped as soon as they are done with, they count once, and the heap
// left to the collector is the restore's working set alone.

// blockEntries is the capacity of one building block: 704 KiB of entries.
const blockEntries = 16 << 10

// block is a run of entries outside the Go heap where the platform allows
// (mapBlock), or in it otherwise. entries MUST NOT be used after free.
type block struct {
	mem     []byte // the mapping; nil when entries live in the Go heap
	entries []entry
}

func newBlock(n int) *block {
	if n == 0 {
		return &block{}
	}
	size := n * int(unsafe.Sizeof(entry{}))
	if mem := mapBlock(size); mem != nil {
		return &block{mem: mem, entries: unsafe.Slice((*entry)(unsafe.Pointer(unsafe.SliceData(mem))), n)[:0]}
	}
	return &block{entries: make([]entry, 0, n)}
}

func (b *block) free() {
	if b.mem != nil {
		unmapBlock(b.mem)
	}
	b.mem, b.entries = nil, nil
}

// arena owns the blocks of one BlobIndex. A cleanup on the index frees
// them when the index is collected, so callers need no Close.
type arena struct {
	blocks   []*block // touched only by the index's owner, under its lock
	released atomic.Bool
}

// freeAll runs once, from the cleanup, when no one holds the index.
func (a *arena) freeAll() {
	for _, b := range a.blocks {
		b.free()
	}
	a.blocks = nil
	a.released.Store(true)
}

// attachArena gives ix its arena and the cleanup that releases it.
func attachArena(ix *BlobIndex) {
	a := &arena{}
	ix.arena = a
	runtime.AddCleanup(ix, func(a *arena) { a.freeAll() }, a)
}
