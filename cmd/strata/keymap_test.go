package main

import (
	"context"
	"testing"

	"github.com/strata-backup/strata/index"
)

// backup --key-map writes a key map for a sorted export (FORMAT.md §26);
// without the flag, or for a raw dump, there is none, and get answers the
// same either way.
func TestBackupKeyMapOptIn(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	export := genNDJSON(3000, 7) // sorted by _id
	c.ok(export, "backup", "--stream", "plain", "--format", "ndjson", "-")
	c.ok(export, "backup", "--stream", "mapped", "--format", "ndjson", "--key-map", "-")
	if code, _, errs := c.run(export, "backup", "--stream", "raw", "--format", "raw", "--key-map", "-"); code != exitUsage {
		t.Fatalf("--key-map with --format raw: exit %d\n%s", code, errs)
	}
	if code, _, errs := c.run(export, "log", "--stream", "ev", "--source", "ndjson:-?key-map=true"); code != exitUsage {
		t.Fatalf("log with key-map=: exit %d\n%s", code, errs)
	}
	ctx := context.Background()
	r, _ := c.repository()
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string]bool{"plain": false, "mapped": true} {
		s, err := cat.Latest(stream)
		if err != nil {
			t.Fatal(err)
		}
		if (s.KeyMap != nil) != want {
			t.Errorf("stream %s: key map %v, want %v", stream, s.KeyMap != nil, want)
		}
		if code, out, _ := c.run(nil, "get", "--stream", stream, "--key", "00000bb8"); code != exitFailure || out != "" {
			t.Errorf("stream %s: get of an absent key: exit %d, printed %q", stream, code, out)
		}
		want := `{"_id":"000005dc"`
		if got := c.ok(nil, "get", "--stream", stream, "--key", "000005dc"); len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("stream %s: get printed %q", stream, got)
		}
	}
}
