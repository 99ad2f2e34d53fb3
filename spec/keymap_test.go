package spec

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
)

// describeEntry renders a key map entry as FORMAT.md's key-map vector
// describes it ("key K, begins a line, pack N, frame O L, blob O L, id XX…").
func describeEntry(e repo.KeyMapEntry, packs map[repo.ID]int) string {
	var parts []string
	if e.HasKey {
		parts = append(parts, "key "+string(e.Key))
	} else {
		parts = append(parts, "no key")
	}
	if e.LineStart {
		parts = append(parts, "begins a line")
	}
	l := e.Entry.Location
	parts = append(parts, fmt.Sprintf("pack %d", packs[e.Pack.ID]), fmt.Sprintf("frame %d %d", l.FrameOffset, l.FrameLength),
		fmt.Sprintf("blob %d %d", l.BlobOffset, l.BlobLength), fmt.Sprintf("id %x…", e.Entry.ID[0]))
	return strings.Join(parts, ", ")
}

// TestKeyMapVector decodes FORMAT.md §26's leaf and root, checks them
// against the vector's description, the leaf ID against the data ID key
// of section 2's example, and encodes them back to the same bytes.
func TestKeyMapVector(t *testing.T) {
	v := vector(t, "key-map")
	leafPlain := unhex(t, v["leaf hex"])
	entries, err := repo.DecodeKeyMapLeaf("vector", leafPlain)
	if err != nil {
		t.Fatal(err)
	}
	packs := map[repo.ID]int{}
	for _, e := range entries {
		if _, ok := packs[e.Pack.ID]; !ok {
			packs[e.Pack.ID] = len(packs) + 1
			if got, want := fmt.Sprintf("%s %d %d %d", e.Pack.ID, e.Pack.Length, e.Pack.K, e.Pack.M), v[fmt.Sprintf("leaf pack %d", len(packs))]; got != want {
				t.Errorf("leaf pack %d: %s, vector says %s", len(packs), got, want)
			}
		}
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, the vector describes 3", len(entries))
	}
	for i, e := range entries {
		if got, want := describeEntry(e, packs), v[fmt.Sprintf("entry %d", i+1)]; got != want {
			t.Errorf("entry %d: %q, vector says %q", i+1, got, want)
		}
	}
	if got := repo.EncodeKeyMapLeaf(entries); !bytes.Equal(got, leafPlain) {
		t.Errorf("leaf encodes to %x", got)
	}
	h, err := blake3.NewKeyed(unhex(t, vector(t, "key-derivation")["data ID key"]))
	if err != nil {
		t.Fatal(err)
	}
	h.Write(leafPlain)
	leafID := fmt.Sprintf("%x", h.Sum(nil))
	if leafID != v["leaf id"] {
		t.Errorf("leaf id %s, vector says %s", leafID, v["leaf id"])
	}

	rootPlain := unhex(t, v["root hex"])
	root, err := repo.DecodeKeyMapRoot("vector", rootPlain)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Leaves) != 1 {
		t.Fatalf("%d leaves", len(root.Leaves))
	}
	l := root.Leaves[0]
	desc := fmt.Sprintf("%d blobs, %d bytes, one leaf with key %s, %d entries, frame %d %d", root.Blobs, root.Size, l.Key, l.Entries, l.FrameOffset, l.FrameLength)
	if desc != v["root"] {
		t.Errorf("root: %q, vector says %q", desc, v["root"])
	}
	if l.ID.String() != leafID || int(l.BlobLength) != len(leafPlain) {
		t.Errorf("the root names leaf %s of %d bytes", l.ID, l.BlobLength)
	}
	if got := repo.EncodeKeyMapRoot(root); !bytes.Equal(got, rootPlain) {
		t.Errorf("root encodes to %x", got)
	}
	// A leaf whose keys do not ascend is corrupt.
	bad := append([]repo.KeyMapEntry{}, entries...)
	bad[0], bad[2] = bad[2], bad[0]
	if _, err := repo.DecodeKeyMapLeaf("bad", repo.EncodeKeyMapLeaf(bad)); err == nil {
		t.Error("a leaf with descending keys decoded")
	}
}
