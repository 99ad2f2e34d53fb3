package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/repo/shard"
)

// damageFixture is a repository with one snapshot over several packs.
func damageFixture(t *testing.T) (*mem.Store, *repo.Repository, index.SnapshotRef, []byte, []string) {
	t.Helper()
	s := mem.New()
	r := newRepo(t, s, repo.InitOptions{DataShards: 4, ParityShards: 2})
	data := ndjson(8000, 11, nil)
	snap := backup(t, r, data, BackupOptions{Stream: "s", Format: FormatNDJSON, PackSize: 256 << 10})
	var shards []string
	s.List(t.Context(), repo.DataPrefix, func(oi repo.ObjectInfo) error { shards = append(shards, oi.Name); return nil })
	if len(shards) < 12 {
		t.Fatalf("fixture has only %d shards", len(shards))
	}
	return s, r, snap, data, shards
}

func mutate(t *testing.T, s repo.Store, name string, fn func([]byte) []byte) {
	t.Helper()
	b, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), name, fn(b)); err != nil {
		t.Fatal(err)
	}
}

// mutateBoth applies fn to a metadata object and to its second copy
// (FORMAT.md §25): a fault in one copy alone heals, so tests of what a lost
// object does damage both.
func mutateBoth(t *testing.T, s repo.Store, name string, fn func([]byte) []byte) {
	t.Helper()
	mutate(t, s, name, fn)
	mutate(t, s, repo.CopyName(name), fn)
}

// deleteBoth deletes a metadata object and its second copy.
func deleteBoth(t *testing.T, s repo.Store, name string) {
	t.Helper()
	for _, n := range []string{name, repo.CopyName(name)} {
		if err := s.Delete(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
}

func flipAt(off func(n int) int) func([]byte) []byte {
	return func(b []byte) []byte { b[off(len(b))] ^= 0x40; return b }
}

// shardsOf returns the shard names of the pack that holds the first name.
func shardsOf(all []string, first string) []string {
	prefix := first[:strings.LastIndexByte(first, '.')+1]
	var out []string
	for _, n := range all {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func TestDamageRepairedFromParity(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, s repo.Store, pack []string)
	}{
		{"flip in data shard payload", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[0], flipAt(func(n int) int { return shard.HeaderSize + 100 }))
		}},
		{"flip in parity shard", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[5], flipAt(func(n int) int { return shard.HeaderSize + 7 }))
		}},
		{"flip in checksum region", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[1], flipAt(func(n int) int { return n - 3 }))
		}},
		{"flip in header", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[2], flipAt(func(n int) int { return 20 }))
		}},
		{"truncated shard", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[3], func(b []byte) []byte { return b[:len(b)/2] })
		}},
		{"two shards deleted", func(t *testing.T, s repo.Store, p []string) {
			s.Delete(context.Background(), p[0])
			s.Delete(context.Background(), p[3])
		}},
		{"data and parity shard damaged", func(t *testing.T, s repo.Store, p []string) {
			mutate(t, s, p[1], flipAt(func(n int) int { return n / 2 }))
			s.Delete(context.Background(), p[4])
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r, snap, data, shards := damageFixture(t)
			ctx := t.Context()
			pack := shardsOf(shards, shards[0])
			if len(pack) != 6 {
				t.Fatalf("pack has %d shards", len(pack))
			}
			tc.damage(t, s, pack)

			if got := restore(t, r, snap); !bytes.Equal(got, data) {
				t.Fatal("restore with damaged shards is not byte-exact")
			}
			rep, err := Check(ctx, r, CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("check --read-data found nothing")
			}
			rep, err = Check(ctx, r, CheckOptions{ReadData: true, Repair: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Repaired) == 0 || len(rep.Problems) > 0 {
				t.Fatalf("repair: repaired %q, problems %q", rep.Repaired, rep.Problems)
			}
			checkClean(t, r, true)
			if !bytes.Equal(restore(t, r, snap), data) {
				t.Fatal("restore after repair differs")
			}
		})
	}
}

func TestDamageBeyondParityFailsClearly(t *testing.T) {
	s, r, snap, _, shards := damageFixture(t)
	pack := shardsOf(shards, shards[0])
	for _, n := range pack[:3] { // m = 2
		s.Delete(t.Context(), n)
	}
	var out bytes.Buffer
	_, err := Restore(t.Context(), r, snap, &out, RestoreOptions{})
	if !errors.Is(err, shard.ErrTooFewShards) {
		t.Fatalf("restore: got %v, want ErrTooFewShards", err)
	}
	rep, err := Check(t.Context(), r, CheckOptions{ReadData: true, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "NOT recoverable") {
		t.Fatalf("check: %q", rep.Problems)
	}
}

func TestDamagedMetadata(t *testing.T) {
	cases := []struct {
		name   string
		prefix string
		damage func([]byte) []byte
		want   error
	}{
		{"snapshot flipped", repo.SnapshotsPrefix, flipAt(func(n int) int { return n / 2 }), repo.ErrCorrupt},
		{"snapshot truncated", repo.SnapshotsPrefix, func(b []byte) []byte { return b[:10] }, repo.ErrCorrupt},
		{"index flipped", repo.IndexPrefix, flipAt(func(n int) int { return n - 1 }), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r, snap, data, _ := damageFixture(t)
			var name string
			s.List(t.Context(), tc.prefix, func(oi repo.ObjectInfo) error { name = oi.Name; return nil })
			mutateBoth(t, s, name, tc.damage)
			rep, err := Check(t.Context(), r, CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("check found nothing")
			}
			if tc.prefix == repo.SnapshotsPrefix {
				_, err := r.LoadSnapshot(t.Context(), snap.ID)
				if !errors.Is(err, tc.want) {
					t.Fatalf("load snapshot: got %v", err)
				}
				return
			}
			// A damaged index file: restore refuses by name or works through a
			// fallback, and --repair re-indexes from pack trailers.
			var out bytes.Buffer
			if _, err := Restore(t.Context(), r, snap, &out, RestoreOptions{}); err == nil && !bytes.Equal(out.Bytes(), data) {
				t.Fatal("restore returned wrong data without an error")
			}
			rep, err = Check(t.Context(), r, CheckOptions{ReadData: true, Repair: true})
			if err != nil || len(rep.Problems) > 0 {
				t.Fatalf("repair: %v %q", err, rep.Problems)
			}
			checkClean(t, r, true)
			if !bytes.Equal(restore(t, r, snap), data) {
				t.Fatal("restore after re-index differs")
			}
		})
	}
}

func TestMissingSnapshotObject(t *testing.T) {
	s, r, snap, _, _ := damageFixture(t)
	deleteBoth(t, s, repo.SnapshotsPrefix+snap.ID.String())
	if _, err := r.LoadSnapshot(t.Context(), snap.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("got %v", err)
	}
}
