package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// fastKDF keeps tests quick; the format is the same with any parameters.
var fastKDF = repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

var testPassword = []byte("correct horse battery staple")

func newRepo(t *testing.T, s repo.Store, o repo.InitOptions) *repo.Repository {
	t.Helper()
	o.KDF = fastKDF
	r, err := repo.Init(t.Context(), s, testPassword, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ndjson renders n documents of about 300 bytes; version bumps change a document.
func ndjson(n int, seed uint64, version map[int]int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		v, ok := version[i]
		if ok && v < 0 {
			continue // deleted
		}
		r := rand.New(rand.NewPCG(seed^uint64(i)*0x9E3779B97F4A7C15, uint64(v)+1))
		fmt.Fprintf(&b, `{"_id":"%08d","v":%d,"name":"user %d","balance":%d,"bio":"`, i, v, r.IntN(1e6), r.IntN(1e9))
		for j := 0; j < 20+r.IntN(30); j++ {
			b.WriteString([]string{"alpha ", "bravo ", "charlie ", "delta ", "echo ", "order ", "shipped "}[r.IntN(7)])
		}
		fmt.Fprintf(&b, `","token":"%016x"}`+"\n", r.Uint64())
	}
	return b.Bytes()
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func backup(t *testing.T, r *repo.Repository, data []byte, o BackupOptions) index.SnapshotRef {
	t.Helper()
	id, snap, err := Backup(t.Context(), r, bytes.NewReader(data), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return index.SnapshotRef{ID: id, Snapshot: snap}
}

func restore(t *testing.T, r *repo.Repository, s index.SnapshotRef) []byte {
	t.Helper()
	var out bytes.Buffer
	if _, err := Restore(t.Context(), r, s, &out, RestoreOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return out.Bytes()
}

func latest(t *testing.T, r *repo.Repository, stream string) *index.SnapshotRef {
	t.Helper()
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cat.Latest(stream)
	if err != nil {
		return nil
	}
	return &s
}

func checkClean(t *testing.T, r *repo.Repository, readData bool) *CheckReport {
	t.Helper()
	rep, err := Check(t.Context(), r, CheckOptions{ReadData: readData})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("check found problems: %q", rep.Problems)
	}
	return rep
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		data   []byte
		format string
	}{
		{"empty raw", nil, FormatRaw},
		{"empty ndjson", nil, FormatNDJSON},
		{"one byte", []byte{7}, FormatRaw},
		{"random 3 MiB raw", randomBytes(3<<20+17, 1), FormatRaw},
		{"random 300 KiB as ndjson", randomBytes(300<<10, 2), FormatNDJSON},
		{"ndjson 5000 docs", ndjson(5000, 1, nil), FormatNDJSON},
		{"ndjson without final newline", bytes.TrimSuffix(ndjson(100, 3, nil), []byte("\n")), FormatNDJSON},
		{"zeros 20 MiB raw", make([]byte, 20<<20), FormatRaw},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, mem.New(), repo.InitOptions{})
			s := backup(t, r, tc.data, BackupOptions{Stream: "db/x", Format: tc.format, PackSize: 1 << 20})
			if got := restore(t, r, s); !bytes.Equal(got, tc.data) {
				t.Fatalf("restore differs: got %d bytes, want %d", len(got), len(tc.data))
			}
			if s.Size != int64(len(tc.data)) {
				t.Fatalf("size %d, want %d", s.Size, len(tc.data))
			}
			checkClean(t, r, true)
		})
	}
}

func TestErasureParams(t *testing.T) {
	data := ndjson(3000, 9, nil)
	for _, km := range [][2]int{{1, 0}, {1, 1}, {4, 2}, {10, 4}} {
		t.Run(fmt.Sprintf("%d+%d", km[0], km[1]), func(t *testing.T) {
			r := newRepo(t, mem.New(), repo.InitOptions{DataShards: km[0], ParityShards: km[1], NoParity: km[1] == 0})
			s := backup(t, r, data, BackupOptions{Stream: "s", Format: FormatNDJSON})
			if !bytes.Equal(restore(t, r, s), data) {
				t.Fatal("restore differs")
			}
			checkClean(t, r, true)
		})
	}
}

func TestIncrementalDedup(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	day0 := ndjson(20000, 5, nil)
	changes := map[int]int{}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 { // 1% updated
		changes[rng.IntN(20000)] = 1
	}
	for range 100 { // 0.5% deleted
		changes[rng.IntN(20000)] = -1
	}
	day1 := ndjson(20100, 5, changes) // and 0.5% inserted at the end

	s0 := backup(t, r, day0, BackupOptions{Stream: "shop/users", Format: FormatNDJSON, Time: time.Unix(1767225600, 0)})
	parent := latest(t, r, "shop/users")
	s1 := backup(t, r, day1, BackupOptions{Stream: "shop/users", Format: FormatNDJSON, Time: time.Unix(1767312000, 0), Parent: parent})
	if s1.Parent == nil || *s1.Parent != s0.ID {
		t.Fatalf("parent not recorded")
	}
	// 2% of the records changed, at about 8 records of 300 bytes per 2.5 KiB
	// chunk: about 16% of the data chunks are new, plus the list blobs above
	// them. Without dedup day 1 would store as much as day 0.
	if got, want := s1.StoredBytes, s0.StoredBytes*3/10; got > want {
		t.Fatalf("day 1 stored %d bytes, more than 30%% of day 0's %d: dedup is not working", got, s0.StoredBytes)
	}
	if !bytes.Equal(restore(t, r, s0), day0) || !bytes.Equal(restore(t, r, s1), day1) {
		t.Fatal("restore differs")
	}
	// A backup of identical data adds no data blobs at all.
	s2 := backup(t, r, day1, BackupOptions{Stream: "shop/users", Format: FormatNDJSON, Parent: &s1})
	if s2.NewBlobs != 0 {
		t.Fatalf("identical backup stored %d new blobs", s2.NewBlobs)
	}
	checkClean(t, r, true)
}

func TestWrongPasswordAndVersion(t *testing.T) {
	s := mem.New()
	newRepo(t, s, repo.InitOptions{})
	if _, err := repo.Open(t.Context(), s, []byte("wrong")); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	if _, err := repo.Open(t.Context(), mem.New(), testPassword); !errors.Is(err, repo.ErrNotRepository) {
		t.Fatalf("empty store: got %v", err)
	}
	// A repository of a later version has both copies of its config at
	// that version (FORMAT.md §25).
	for _, name := range []string{repo.ConfigName, repo.CopyName(repo.ConfigName)} {
		cfg, _ := s.Get(t.Context(), name)
		future := bytes.Replace(cfg, []byte(`"version":2`), []byte(`"version":3`), 1)
		if err := s.Put(t.Context(), name, future); err != nil {
			t.Fatal(err)
		}
	}
	_, err := repo.Open(t.Context(), s, testPassword)
	if !errors.Is(err, repo.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("unknown version: got %v", err)
	}
	if _, err := repo.Init(t.Context(), s, testPassword, repo.InitOptions{KDF: fastKDF}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("init over a repository: got %v", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	r := newRepo(t, s, repo.InitOptions{})
	second, err := r.AddKey(ctx, []byte("second"), fastKDF, "h", "u")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := repo.Open(ctx, s, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if r2.KeyName() != second || r2.Config().ID != r.Config().ID {
		t.Fatal("second key opened something else")
	}
	if _, err := r2.RemoveKey(ctx, second[len(repo.KeysPrefix):]); err == nil {
		t.Fatal("removed the key in use")
	}
	if _, err := r2.RemoveKey(ctx, r.KeyName()[len(repo.KeysPrefix):]); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, s, testPassword); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("removed key still opens: %v", err)
	}
	if _, err := r2.ChangePassword(ctx, []byte("third"), fastKDF, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, s, []byte("second")); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatal("old password still opens after passwd")
	}
	if _, err := repo.Open(ctx, s, []byte("third")); err != nil {
		t.Fatal(err)
	}
}

func TestBadStreamAndFormat(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	for _, o := range []BackupOptions{{Stream: ""}, {Stream: "../x"}, {Stream: "a//b"}, {Stream: "ok", Format: "xml"}} {
		if _, _, err := Backup(t.Context(), r, strings.NewReader("x"), o); err == nil {
			t.Errorf("backup with %+v succeeded", o)
		}
	}
}

type errReader struct{ n int }

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("disk read error")
	}
	n := min(len(p), e.n)
	e.n -= n
	return n, nil
}

func TestInputErrorWritesNoSnapshot(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	_, _, err := Backup(t.Context(), r, &errReader{n: 3 << 20}, BackupOptions{Stream: "s", PackSize: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "disk read error") {
		t.Fatalf("got %v", err)
	}
	if latest(t, r, "s") != nil {
		t.Fatal("a failed backup wrote a snapshot")
	}
	checkClean(t, r, true)
}

func TestCancel(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Backup(ctx, r, bytes.NewReader(randomBytes(1<<20, 3)), BackupOptions{Stream: "s"}); err == nil {
		t.Fatal("cancelled backup succeeded")
	}
}
