package engine

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
)

// faultFixture is a repository on a fault-injecting store holding one
// snapshot (day 0), and the day-1 export to back up next.
func faultFixture(t *testing.T) (*faulty.Store, *repo.Repository, index.SnapshotRef, []byte, []byte) {
	t.Helper()
	fs := faulty.New(mem.New())
	r := newRepo(t, fs, repo.InitOptions{DataShards: 4, ParityShards: 2})
	day0 := ndjson(6000, 21, nil)
	day1 := ndjson(6000, 22, nil) // every record differs: day 1 writes many packs
	snap := backup(t, r, day0, BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10})
	return fs, r, snap, day0, day1
}

// afterFailure checks what must hold whatever went wrong during a backup:
// no new snapshot, a repository that checks clean, the old snapshot intact,
// and a next backup that succeeds once the store works again.
func afterFailure(t *testing.T, fs *faulty.Store, r *repo.Repository, old index.SnapshotRef, day0, day1 []byte) {
	t.Helper()
	fs.Reset()
	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cat.Snapshots); n != 1 {
		t.Fatalf("%d snapshots after a failed backup, want 1", n)
	}
	checkClean(t, r, true)
	if !bytes.Equal(restore(t, r, old), day0) {
		t.Fatal("the earlier snapshot no longer restores")
	}
	next := backup(t, r, day1, BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10, Parent: &old})
	if !bytes.Equal(restore(t, r, next), day1) {
		t.Fatal("the backup after the failure does not restore")
	}
	checkClean(t, r, true)
}

func TestFullDisk(t *testing.T) {
	for _, room := range []int64{0, 30 << 10, 150 << 10, 350 << 10} {
		fs, r, old, day0, day1 := faultFixture(t)
		fs.FullDisk(room)
		_, _, err := Backup(t.Context(), r, bytes.NewReader(day1), BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10, Parent: &old})
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("room %d: backup onto a full disk: got %v, want an error wrapping ENOSPC", room, err)
		}
		afterFailure(t, fs, r, old, day0, day1)
	}
}

// TestCrashAtEveryWrite stops a backup at each of its writes in turn, as a
// crash would: the write and every one after it never happen. Whichever
// write it is, the repository stays consistent.
func TestCrashAtEveryWrite(t *testing.T) {
	fs, r, old, _, day1 := faultFixture(t)
	fs.Reset()
	if _, _, err := Backup(t.Context(), r, bytes.NewReader(day1), BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10, Parent: &old}); err != nil {
		t.Fatal(err)
	}
	writes := fs.Calls("Put")
	if writes < 15 {
		t.Fatalf("the backup made only %d writes; the test needs more packs", writes)
	}
	step := 1
	if testing.Short() {
		step = 7
	}
	for n := 1; n <= writes; n += step {
		fs, r, old, day0, day1 := faultFixture(t)
		fs.FailAfter("Put", n, faulty.ErrInjected)
		if _, _, err := Backup(t.Context(), r, bytes.NewReader(day1), BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10, Parent: &old}); err == nil {
			t.Fatalf("write %d of %d failed but the backup succeeded", n, writes)
		}
		afterFailure(t, fs, r, old, day0, day1)
	}
}

// TestLostAcknowledgement: a write that landed but whose reply was lost is
// an error for that backup, and harmless to the next one.
func TestLostAcknowledgement(t *testing.T) {
	fs, r, old, day0, day1 := faultFixture(t)
	fs.PutThenFail(3)
	if _, _, err := Backup(t.Context(), r, bytes.NewReader(day1), BackupOptions{Stream: "db", Format: FormatNDJSON, PackSize: 128 << 10, Parent: &old}); err == nil {
		t.Fatal("backup succeeded although a write reported failure")
	}
	afterFailure(t, fs, r, old, day0, day1)
}

// TestReadFaultsDuringRestore: a connection cut while reading a shard range
// falls back to the whole pack and still restores byte-exact.
func TestReadFaultsDuringRestore(t *testing.T) {
	fs, r, old, day0, _ := faultFixture(t)
	fs.CutAfter("GetRange", 1)
	if !bytes.Equal(restore(t, r, old), day0) {
		t.Fatal("restore differs")
	}
	fs.Reset()
	fs.FailAfter("Get", 1, faulty.ErrInjected)
	var out bytes.Buffer
	if _, err := Restore(t.Context(), r, old, &out, RestoreOptions{}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("restore with a failing store: got %v, want the store's error", err)
	}
}
