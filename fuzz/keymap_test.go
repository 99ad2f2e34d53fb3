package fuzz

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// The key-map vector of FORMAT.md §26.
const (
	keyMapLeafHex = "01021111111111111111111111111111111111111111111111111111111111111111a01f04022222222222222222222222222222222222222222222222222222222222222222a846040203030009757365722d303030310000b00900b410a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1000000b009b410ec0ea2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2010702313701ac02840700c413a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"
	keyMapRootHex = "0103e432010109757365722d303030310300d201d401cec7b215839906a7f6f371df464d05a065e3a4b90565cd46838e501bce528054"
)

// FuzzKeyMapLeaf: a leaf that decodes has 1 to 65,536 entries with
// ascending keys of at most 4,096 bytes, locations inside their packs, and
// survives a round trip (FORMAT.md §26).
func FuzzKeyMapLeaf(f *testing.F) {
	seed, _ := hex.DecodeString(keyMapLeafHex)
	f.Add(seed)
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := repo.DecodeKeyMapLeaf("fuzz", b)
		if err != nil {
			return
		}
		if len(entries) < 1 || len(entries) > repo.MaxKeyMapLeaf {
			t.Fatalf("accepted %d entries", len(entries))
		}
		var prev []byte
		for _, e := range entries {
			l := e.Entry.Location
			if uint64(l.FrameOffset)+uint64(l.FrameLength) > e.Pack.Length || l.Pack != e.Pack.ID {
				t.Fatalf("accepted a location outside its pack: %+v", e)
			}
			if e.HasKey {
				if len(e.Key) > repo.MaxKeyMapKey || prev != nil && bytes.Compare(e.Key, prev) <= 0 {
					t.Fatalf("accepted key %q after %q", e.Key, prev)
				}
				prev = e.Key
			}
		}
		// Packs are listed in order of first use: an encoding that lists
		// an unused pack, or in another order, decodes but re-encodes
		// differently; decoding again must give the same entries.
		again, err := repo.DecodeKeyMapLeaf("fuzz", repo.EncodeKeyMapLeaf(entries))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("re-encoded leaf does not decode: %v", err)
		}
		for i := range again {
			a, b := again[i], entries[i]
			if a.HasKey != b.HasKey || a.LineStart != b.LineStart || !bytes.Equal(a.Key, b.Key) || a.Pack != b.Pack || a.Entry != b.Entry {
				t.Fatalf("entry %d changed in a round trip", i)
			}
		}
	})
}

// FuzzKeyMapRoot: a root that decodes has leaves summing to its blobs with
// ascending keys, and survives a round trip (bytes may differ: a uvarint
// may be spelled longer than needed).
func FuzzKeyMapRoot(f *testing.F) {
	seed, _ := hex.DecodeString(keyMapRootHex)
	f.Add(seed)
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := repo.DecodeKeyMapRoot("fuzz", b)
		if err != nil {
			return
		}
		var sum int64
		for _, l := range root.Leaves {
			sum += int64(l.Entries)
		}
		if sum != root.Blobs || len(root.Leaves) > repo.MaxKeyMapLeaves {
			t.Fatalf("accepted a root of %d blobs whose leaves hold %d", root.Blobs, sum)
		}
		again, err := repo.DecodeKeyMapRoot("fuzz", repo.EncodeKeyMapRoot(root))
		if err != nil || !bytes.Equal(repo.EncodeKeyMapRoot(again), repo.EncodeKeyMapRoot(root)) || again.Blobs != root.Blobs || again.Size != root.Size {
			t.Fatalf("root changed in a round trip: %v", err)
		}
	})
}
