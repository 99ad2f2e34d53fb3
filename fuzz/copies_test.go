package fuzz

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// FuzzCopies: whatever bytes an object and its copy hold (FORMAT.md §25),
// a read through the copies layer never panics, returns bytes that verify
// whenever either copy verifies, and returns one of the two stored copies.
// Names under copies/ parse as the object they copy.
func FuzzCopies(f *testing.F) {
	id := strings.Repeat("ab", 32)
	f.Add(uint8(0), []byte(`{"version":1}`), []byte(`{"version":1,"stream":"s","time":"2026-01-01T00:00:00Z","format":"raw","size":1,"new_blobs":1,"stored_bytes":1}`), true, true)
	f.Add(uint8(1), []byte("x"), []byte("y"), false, true)
	f.Add(uint8(2), []byte(`{"version":2,"id":"`+id+`","sealed":"AAAA","sum":"`+id+`"}`), []byte{}, true, false)
	f.Fuzz(func(t *testing.T, which uint8, obj, cp []byte, hasObj, hasCopy bool) {
		names := []string{repo.LabelName(repo.ID{1}), repo.IndexName(repo.ID{2}), repo.ConfigName, repo.KeyName(repo.ID{3}), repo.SnapshotName(repo.ID{4})}
		name := names[int(which)%len(names)]
		if o, err := repo.ParseObject(repo.CopyName(name)); err != nil || o.Kind != repo.KindCopy || o.Of != repo.KindOf(name) {
			t.Fatalf("copy name of %s: %+v %v", name, o, err)
		}
		ctx := context.Background()
		s := mem.New()
		if hasObj {
			s.Put(ctx, name, obj)
		}
		if hasCopy {
			s.Put(ctx, repo.CopyName(name), cp)
		}
		got, err := repo.WithCopies(s).Get(ctx, name)
		if !hasObj && !hasCopy {
			if !errors.Is(err, repo.ErrNotFound) {
				t.Fatalf("nothing stored: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !(hasObj && bytes.Equal(got, obj)) && !(hasCopy && bytes.Equal(got, cp)) {
			t.Fatal("returned bytes that neither copy holds")
		}
		okObj := hasObj && repo.VerifyObject(name, obj) == nil
		okCopy := hasCopy && repo.VerifyObject(name, cp) == nil
		if (okObj || okCopy) && repo.VerifyObject(name, got) != nil {
			t.Fatal("returned a damaged copy although the other verifies")
		}
	})
}
