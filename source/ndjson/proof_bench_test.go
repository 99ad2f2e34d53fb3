package ndjson_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/strata-backup/strata/internal/sample"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/ndjson"
)

// BenchmarkExportChecker measures the backup's per-line check with and
// without the proof (JSON compaction and a keyed BLAKE3 per document).
func BenchmarkExportChecker(b *testing.B) {
	g, err := sample.New(sample.Options{Docs: 20000})
	if err != nil {
		b.Fatal(err)
	}
	var export bytes.Buffer
	if err := g.Export(&export, 0); err != nil {
		b.Fatal(err)
	}
	for _, prove := range []bool{false, true} {
		name := "check"
		if prove {
			name = "check+proof"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(export.Len()))
			for b.Loop() {
				c := ndjson.NewExportChecker("_id", false)
				if prove {
					c.Prove(repo.NewDigester(make([]byte, 32)))
				}
				if _, err := io.Copy(io.Discard, c.Reader(bytes.NewReader(export.Bytes()))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
