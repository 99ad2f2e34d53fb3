package index

import "runtime"

// Merge returns a new sealed index holding every entry of the sealed
// indexes ixs, which it leaves unchanged. A blob in several keeps one of
// its locations (every listed location is valid). The entries are copied
// in their compact form, without expanding them, and in one pass that
// merges the inputs' sorted runs, so merging costs no sort.
func Merge(ixs ...*BlobIndex) *BlobIndex {
	out := NewBlobIndex()
	out.mu.Lock()
	// Frames are not shared between the inputs' numbering: each input's
	// frames are appended whole, and its entries shifted by first[j].
	first := make([]uint32, len(ixs))
	for j, ix := range ixs {
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
		first[j] = uint32(len(out.frames))
		for _, f := range ix.frames {
			f.pack = packTo[f.pack]
			out.frames = append(out.frames, f)
		}
	}
	next := make([]int, len(ixs)) // each input's first entry not yet taken
	for {
		from := -1
		for j, ix := range ixs {
			if next[j] < len(ix.entries) && (from < 0 || ix.entries[next[j]].id.Compare(ixs[from].entries[next[from]].id) < 0) {
				from = j
			}
		}
		if from < 0 {
			break
		}
		e := ixs[from].entries[next[from]]
		next[from]++
		e.frame += first[from]
		out.add(e)
	}
	runtime.KeepAlive(ixs) // their entries live in their arenas
	out.mu.Unlock()
	out.seal(true)
	return out
}
