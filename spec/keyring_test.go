package spec

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
)

// TestKeyringVector checks FORMAT.md §4.1: the keyring layout and the keys
// a later generation derives.
func TestKeyringVector(t *testing.T) {
	v := vector(t, "keyring")
	var ring repo.Keyring
	for i, field := range []string{"generation 0 key", "generation 1 key"} {
		g := repo.Generation{Gen: uint32(i)}
		copy(g.Key[:], unhex(t, v[field]))
		ring = append(ring, g)
	}
	want := unhex(t, v["keyring"])
	if got := ring.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("keyring encodes as %x, FORMAT.md says %x", got, want)
	}
	back, err := repo.DecodeKeyring("vector", want)
	if err != nil || len(back) != 2 || back[1] != ring[1] {
		t.Fatalf("decode the vector's keyring: %v, %v", back, err)
	}
	for field, ctx := range map[string]string{
		"generation 1 data encryption key":     "strata v1 2026-11-24 data encryption",
		"generation 1 metadata encryption key": "strata v1 2026-11-24 metadata encryption",
	} {
		var out [32]byte
		blake3.DeriveKey(ctx, ring[1].Key[:], out[:])
		if got := hex.EncodeToString(out[:]); got != v[field] {
			t.Errorf("%s: FORMAT.md says %s, BLAKE3 derive_key gives %s", field, v[field], got)
		}
	}
	// Out of order, not starting at 0, or too long: refused.
	for name, b := range map[string][]byte{
		"descending": append(append([]byte{}, want[36:]...), want[:36]...),
		"no root":    want[36:],
		"ragged":     want[:40],
		"too long":   bytes.Repeat(want[:36], repo.MaxKeyGenerations+1),
	} {
		if _, err := repo.DecodeKeyring(name, b); err == nil {
			t.Errorf("%s keyring accepted", name)
		}
	}
}
