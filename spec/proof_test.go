package spec

import (
	"encoding/hex"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
)

// TestLogicalDigestVector checks the logical digest key of FORMAT.md §2 and
// the worked proof of §11.1: the first record's hash alone, the count and
// the digest of both, in either order.
func TestLogicalDigestVector(t *testing.T) {
	master := unhex(t, vector(t, "key-derivation")["master"])
	var key [32]byte
	blake3.DeriveKey("strata v1 2026-12-05 logical digest", master, key[:])
	if got, want := hex.EncodeToString(key[:]), vector(t, "key-derivation")["logical digest key"]; got != want {
		t.Errorf("logical digest key: FORMAT.md says %s, BLAKE3 derive_key gives %s", want, got)
	}
	v := vector(t, "logical-digest")
	one := repo.NewDigester(master)
	one.Add([]byte(v["record 1 key"]), []byte(v["record 1 value"]))
	if p := one.Proof(); hex.EncodeToString(p.Digest[:]) != v["record 1 hash"] || p.Records != 1 {
		t.Errorf("record 1: %x, FORMAT.md says %s", p.Digest, v["record 1 hash"])
	}
	for _, order := range [][]string{{"1", "2"}, {"2", "1"}} {
		d := repo.NewDigester(master)
		for _, i := range order {
			d.Add([]byte(v["record "+i+" key"]), []byte(v["record "+i+" value"]))
		}
		p := d.Proof()
		// The same sum from two workers merged.
		w1, w2 := d.Fork(), d.Fork()
		w1.Add([]byte(v["record 1 key"]), []byte(v["record 1 value"]))
		w2.Add([]byte(v["record 2 key"]), []byte(v["record 2 value"]))
		m := repo.NewDigester(master)
		m.Merge(w2)
		m.Merge(w1)
		if m.Proof() != p {
			t.Errorf("forked and merged: %v, in one digester: %v", m.Proof(), p)
		}
		if got := hex.EncodeToString(p.Digest[:]); got != v["digest"] || v["records"] != "2" || p.Records != 2 {
			t.Errorf("records in order %v: %d, %s; FORMAT.md says %s, %s", order, p.Records, got, v["records"], v["digest"])
		}
	}
}
