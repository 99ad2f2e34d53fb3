package fuzz

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
)

// Every decoder of stored bytes has a target here. The contract each one
// checks: arbitrary input never panics and never makes the decoder allocate
// without bound; what it accepts satisfies the invariants FORMAT.md states.

func FuzzKeyFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"created":"2026-11-24T12:00:00Z","kdf":"argon2id","kdf_params":{"time":1,"memory_kib":64,"threads":1},"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","wrapped":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"kdf":"argon2id","kdf_params":{"time":1,"memory_kib":4294967295,"threads":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := repo.DecodeKeyFile("keys/fuzz", b)
		if err != nil {
			return
		}
		p := kf.Params
		n := len(kf.Wrapped) - 40 // nonce and tag
		wrapped := kf.Version == 1 && n == 32 || kf.Version == 2 && n%36 == 0 && n >= 72 && n <= 36*repo.MaxKeyGenerations
		if p.Time < 1 || p.Time > 64 || p.Threads < 1 || p.MemoryKiB > 4<<20 || !wrapped {
			t.Fatalf("accepted out-of-range key file: %+v", kf)
		}
	})
}

// FuzzKeyring: a keyring that decodes ascends from generation 0, is
// bounded, and encodes back to the same bytes (FORMAT.md §4.1).
func FuzzKeyring(f *testing.F) {
	f.Add(append(make([]byte, 36), append([]byte{1, 0, 0, 0}, make([]byte, 32)...)...))
	f.Add(make([]byte, 36))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := repo.DecodeKeyring("fuzz", b)
		if err != nil {
			return
		}
		if len(k) < 1 || len(k) > repo.MaxKeyGenerations || k[0].Gen != 0 {
			t.Fatalf("accepted keyring of %d generations starting at %d", len(k), k[0].Gen)
		}
		for i := 1; i < len(k); i++ {
			if k[i].Gen <= k[i-1].Gen {
				t.Fatalf("accepted generations out of order: %d after %d", k[i].Gen, k[i-1].Gen)
			}
		}
		if !bytes.Equal(k.Encode(), b) {
			t.Fatal("keyring does not encode back to its bytes")
		}
	})
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"` + string(bytes.Repeat([]byte("ab"), 32)) + `","sealed":"AAAA"}`))
	f.Add([]byte(`{"version":7,"id":"00","sealed":""}`))
	f.Add([]byte(`{"version":2,"id":"` + string(bytes.Repeat([]byte("ab"), 32)) + `","sealed":"AAAA","sum":"` + string(bytes.Repeat([]byte("cd"), 32)) + `"}`))
	f.Add([]byte(`{"version":1,"id":"` + string(bytes.Repeat([]byte("00"), 32)) + `","cipher":"xchacha20-poly1305","compression":"zstd","data_shards":8,"parity_shards":2,"chunker_polynomial":"3DA3358B4DC173","raw_min_size":524288,"raw_max_size":8388608,"raw_average_bits":20,"record_seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","record_min_size":1024,"record_avg_size":2560,"record_max_size":65536,"tree_fanout_bits":2,"tree_max_entries":64}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, _, err := repo.PeekConfig(b); err == nil && (v < repo.MinFormatVersion || v > repo.FormatVersion) {
			t.Fatalf("accepted config version %d", v)
		}
		// A version-2 config carries the checksum of its clear parts:
		// whatever peek accepts of version 2 verifies as the object config.
		if v, _, err := repo.PeekConfig(b); err == nil && v >= 2 && repo.VerifyObject(repo.ConfigName, b) != nil {
			t.Fatal("peek accepted a config that does not verify")
		}
		c, err := repo.DecodeConfig(b)
		if err != nil {
			return
		}
		if c.Version < repo.MinFormatVersion || c.Version > repo.FormatVersion || c.DataShards < 1 || c.DataShards+c.ParityShards > 255 || len(c.RecordSeed) != 32 {
			t.Fatalf("accepted invalid config: %+v", c)
		}
	})
}

// trailerSeed is a valid trailer plaintext: one frame of 40 sealed bytes
// holding two data blobs.
func trailerSeed() []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, 40)
	b = binary.AppendUvarint(b, 2)
	for i := range 2 {
		b = append(b, 0)
		b = append(b, bytes.Repeat([]byte{byte(i + 1)}, 32)...)
		b = binary.AppendUvarint(b, 10)
	}
	return b
}

func FuzzPackTrailer(f *testing.F) {
	f.Add(trailerSeed(), int64(40))
	f.Add([]byte{1, 0}, int64(0))
	f.Add([]byte{2, 0}, int64(0))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, int64(1<<30))
	f.Fuzz(func(t *testing.T, b []byte, framesEnd int64) {
		frames, err := repo.DecodePackTrailer("fuzz", b, framesEnd)
		if err != nil {
			return
		}
		var end int64
		for _, fr := range frames {
			if int64(fr.Offset) != end || fr.Length == 0 || len(fr.Blobs) == 0 || len(fr.Blobs) > repo.MaxBlobsInFrame {
				t.Fatalf("accepted inconsistent frame %+v at %d", fr, end)
			}
			end += int64(fr.Length)
		}
		if end != framesEnd {
			t.Fatalf("frames end at %d, trailer starts at %d", end, framesEnd)
		}
	})
}

func indexSeed(t testing.TB) []byte {
	f := &repo.IndexFile{Packs: []repo.PackInfo{{ID: repo.ID{9}, Length: 1000, K: 4, M: 2}}}
	for i := range 3 {
		f.Entries = append(f.Entries, repo.IndexEntry{ID: repo.ID{byte(i + 1)}, Type: repo.BlobType(i % 2),
			Location: repo.Location{Pack: repo.ID{9}, FrameOffset: 100, FrameLength: 200, BlobOffset: uint32(i * 10), BlobLength: 10}})
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzIndexFile(f *testing.F) {
	f.Add(indexSeed(f))
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := repo.DecodeIndexFile("fuzz", b)
		if err != nil {
			return
		}
		lengths := map[repo.ID]uint64{}
		for _, p := range ix.Packs {
			lengths[p.ID] = p.Length
		}
		for i, e := range ix.Entries {
			if i > 0 && ix.Entries[i-1].ID.Compare(e.ID) >= 0 {
				t.Fatal("accepted unsorted entries")
			}
			if uint64(e.FrameOffset)+uint64(e.FrameLength) > lengths[e.Pack] {
				t.Fatal("accepted a frame past its pack")
			}
		}
		// What decodes re-encodes and decodes to the same entries.
		again, err := ix.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		ix2, err := repo.DecodeIndexFile("fuzz", again)
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if len(ix2.Entries) != len(ix.Entries) {
			t.Fatalf("%d entries after re-encoding, %d before", len(ix2.Entries), len(ix.Entries))
		}
		for i := range ix.Entries {
			if ix.Entries[i] != ix2.Entries[i] {
				t.Fatalf("entry %d changed by re-encoding", i)
			}
		}
	})
}

func FuzzSnapshot(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"shop/users","time":"2026-01-01T00:00:00Z","created":"2026-01-01T00:00:01Z","format":"ndjson","size":34,"blobs":1,"tree":{"height":0,"root":["` + string(bytes.Repeat([]byte("ab"), 32)) + `"]},"indexes":[]}`))
	f.Add([]byte(`{"version":1,"stream":"../x","format":"raw"}`))
	f.Add([]byte(`{"version":1,"stream":"a","format":"raw","tree":{"height":99}}`))
	f.Add([]byte(`{"version":1,"stream":"a","format":"ndjson","records":2,"digest":"` + string(bytes.Repeat([]byte("0f"), 32)) + `"}`))
	f.Add([]byte(`{"version":1,"stream":"a","format":"ndjson","records":2,"digest":"0F"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := repo.DecodeSnapshot("fuzz", b)
		if err != nil {
			return
		}
		if repo.ValidStream(s.Stream) != nil || s.Tree.Height < 0 || s.Tree.Height > repo.MaxTreeHeight || s.Size < 0 {
			t.Fatalf("accepted invalid snapshot %+v", s)
		}
		// A proof is whole or absent: never half of one, never one that
		// reads as another.
		if p, ok := s.Proof(); ok != (s.Records != nil) || ok && (p.Records != *s.Records || hex.EncodeToString(p.Digest[:]) != s.Digest) {
			t.Fatalf("accepted a snapshot whose proof does not read back: %+v", s)
		}
	})
}

// FuzzCheckpoint: a checkpoint that decodes names a valid stream, a bounded
// number of index files, and names, parses back to its stream.
func FuzzCheckpoint(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"db/users","created":"2026-12-05T10:00:00Z","indexes":[]}`))
	f.Add([]byte(`{"version":1,"stream":"a","indexes":["` + strings.Repeat("ab", 32) + `"]}`))
	f.Add([]byte(`{"version":2,"stream":"a"}`))
	f.Add([]byte(`{"version":1,"stream":"a/../b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := repo.DecodeCheckpoint("fuzz", b)
		if err != nil {
			return
		}
		if repo.ValidStream(c.Stream) != nil || len(c.Indexes) > repo.MaxCheckpointIndexes {
			t.Fatalf("accepted invalid checkpoint %+v", c)
		}
		stream, _, err := repo.ParseCheckpointName(repo.CheckpointName(c.Stream, repo.ID{}))
		if err != nil || stream != c.Stream {
			t.Fatalf("checkpoint name of %q parses as %q, %v", c.Stream, stream, err)
		}
	})
}

func FuzzListBlob(f *testing.F) {
	f.Add(bytes.Repeat([]byte{7}, 64))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := repo.DecodeList(b)
		if err == nil && len(ids)*repo.IDSize != len(b) {
			t.Fatalf("%d IDs from %d bytes", len(ids), len(b))
		}
	})
}

func FuzzShard(f *testing.F) {
	_, objs, err := shard.Encode([]byte("a pack of some bytes, long enough to split"), 3, 2)
	if err != nil {
		f.Fatal(err)
	}
	for _, o := range objs {
		f.Add(o)
	}
	f.Add([]byte("STRATASH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := shard.Verify(b)
		if err != nil {
			return
		}
		if int64(len(b)) != h.Size() || h.Index >= h.K+h.M {
			t.Fatalf("accepted inconsistent shard %+v of %d bytes", h, len(b))
		}
		// A lone verified shard decodes only if it alone suffices (k = 1).
		objs := make([][]byte, h.K+h.M)
		objs[h.Index] = b
		pack, _, err := shard.Decode(h.PackID, objs)
		if err == nil && uint64(len(pack)) != h.PackLen {
			t.Fatalf("decoded %d bytes, header says %d", len(pack), h.PackLen)
		}
	})
}

func FuzzFramePlaintext(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	f.Add(append([]byte{1}, enc.EncodeAll(bytes.Repeat([]byte(`{"_id":1}`+"\n"), 100), nil)...), 1000)
	f.Add([]byte{0, 'a', 'b'}, 2)
	f.Add([]byte{1, 0x28, 0xb5, 0x2f, 0xfd}, -1)
	f.Add([]byte{9}, -1)
	f.Fuzz(func(t *testing.T, b []byte, raw int) {
		out, err := repo.DecodeFramePlaintext(b, raw)
		if err != nil {
			return
		}
		if raw >= 0 && len(out) != raw || len(out) > repo.MaxFrameRaw {
			t.Fatalf("decoded %d bytes for raw %d", len(out), raw)
		}
	})
}

// FuzzSealedRoundTrip seals blobs into a frame and a pack, erasure-codes
// it, damages what the fuzzer says, and checks that what comes back is
// either exactly the input or an error, never other bytes.
func FuzzSealedRoundTrip(f *testing.F) {
	r := fuzzRepo(f)
	f.Add([]byte(`{"_id":"a"}`+"\n"+`{"_id":"b"}`+"\n"), uint16(3), byte(0), uint16(0))
	f.Add(bytes.Repeat([]byte("x"), 5000), uint16(4000), byte(2), uint16(77))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, victim byte, flipAt uint16) {
		if len(data) == 0 {
			return
		}
		c := min(int(cut), len(data))
		var blobs [][]byte
		for _, b := range [][]byte{data[:c], data[c:]} {
			if len(b) > 0 {
				blobs = append(blobs, b)
			}
		}
		infos := make([]repo.BlobInfo, len(blobs))
		for i, b := range blobs {
			infos[i] = repo.BlobInfo{Type: repo.DataBlob, ID: r.BlobID(repo.DataBlob, b), Len: uint32(len(b))}
		}
		fr, err := r.SealFrame(infos, blobs, zstd.SpeedFastest)
		if err != nil {
			t.Fatal(err)
		}
		pack, _, err := r.BuildPack([]repo.Frame{fr})
		if err != nil {
			t.Fatal(err)
		}
		id, objs, err := shard.Encode(pack, 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Damage one shard at one byte; parity must absorb it.
		v := int(victim) % len(objs)
		objs[v][int(flipAt)%len(objs[v])] ^= 0x5a
		got, _, err := shard.Decode(id, objs)
		if err != nil {
			t.Fatalf("one damaged shard of 3+2 was not recovered: %v", err)
		}
		frames, err := r.ParseTrailer("fuzz", got)
		if err != nil || len(frames) != 1 {
			t.Fatalf("trailer: %v", err)
		}
		plain, err := r.OpenFrame(got[frames[0].Offset:frames[0].Offset+frames[0].Length], len(data))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain, data) {
			t.Fatal("round trip changed the bytes")
		}
		// A flipped byte in the sealed frame itself is always refused.
		bad := bytes.Clone(got[:frames[0].Length])
		bad[int(flipAt)%len(bad)] ^= 1
		if _, err := r.OpenFrame(bad, len(data)); err == nil {
			t.Fatal("a damaged frame opened")
		}
	})
}

func fuzzRepo(f *testing.F) *repo.Repository {
	r, err := repo.Init(context.Background(), mem.New(), []byte("fuzz"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		f.Fatal(err)
	}
	return r
}
