package spec

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

const formatPath = "../FORMAT.md"

func blocks(t *testing.T, prefix string) []Block {
	t.Helper()
	all, err := ReadBlocks(formatPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []Block
	for _, b := range all {
		if strings.HasPrefix(b.Info, prefix) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatalf("FORMAT.md has no %q blocks", prefix)
	}
	return out
}

func vector(t *testing.T, name string) map[string]string {
	t.Helper()
	for _, b := range blocks(t, "vector ") {
		if b.Info == "vector "+name {
			return b.Fields()
		}
	}
	t.Fatalf("FORMAT.md has no vector %q", name)
	return nil
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestKeyDerivationVector(t *testing.T) {
	v := vector(t, "key-derivation")
	master := unhex(t, v["master"])
	for field, ctx := range map[string]string{
		"data ID key": "strata v1 2026-11-24 blob id", "list ID key": "strata v1 2026-11-24 list blob id",
		"data encryption key": "strata v1 2026-11-24 data encryption", "metadata encryption key": "strata v1 2026-11-24 metadata encryption",
	} {
		var out [32]byte
		blake3.DeriveKey(ctx, master, out[:])
		if got := hex.EncodeToString(out[:]); got != v[field] {
			t.Errorf("%s: FORMAT.md says %s, BLAKE3 derive_key gives %s", field, v[field], got)
		}
	}
}

// loadWorkedRepository builds a store from Appendix A.
func loadWorkedRepository(t *testing.T) (*mem.Store, map[string]string) {
	t.Helper()
	s := mem.New()
	for _, b := range blocks(t, "object ") {
		data, err := b.Hex()
		if err != nil {
			t.Fatalf("%s: %v", b.Info, err)
		}
		if err := s.Put(t.Context(), strings.TrimPrefix(b.Info, "object "), data); err != nil {
			t.Fatal(err)
		}
	}
	return s, vector(t, "worked-repository")
}

func TestWorkedRepository(t *testing.T) {
	s, v := loadWorkedRepository(t)
	ctx := t.Context()
	r, err := repo.Open(ctx, s, []byte(v["password"]))
	if err != nil {
		t.Fatalf("open the worked repository: %v", err)
	}
	if got := r.Config().ID.String(); got != v["repository id"] {
		t.Errorf("repository id %s, FORMAT.md says %s", got, v["repository id"])
	}
	content, err := hex.DecodeString(v["content hex"])
	if err != nil {
		t.Fatal(err)
	}
	if got := r.BlobID(repo.DataBlob, content).String(); got != v["blob id"] {
		t.Errorf("blob ID %s, FORMAT.md says %s", got, v["blob id"])
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cat.Latest(v["stream"])
	if err != nil {
		t.Fatal(err)
	}
	if snap.ID.String() != v["snapshot"] {
		t.Errorf("snapshot %s, FORMAT.md says %s", snap.ID, v["snapshot"])
	}
	var out bytes.Buffer
	if _, err := engine.Restore(ctx, r, snap, &out, engine.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), content) {
		t.Fatalf("restored %q, FORMAT.md says %q", out.Bytes(), content)
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %q", err, rep.Problems)
	}
	if _, err := repo.Open(ctx, s, []byte("not the password")); err == nil {
		t.Fatal("wrong password opened the worked repository")
	}
}
