package repo_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

var testKDF = repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// TestReencryptPack: a pack re-encrypted after a rotation is sealed under
// the new generation, keeps every frame at its offset and length, and
// yields the same blobs; the old pack stays generation 0. A flipped byte
// in a frame is refused, never resealed.
func TestReencryptPack(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	r, err := repo.Init(ctx, st, []byte("pw"), repo.InitOptions{DataShards: 2, ParityShards: 1, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{bytes.Repeat([]byte("strata "), 300), []byte("a second blob")}
	var frames []repo.Frame
	for _, b := range blobs {
		info := repo.BlobInfo{Type: repo.DataBlob, ID: r.BlobID(repo.DataBlob, b), Len: uint32(len(b))}
		fr, err := r.SealFrame([]repo.BlobInfo{info}, [][]byte{b}, zstd.SpeedDefault)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, fr)
	}
	pack, pfs, err := r.BuildPack(frames)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.WritePack(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateKeys(ctx, [][]byte{[]byte("pw")}); err != nil {
		t.Fatal(err)
	}
	if g, err := r.PackGeneration(ctx, pi); err != nil || g != 0 {
		t.Fatalf("old pack: generation %d, %v", g, err)
	}
	np, err := r.ReencryptPack(ctx, pi)
	if err != nil {
		t.Fatal(err)
	}
	if np.ID == pi.ID || np.Length != pi.Length {
		t.Fatalf("re-encrypted pack %+v from %+v", np, pi)
	}
	if g, err := r.PackGeneration(ctx, np); err != nil || g != 1 {
		t.Fatalf("new pack: generation %d, %v", g, err)
	}
	for i, pf := range pfs {
		sealed, err := r.ReadFrame(ctx, np, pf.Offset, pf.Length)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.OpenFrame(sealed, len(blobs[i]))
		if err != nil || !bytes.Equal(got, blobs[i]) {
			t.Fatalf("frame %d of the new pack: %v", i, err)
		}
	}
	// Damage a frame byte in every shard holding it: the pack cannot be
	// reconstructed, and nothing is written.
	for i := range pi.K + pi.M {
		name := repo.ShardName(pi.ID, i)
		b, _ := st.Get(ctx, name)
		b[len(b)/2] ^= 1
		st.Put(ctx, name, b)
	}
	if _, err := r.ReencryptPack(ctx, pi); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("re-encrypting a damaged pack: %v, want ErrCorrupt", err)
	}
}

// TestRetireGenerations: after retiring, the key file holds generations 0
// and the newest only; a repository opened from it reads objects sealed
// under the newest generation and not those under a retired one.
func TestRetireGenerations(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	r, err := repo.Init(ctx, st, []byte("pw"), repo.InitOptions{DataShards: 2, ParityShards: 1, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	pw := [][]byte{[]byte("pw")}
	if _, err := repo.Open(ctx, st, pw[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RetireGenerations(ctx, pw); err == nil {
		t.Fatal("retiring in a repository never rotated succeeded")
	}
	var ids []repo.ID // index files sealed under generations 1 and 2
	for range 2 {
		if _, err := r.RotateKeys(ctx, pw); err != nil {
			t.Fatal(err)
		}
		id, err := r.SaveIndex(ctx, &repo.IndexFile{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rep, err := r.RetireGenerations(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Retired) != 1 || rep.Retired[0] != 1 || len(rep.Rewrapped) != 1 || len(rep.Removed) != 1 {
		t.Fatalf("retire: %+v", rep)
	}
	// Again: nothing to do, the same key file is stored again.
	if rep, err = r.RetireGenerations(ctx, pw); err != nil || len(rep.Rewrapped) != 0 {
		t.Fatalf("second retire: %+v, %v", rep, err)
	}
	o, err := repo.Open(ctx, st, pw[0])
	if err != nil {
		t.Fatal(err)
	}
	if g := o.Generations(); len(g) != 2 || g[0] != 0 || g[1] != 2 {
		t.Fatalf("generations after retiring: %v", g)
	}
	if g, err := o.ObjectGeneration(ctx, repo.IndexName(ids[1])); err != nil || g != 2 {
		t.Fatalf("index under generation 2: %d, %v", g, err)
	}
	if _, err := o.ObjectGeneration(ctx, repo.IndexName(ids[0])); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("index under the retired generation 1: %v, want ErrCorrupt", err)
	}
}
