package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// version1Repository loads the repository the version-1 build wrote as
// Appendix A (testdata/version1.md).
func version1Repository(t *testing.T) (*mem.Store, map[string]string) {
	t.Helper()
	all, err := ReadBlocks("testdata/version1.md")
	if err != nil {
		t.Fatal(err)
	}
	s := mem.New()
	var v map[string]string
	for _, b := range all {
		switch {
		case b.Info == "vector worked-repository":
			v = b.Fields()
		case strings.HasPrefix(b.Info, "object "):
			data, err := b.Hex()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(t.Context(), strings.TrimPrefix(b.Info, "object "), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v == nil {
		t.Fatal("testdata/version1.md has no worked-repository vector")
	}
	return s, v
}

func restoreLatest(t *testing.T, r *repo.Repository, stream string) []byte {
	t.Helper()
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cat.Latest(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := engine.Restore(t.Context(), r, snap, &out, engine.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func storeNames(t *testing.T, s repo.Store, prefix string) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), prefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestVersion1RepositoryOpensAndUpgrades: a repository the version-1 build
// wrote opens and restores as it is, gets no copies from reads, checks or
// repairs (a note says what upgrade adds), and after Upgrade is version 2,
// with a copy of every metadata object, so that a single fault heals.
func TestVersion1RepositoryOpensAndUpgrades(t *testing.T) {
	s, v := version1Repository(t)
	ctx := t.Context()
	pw := []byte(v["password"])
	content := unhex(t, v["content hex"])
	r, err := repo.Open(ctx, s, pw)
	if err != nil {
		t.Fatalf("open a version-1 repository: %v", err)
	}
	if got := r.Config().Version; got != 1 {
		t.Fatalf("version %d, want 1", got)
	}
	if !bytes.Equal(restoreLatest(t, r, v["stream"]), content) {
		t.Fatal("the version-1 repository restores wrong bytes")
	}
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true, Repair: true})
	if err != nil || len(rep.Problems) > 0 || len(rep.Repaired) > 0 {
		t.Fatalf("check --repair of a version-1 repository: %v, problems %q, repaired %q", err, rep.Problems, rep.Repaired)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "format version 1") && strings.Contains(n, "strata upgrade")
	}) {
		t.Fatalf("check does not say the repository is version 1 and how to upgrade: %q", rep.Notes)
	}
	if c := storeNames(t, s, repo.CopiesPrefix); len(c) > 0 {
		t.Fatalf("a version-1 repository got copies without an upgrade: %q", c)
	}

	up, err := r.Upgrade(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if up.From != 1 || up.To != repo.FormatVersion || len(up.Skipped) > 0 {
		t.Fatalf("upgrade: %+v", up)
	}
	// Every metadata object now has its copy, byte for byte.
	for _, name := range storeNames(t, s, "") {
		if !repo.HasCopy(name) {
			continue
		}
		a, _ := s.Get(ctx, name)
		b, err := s.Get(ctx, repo.CopyName(name))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: copy %v", name, err)
		}
	}
	var env struct {
		Version int    `json:"version"`
		Sum     string `json:"sum"`
	}
	cb, _ := s.Get(ctx, repo.ConfigName)
	if err := json.Unmarshal(cb, &env); err != nil || env.Version != repo.FormatVersion || len(env.Sum) != 64 {
		t.Fatalf("upgraded config: %v %+v", err, env)
	}
	// Upgrading again changes nothing.
	if up, err := r.Upgrade(ctx); err != nil || up.Copied != 0 {
		t.Fatalf("second upgrade: %+v %v", up, err)
	}

	// Reopened, it is version 2 and a single fault heals.
	snapName := storeNames(t, s, repo.SnapshotsPrefix)[0]
	if err := s.Delete(ctx, snapName); err != nil {
		t.Fatal(err)
	}
	if r, err = repo.Open(ctx, s, pw); err != nil {
		t.Fatal(err)
	}
	if got := r.Config().Version; got != repo.FormatVersion {
		t.Fatalf("version %d after upgrade", got)
	}
	rep, err = engine.Check(ctx, r, engine.CheckOptions{ReadData: true, Repair: true})
	if err != nil || len(rep.Problems) > 0 || len(rep.Repaired) != 1 || len(rep.Notes) > 0 {
		t.Fatalf("repair after upgrade: %v, problems %q, repaired %q, notes %q", err, rep.Problems, rep.Repaired, rep.Notes)
	}
	if _, err := s.Get(ctx, snapName); err != nil {
		t.Fatalf("the deleted manifest was not put back: %v", err)
	}
	if !bytes.Equal(restoreLatest(t, r, v["stream"]), content) {
		t.Fatal("the upgraded repository restores wrong bytes")
	}
}

// TestUnknownVersionRefused: a config of a version this build does not
// know is refused before any password is tried, naming both versions.
func TestUnknownVersionRefused(t *testing.T) {
	s, v := loadWorkedRepository(t)
	for _, name := range []string{repo.ConfigName, repo.CopyName(repo.ConfigName)} {
		b, err := s.Get(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["version"] = repo.FormatVersion + 1
		b, _ = json.Marshal(m)
		if err := s.Put(t.Context(), name, b); err != nil {
			t.Fatal(err)
		}
	}
	_, err := repo.Open(t.Context(), s, []byte(v["password"]))
	if !errors.Is(err, repo.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "format version 3") || !strings.Contains(err.Error(), "versions 1 to 2") {
		t.Fatalf("open a version-3 repository: %v", err)
	}
}

// TestConfigCopyVerifiedWithoutKey: either copy of a version-2 config is
// checked against its clear checksum, so a flipped byte in the sealed part
// is found without the key, and the intact copy is the one read.
func TestConfigCopyVerifiedWithoutKey(t *testing.T) {
	s, v := loadWorkedRepository(t)
	b, _ := s.Get(t.Context(), repo.ConfigName)
	i := bytes.Index(b, []byte(`"sealed":"`)) + 20
	bad := bytes.Clone(b)
	bad[i] ^= 0x01 // another base64 letter: still valid JSON and base64
	if err := repo.VerifyObject(repo.ConfigName, bad); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("verify a config with a flipped sealed byte: %v", err)
	}
	if err := s.Put(t.Context(), repo.ConfigName, bad); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), s, []byte(v["password"]))
	if err != nil {
		t.Fatalf("open with a damaged config and an intact copy: %v", err)
	}
	if !bytes.Equal(restoreLatest(t, r, v["stream"]), unhex(t, v["content hex"])) {
		t.Fatal("restore differs")
	}
}

// TestConfigVersionDigitFlipped: one byte turns the version-2 config's
// version into 1 (which has no sum): the config still fails verification,
// and its copy is read.
func TestConfigVersionDigitFlipped(t *testing.T) {
	s, v := loadWorkedRepository(t)
	b, _ := s.Get(t.Context(), repo.ConfigName)
	bad := bytes.Replace(b, []byte(`"version":2`), []byte(`"version":1`), 1)
	if bytes.Equal(bad, b) {
		t.Fatal("the worked config is not version 2")
	}
	if err := repo.VerifyObject(repo.ConfigName, bad); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("verify: %v", err)
	}
	if err := s.Put(t.Context(), repo.ConfigName, bad); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), s, []byte(v["password"]))
	if err != nil || r.Config().Version != 2 {
		t.Fatalf("open with the config's version digit flipped: %v", err)
	}
}
