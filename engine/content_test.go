package engine

import (
	"bytes"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// StoreContents stores many contents with shared packs, and each reads back
// exactly, whatever its size and format, including empty contents and
// contents that repeat one another's blobs.
func TestStoreContentsShareWrites(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	r := newRepo(t, st, repo.InitOptions{DataShards: 2, ParityShards: 1})
	doc := ndjson(50, 1, nil)
	inputs := [][]byte{
		[]byte("small object"),
		{},
		randomBytes(3<<20, 2), // more than one chunker batch
		doc,
		doc, // the same blobs again, in the same run
		randomBytes(4096, 3),
	}
	formats := []string{FormatRaw, FormatRaw, FormatRaw, FormatNDJSON, FormatNDJSON, ""}
	in := make([]ContentInput, len(inputs))
	for i, b := range inputs {
		in[i] = ContentInput{Src: bytes.NewReader(b), Format: formats[i]}
	}
	known := index.NewIDSet(16)
	cs, err := StoreContents(ctx, r, in, BackupOptions{}, known)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(inputs) {
		t.Fatalf("%d contents for %d inputs", len(cs), len(inputs))
	}
	ix := index.NewBlobIndex()
	ix.Add(&cs[0].Index, nil)
	ix.Seal()
	for i, c := range cs {
		if c.Size != int64(len(inputs[i])) {
			t.Errorf("input %d: size %d, want %d", i, c.Size, len(inputs[i]))
		}
		var out bytes.Buffer
		if _, err := ReadContent(ctx, r, ix, c.Tree, 0, -1, &out); err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if !bytes.Equal(out.Bytes(), inputs[i]) {
			t.Errorf("input %d: read %d bytes that differ from the %d stored", i, out.Len(), len(inputs[i]))
		}
	}
	if cs[4].NewBlobs != 0 {
		t.Errorf("a repeated content stored %d new blobs", cs[4].NewBlobs)
	}
	// One run: every content's blobs went into the same few packs.
	if n := len(cs[0].Index.Packs); n > 3 {
		t.Errorf("%d packs for one run of %d small and one 3 MiB content", n, len(inputs))
	}
}

func TestStoreContentsRefusesUnknownFormat(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{DataShards: 2, ParityShards: 1})
	_, err := StoreContents(t.Context(), r, []ContentInput{{Src: bytes.NewReader(nil), Format: "csv"}}, BackupOptions{}, index.NewIDSet(1))
	if err == nil {
		t.Fatal("an unknown format was accepted")
	}
}
