package etcd

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/etcdtest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source"
)

// storeSnapshot stores an etcd snapshot of kvs at rev, with its proof.
func storeSnapshot(t *testing.T, r *repo.Repository, stream string, rev int64, at time.Time, kvs ...string) {
	t.Helper()
	var b bytes.Buffer
	sw := NewSnapshotWriter(&b, rev, 1)
	d := r.NewDigester()
	for i := 0; i < len(kvs); i += 2 {
		if err := sw.Add(&KeyValue{Key: []byte(kvs[i]), Value: []byte(kvs[i+1]), CreateRevision: 1, ModRevision: 1, Version: 1}); err != nil {
			t.Fatal(err)
		}
		d.Add([]byte(kvs[i]), []byte(kvs[i+1]))
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	pos := uint64(rev)
	if _, _, err := engine.Backup(t.Context(), r, &b, engine.BackupOptions{Stream: stream, Time: at, Position: &pos,
		Describe: func(s *repo.Snapshot) { s.SetProof(d.Proof()) }}); err != nil {
		t.Fatal(err)
	}
}

// storeLog stores revisions as the stream's log.
func storeLog(t *testing.T, r *repo.Repository, stream string, at time.Time, revs ...*Revision) {
	t.Helper()
	w, err := engine.OpenLog(t.Context(), r, engine.LogOptions{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	for i, rev := range revs {
		e, err := RevisionEvent(rev, at.Add(time.Duration(i+1)*time.Second).UnixNano())
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReplayProof: snapshot A at revision 2, revisions 3 and 4 in the log,
// snapshot B at revision 4. A + the log gives B's proof; a log that
// disagrees with B (its capture lost a change: revision 4 deleted the
// wrong key, as far as the log knows) fails with ErrProofMismatch, and a
// snapshot whose recorded proof is not its content's fails its own check.
func TestReplayProof(t *testing.T) {
	r := newRepo(t)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	put := func(k, v string) Change {
		return Change{Op: ChangePut, Key: []byte(k), Value: []byte(v), CreateRevision: 1, Version: 1}
	}
	del := func(k string) Change { return Change{Op: ChangeDelete, Key: []byte(k)} }
	for _, tc := range []struct {
		stream string
		rev4   Change
		ok     bool
	}{{"good", del("a"), true}, {"lost", del("b"), false}} {
		storeSnapshot(t, r, tc.stream, 2, t0, "a", "1", "b", "2")
		storeLog(t, r, tc.stream, t0, &Revision{Revision: 3, Changes: []Change{put("c", "3"), put("b", "")}}, &Revision{Revision: 4, Changes: []Change{tc.rev4, put("b", "2")}})
		storeSnapshot(t, r, tc.stream, 4, t0.Add(10*time.Second), "b", "2", "c", "3")
	}
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"good", "lost"} {
		snaps := cat.Stream(stream)
		for _, s := range snaps {
			if err := source.SnapshotProof(t.Context(), r, s); err != nil {
				t.Errorf("%s: snapshot proof: %v", stream, err)
			}
		}
		sp, err := source.ReplayProof(t.Context(), r, cat, snaps[0], snaps[1])
		if stream == "good" {
			if err != nil || sp.Proof.Records != 2 || sp.Reached != 4 || sp.Events != 2 {
				t.Errorf("good: replay proof %+v, %v", sp, err)
			}
		} else if !errors.Is(err, repo.ErrProofMismatch) {
			t.Errorf("lost: replay proof %+v, %v; want ErrProofMismatch", sp, err)
		}
	}
	// A manifest whose proof does not match its content.
	bad := cat.Stream("good")[1]
	s := *bad.Snapshot
	s.SetProof(repo.Proof{Records: 2})
	if err := source.SnapshotProof(t.Context(), r, index.SnapshotRef{ID: bad.ID, Snapshot: &s}); !errors.Is(err, repo.ErrProofMismatch) {
		t.Errorf("a wrong recorded proof: %v", err)
	}
	// Another source's raw base with a log (Redis's): not etcd's, and its
	// log is not read as revisions.
	pos := uint64(1)
	if _, _, err := engine.Backup(t.Context(), r, bytes.NewReader([]byte("REDIS0011 not etcd")), engine.BackupOptions{Stream: "other", Time: t0, Position: &pos}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpenLog(t.Context(), r, engine.LogOptions{Stream: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(&repo.Event{Seq: 2, Time: t0.Add(time.Second).UnixNano(), Op: repo.OpPut, Key: []byte("redis"), Value: []byte("SET a b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cat, err = index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Plan("other", index.Target{Position: 2, ByPos: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proveState(t.Context(), r, p); !errors.Is(err, source.ErrNotMine) {
		t.Errorf("a raw base of another source: %v, want ErrNotMine", err)
	}
	if _, err := source.ProveState(t.Context(), r, p); !errors.Is(err, source.ErrUnproven) {
		t.Errorf("no prover for a raw base of another source: %v, want ErrUnproven", err)
	}
	// A snapshot of another kind is not etcd's to prove.
	if _, err := proveState(t.Context(), r, &index.Plan{Base: index.SnapshotRef{Snapshot: &repo.Snapshot{Format: engine.FormatNDJSON}}}); !errors.Is(err, source.ErrNotMine) {
		t.Errorf("an ndjson base: %v", err)
	}
}

// TestBackupProof: a backup of a live cluster records the proof its
// content has, and a restore of it into another cluster reads back the
// same proof; after the restore the target's own digest matches.
func TestBackupProof(t *testing.T) {
	src := etcdtest.Start(t)
	cli, cfg := connect(t, src)
	for i := range 50 {
		if _, err := cli.Put(t.Context(), fmt.Sprintf("k/%03d", i), fmt.Sprintf("v%d", i*i)); err != nil {
			t.Fatal(err)
		}
	}
	r := newRepo(t)
	res, err := Backup(t.Context(), cli, cfg, r, BackupOptions{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	want, ok := res.Snapshot.Proof()
	if !ok || want.Records != 50 {
		t.Fatalf("backup recorded proof %v (%v), want 50 records", want, ok)
	}
	ref := index.SnapshotRef{ID: res.ID, Snapshot: res.Snapshot}
	if err := source.SnapshotProof(t.Context(), r, ref); err != nil {
		t.Fatal(err)
	}
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	_, st := restoreAt(t, cat, r, res.Revision, false)
	if st.Proof != want {
		t.Fatalf("restore computed %v, the backup recorded %v", st.Proof, want)
	}
}
