package index

import "runtime"

// Merge returns a new sealed index holding every entry of the sealed
// indexes ixs, which it leaves unchanged. A blob in several keeps one of
// its locations (every listed location is valid). The entries are copied
// in their compact form, without expanding them, so merging costs about
// one sort of the result.
func Merge(ixs ...*BlobIndex) *BlobIndex {
	out := NewBlobIndex()
	out.mu.Lock()
	for _, ix := range ixs {
		packTo := make([]uint32, len(ix.packs))
		for i, p := range ix.packs {
			n, ok := out.packNo[p.ID]
			if !ok {
				n = uint32(len(out.packs))
				out.packs = append(out.packs, p)
				out.packNo[p.ID] = n
			}
			packTo[i] = n
		}
		// Frames are not shared between the inputs' numbering: each
		// input's frames are appended whole and its entries shifted.
		first := uint32(len(out.frames))
		for _, f := range ix.frames {
			f.pack = packTo[f.pack]
			out.frames = append(out.frames, f)
		}
		for _, e := range ix.entries {
			e.frame += first
			out.add(e)
		}
		runtime.KeepAlive(ix) // its entries live in its arena
	}
	out.mu.Unlock()
	out.Seal()
	return out
}
