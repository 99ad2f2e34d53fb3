package ndjson_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
	"github.com/strata-backup/strata/source/ndjson"
)

// backupProven stores export as an ndjson snapshot the way `strata backup`
// does, its proof computed by the export checker.
func backupProven(t *testing.T, r *repo.Repository, stream, export string, allowDup bool, at time.Time, pos uint64) (index.SnapshotRef, bool) {
	t.Helper()
	oc := ndjson.NewExportChecker("_id", allowDup)
	oc.Prove(r.NewDigester())
	proven := false
	id, snap, err := engine.Backup(t.Context(), r, oc.Reader(bytes.NewReader([]byte(export))), engine.BackupOptions{
		Stream: stream, Format: engine.FormatNDJSON, Time: at, Position: &pos,
		Describe: func(s *repo.Snapshot) {
			s.KeyField = "_id"
			s.Sorted, _ = oc.Sorted()
			if p, ok := oc.Proof(); ok {
				s.SetProof(p)
				proven = true
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return index.SnapshotRef{ID: id, Snapshot: snap}, proven
}

// TestProofIndependentOfProduction: the same state gives the same proof
// from an export (in any order, with any JSON spacing) and from a replay;
// a restore of a snapshot whose recorded proof differs fails with
// ErrProofMismatch after writing the exact bytes; an export with repeated
// keys is unproven.
func TestProofIndependentOfProduction(t *testing.T) {
	r := newRepo(t)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, ok := backupProven(t, r, "s", `{"_id":"a","n":1}`+"\n"+`{"_id":"b","n":2}`+"\n", false, t0, 0)
	if !ok {
		t.Fatal("a sorted export without repeats is unproven")
	}
	events := `{"seq":1,"ts":"2026-12-01T00:00:01Z","op":"put","key":"c","doc":{"_id":"c","n":3}}` + "\n" +
		`{"seq":2,"ts":"2026-12-01T00:00:02Z","op":"delete","key":"a"}` + "\n"
	if _, err := ndjson.Capture(t.Context(), r, bytes.NewReader([]byte(events)), ndjson.CaptureOptions{Stream: "s", Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The state after position 2, exported unsorted and spaced differently.
	b, ok := backupProven(t, r, "s", `{ "_id" : "c", "n" : 3 }`+"\n\n"+`{"_id":"b",  "n":2}`+"\n", false, t0.Add(time.Minute), 2)
	if !ok {
		t.Fatal("an unsorted export without repeats is unproven")
	}
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := source.ReplayProof(t.Context(), r, cat, a, b)
	if err != nil || sp.Proof.Records != 2 || sp.Reached != 2 {
		t.Fatalf("replay proof: %+v, %v", sp, err)
	}
	for _, s := range []index.SnapshotRef{a, b} {
		if err := source.SnapshotProof(t.Context(), r, s); err != nil {
			t.Errorf("snapshot proof of %s: %v", s.ID.Short(), err)
		}
	}

	// A recorded proof that is not the content's.
	wrong := *b.Snapshot
	p, _ := b.Proof()
	p.Digest[0] ^= 1
	wrong.SetProof(p)
	var out bytes.Buffer
	n, proven, err := ndjson.RestoreSnapshot(t.Context(), r, index.SnapshotRef{ID: b.ID, Snapshot: &wrong}, &out, engine.RestoreOptions{})
	if !errors.Is(err, repo.ErrProofMismatch) || !proven || n != b.Size {
		t.Fatalf("restore of a snapshot with a wrong proof: %d bytes, proven %v, %v", n, proven, err)
	}
	if _, _, err := ndjson.RestoreSnapshot(t.Context(), r, b, io.Discard, engine.RestoreOptions{}); err != nil {
		t.Fatalf("restore of the snapshot as recorded: %v", err)
	}
	// The same check in a point-in-time restore that applies no event.
	plan := &index.Plan{Stream: "s", Base: index.SnapshotRef{ID: b.ID, Snapshot: &wrong}, From: 3, Target: index.Target{Position: 2, ByPos: true}}
	if _, err := ndjson.RestoreAt(t.Context(), r, plan, io.Discard, engine.RestoreOptions{}); !errors.Is(err, repo.ErrProofMismatch) {
		t.Fatalf("restore at the snapshot's own position with a wrong proof: %v", err)
	}

	dup, ok := backupProven(t, r, "d", `{"_id":"b","n":1}`+"\n"+`{"_id":"a","n":1}`+"\n"+`{"_id":"b","n":2}`+"\n", true, t0, 0)
	if ok {
		t.Error("an export with a repeated key has a proof")
	}
	// Without a proof a snapshot is unproven, never proven, and restores.
	if err := source.SnapshotProof(t.Context(), r, dup); !errors.Is(err, source.ErrUnproven) {
		t.Errorf("snapshot proof of a snapshot without one: %v", err)
	}
	if _, proven, err := ndjson.RestoreSnapshot(t.Context(), r, dup, io.Discard, engine.RestoreOptions{}); err != nil || proven {
		t.Errorf("restore of a snapshot without a proof: proven %v, %v", proven, err)
	}
	if _, ok := backupProven(t, r, "e", `{"_id":"a","n":1}`+"\n"+`{"_id":"b","n":2}`+"\n", true, t0, 0); !ok {
		t.Error("a sorted export under --allow-duplicate-keys, without repeats, is unproven")
	}
}
