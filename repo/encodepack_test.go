package repo_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
)

// TestStoreFramesMatchesBuildPack: a pack stored by StoreFrames (built
// straight into its shard objects) has BuildPack's frames, trailer,
// length and PackFrames, and its shards are byte for byte shard.Encode of
// the pack they hold, for packs of several sizes.
func TestStoreFramesMatchesBuildPack(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	r, err := repo.Init(ctx, st, []byte("pw"), repo.InitOptions{DataShards: 4, ParityShards: 2, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	for round, nframes := range []int{9, 2, 1, 14, 3} {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			var frames []repo.Frame
			for i := range nframes {
				b := make([]byte, 1+rnd.IntN(70000))
				for j := range b {
					b[j] = byte(rnd.IntN(4 + i*60)) // some compress, some do not
				}
				info := repo.BlobInfo{Type: repo.DataBlob, ID: r.BlobID(repo.DataBlob, b), Len: uint32(len(b))}
				f, err := r.SealFrame([]repo.BlobInfo{info}, [][]byte{b}, zstd.SpeedFastest)
				if err != nil {
					t.Fatal(err)
				}
				frames = append(frames, f)
			}
			// The trailer's nonce is random: the frames, the trailer's
			// plaintext and the pack's length are what BuildPack fixes.
			pack, wantPFS, err := r.BuildPack(frames)
			if err != nil {
				t.Fatal(err)
			}
			pi, pfs, err := r.StoreFrames(ctx, frames)
			if err != nil {
				t.Fatal(err)
			}
			k := repo.DataShardsFor(len(pack), 4) // small packs take fewer data shards
			if pi.Length != uint64(len(pack)) || pi.K != k || pi.M != 2 {
				t.Fatalf("pack info %+v, want length %d %d+2", pi, len(pack), k)
			}
			if !reflect.DeepEqual(pfs, wantPFS) {
				t.Fatalf("pack frames %+v, want %+v", pfs, wantPFS)
			}
			stored, _, err := r.ReadPack(ctx, pi)
			if err != nil {
				t.Fatal(err)
			}
			end := int(pfs[len(pfs)-1].Offset + pfs[len(pfs)-1].Length)
			if !bytes.Equal(stored[:end], pack[:end]) {
				t.Fatal("the stored pack's frames differ from BuildPack's")
			}
			if got, err := r.ParseTrailer("stored", stored); err != nil || !reflect.DeepEqual(got, wantPFS) {
				t.Fatalf("stored trailer: %+v, %v", got, err)
			}
			wantID, want, err := shard.Encode(stored, k, 2)
			if err != nil {
				t.Fatal(err)
			}
			if pi.ID != repo.ID(wantID) {
				t.Fatalf("pack ID %s, want %x", pi.ID.Short(), wantID[:4])
			}
			for i, w := range want {
				got, err := st.Get(ctx, repo.ShardName(pi.ID, i))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("shard %d differs from the encoding of the stored pack", i)
				}
			}
		})
	}
}
