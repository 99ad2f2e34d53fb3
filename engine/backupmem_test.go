package engine

import (
	"bytes"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// TestBackupDropsIndexEntries: a Backup without a key map keeps no entry of
// the index files it wrote (its memory would grow with the export), yet
// every file is written and named, and the snapshot restores; StoreContent
// still hands its callers every entry.
func TestBackupDropsIndexEntries(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	data := ndjson(3000, 1, nil)
	o := BackupOptions{Stream: "s", Format: FormatNDJSON, IndexFlush: 64, FrameSize: 8 << 10, PackSize: 16 << 10}
	o.dropIndex = true
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	c, err := storeContent(t.Context(), r, bytes.NewReader(data), &o, index.NewIDSet(16), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Index.Entries) != 0 || len(c.Index.Packs) != 0 {
		t.Fatalf("kept %d entries of %d packs", len(c.Index.Entries), len(c.Index.Packs))
	}
	entries := 0
	for _, id := range c.Indexes {
		f, err := r.LoadIndex(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		entries += len(f.Entries)
	}
	if len(c.Indexes) < 3 || int64(entries) != c.NewBlobs {
		t.Fatalf("%d index files with %d entries for %d new blobs", len(c.Indexes), entries, c.NewBlobs)
	}

	kept, err := StoreContent(t.Context(), r, bytes.NewReader(ndjson(3000, 2, nil)), BackupOptions{Format: FormatNDJSON, IndexFlush: 64}, index.NewIDSet(16))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(kept.Index.Entries)) != kept.NewBlobs {
		t.Fatalf("StoreContent kept %d entries for %d new blobs", len(kept.Index.Entries), kept.NewBlobs)
	}

	snap := backup(t, r, data, BackupOptions{Stream: "s", Format: FormatNDJSON, IndexFlush: 64})
	if got := restore(t, r, snap); !bytes.Equal(got, data) {
		t.Fatal("restore differs")
	}
}
