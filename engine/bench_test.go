package engine

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/sample"
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

// BenchmarkBackupDay1Level: day 1 of the sample export backed up against
// day 0, its data frames at the fastest zstd level against the default
// choice (zstd's default level once most of the export deduplicates).
// Reports the sealed bytes the backup stored.
func BenchmarkBackupDay1Level(b *testing.B) {
	g, err := sample.New(sample.Options{Docs: 30000})
	if err != nil {
		b.Fatal(err)
	}
	var day0, day1 bytes.Buffer
	if err := g.Export(&day0, 0); err != nil {
		b.Fatal(err)
	}
	if err := g.Export(&day1, 1); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		level zstd.EncoderLevel
	}{{"fastest", zstd.SpeedFastest}, {"default", zstd.SpeedDefault}, {"better", zstd.SpeedBetterCompression}, {"adaptive", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := repo.Init(b.Context(), mem.New(), testPassword, repo.InitOptions{KDF: fastKDF})
			if err != nil {
				b.Fatal(err)
			}
			id, snap, err := Backup(b.Context(), r, bytes.NewReader(day0.Bytes()), BackupOptions{Stream: "s", Format: FormatNDJSON})
			if err != nil {
				b.Fatal(err)
			}
			parent := snapshotRef(id, snap)
			b.SetBytes(int64(day1.Len()))
			var stored int64
			for b.Loop() {
				o := BackupOptions{Stream: "s", Format: FormatNDJSON, Parent: &parent, Level: tc.level}
				_, s1, err := Backup(b.Context(), r, bytes.NewReader(day1.Bytes()), o)
				if err != nil {
					b.Fatal(err)
				}
				stored = s1.StoredBytes
			}
			b.ReportMetric(float64(stored), "stored-bytes")
		})
	}
}
