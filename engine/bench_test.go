package engine

import (
	"bytes"
	"io"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// The pipelines in memory, without disk or network: what the engine itself
// costs per byte. bench/RESULTS.md has the end-to-end numbers.

func BenchmarkBackupNDJSON(b *testing.B) {
	data := ndjson(100000, 1, nil) // about 30 MB
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := repo.Init(b.Context(), mem.New(), testPassword, repo.InitOptions{KDF: fastKDF})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Backup(b.Context(), r, bytes.NewReader(data), BackupOptions{Stream: "s", Format: FormatNDJSON}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	data := ndjson(100000, 1, nil)
	r, err := repo.Init(b.Context(), mem.New(), testPassword, repo.InitOptions{KDF: fastKDF})
	if err != nil {
		b.Fatal(err)
	}
	id, snap, err := Backup(b.Context(), r, bytes.NewReader(data), BackupOptions{Stream: "s", Format: FormatNDJSON})
	if err != nil {
		b.Fatal(err)
	}
	ref := snapshotRef(id, snap)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Restore(b.Context(), r, ref, io.Discard, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func snapshotRef(id repo.ID, s *repo.Snapshot) index.SnapshotRef {
	return index.SnapshotRef{ID: id, Snapshot: s}
}
