package engine

import (
	"bytes"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// BenchmarkReencrypt: the first run of a re-encryption (rotate, rewrite
// every pack, index file and manifest, prune marks) of a repository
// holding one backup of the NDJSON sample (about 30 MB), in bytes of the
// export per second, to compare with BenchmarkBackupNDJSON and
// BenchmarkRestore of the same data: re-encryption opens and seals frames
// without decompressing or chunking them.
func BenchmarkReencrypt(b *testing.B) {
	data := ndjson(100000, 1, nil)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		r, err := repo.Init(b.Context(), mem.New(), testPassword, repo.InitOptions{KDF: fastKDF})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Backup(b.Context(), r, bytes.NewReader(data), BackupOptions{Stream: "s", Format: FormatNDJSON}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := Reencrypt(b.Context(), r, ReencryptOptions{Passwords: [][]byte{testPassword}})
		if err != nil || res.Packs == 0 {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}
