package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/local"
	"github.com/strata-backup/strata/repo/mem"
)

var otherPassword = []byte("a second operator's password")

// rotateFixture is a repository with two passwords on a fault-injecting
// store, holding one snapshot written before any rotation.
func rotateFixture(t *testing.T) (*faulty.Store, *repo.Repository, index.SnapshotRef, []byte) {
	t.Helper()
	return rotateFixtureOn(t, mem.New())
}

// rotateFixtureOn is rotateFixture on the store inner.
func rotateFixtureOn(t *testing.T, inner repo.Store) (*faulty.Store, *repo.Repository, index.SnapshotRef, []byte) {
	t.Helper()
	fs := faulty.New(inner)
	r := newRepo(t, fs, repo.InitOptions{DataShards: 4, ParityShards: 2})
	if _, err := r.AddKey(t.Context(), otherPassword, fastKDF, "h", "u"); err != nil {
		t.Fatal(err)
	}
	day0 := ndjson(800, 31, nil)
	return fs, r, backup(t, r, day0, BackupOptions{Stream: "db", Format: FormatNDJSON}), day0
}

// openWith opens the repository on s with password and fails the test
// when it does not open.
func openWith(t *testing.T, s repo.Store, password []byte) *repo.Repository {
	t.Helper()
	r, err := repo.Open(t.Context(), s, password)
	if err != nil {
		t.Fatalf("open with %q: %v", password, err)
	}
	return r
}

// restoresAll checks that every password opens the repository and
// restores each snapshot byte-exact.
func restoresAll(t *testing.T, s repo.Store, want map[*index.SnapshotRef][]byte) {
	t.Helper()
	for _, pw := range [][]byte{testPassword, otherPassword} {
		r := openWith(t, s, pw)
		for ref, data := range want {
			if !bytes.Equal(restore(t, r, *ref), data) {
				t.Fatalf("password %q: snapshot %s does not restore byte-exact", pw, ref.ID.Short())
			}
		}
	}
}

func TestRotateKeys(t *testing.T) {
	fs, r, snap0, day0 := rotateFixture(t)
	rep, err := r.RotateKeys(t.Context(), [][]byte{testPassword, otherPassword})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != 0 || rep.To != 1 || rep.Resumed || len(rep.Rewrapped) != 2 || len(rep.Removed) != 2 {
		t.Fatalf("report %+v, want generation 0 → 1 with two key files re-wrapped", rep)
	}
	if got := r.Config().KeyGeneration; got != 1 {
		t.Fatalf("write generation %d after rotating, want 1", got)
	}
	day1 := ndjson(800, 32, nil)
	snap1 := backup(t, r, day1, BackupOptions{Stream: "db", Format: FormatNDJSON, Parent: &snap0})
	// A second rotation: three generations, each snapshot still reads.
	r2 := openWith(t, fs, otherPassword)
	if rep, err = r2.RotateKeys(t.Context(), [][]byte{otherPassword, testPassword}); err != nil || rep.To != 2 {
		t.Fatalf("second rotation: %+v, %v", rep, err)
	}
	day2 := ndjson(800, 33, map[int]int{5: 1})
	snap2 := backup(t, r2, day2, BackupOptions{Stream: "db", Format: FormatNDJSON, Parent: &snap1})
	restoresAll(t, fs, map[*index.SnapshotRef][]byte{&snap0: day0, &snap1: day1, &snap2: day2})
	checkClean(t, openWith(t, fs, testPassword), true)
	keys, err := r2.ListKeys(t.Context())
	if err != nil || len(keys) != 2 {
		t.Fatalf("%d key files after two rotations (%v), want 2", len(keys), err)
	}
}

// TestRotateKeysUnknownPassword: a key file none of the given passwords
// opens stops the rotation before anything is written.
func TestRotateKeysUnknownPassword(t *testing.T) {
	fs, r, _, _ := rotateFixture(t)
	puts, dels := fs.Calls("Put"), fs.Calls("Delete")
	_, err := r.RotateKeys(t.Context(), [][]byte{testPassword})
	if !errors.Is(err, repo.ErrRotateNeedsPassword) {
		t.Fatalf("rotation without the second password: %v, want ErrRotateNeedsPassword", err)
	}
	if fs.Calls("Put") != puts || fs.Calls("Delete") != dels {
		t.Fatal("a refused rotation wrote to the store")
	}
	if got := r.Config().KeyGeneration; got != 0 {
		t.Fatalf("write generation %d after a refused rotation", got)
	}
}

// TestRotateKeysKilled fails each store call of a rotation in turn (the
// call not reaching the store, or landing and then failing as a cut
// connection would), then checks what must hold at any step: every
// password opens the repository and restores byte-exact, a writer can back
// up, and a rerun completes the rotation to a repository that checks clean.
func TestRotateKeysKilled(t *testing.T) {
	t.Run("mem", func(t *testing.T) { testRotateKeysKilled(t, true, func() repo.Store { return mem.New() }) })
	// The local directory store: files written to a temporary name and
	// renamed, as a real repository on disk is.
	t.Run("local", func(t *testing.T) {
		testRotateKeysKilled(t, false, func() repo.Store {
			s, err := local.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func testRotateKeysKilled(t *testing.T, all bool, newStore func() repo.Store) {
	type fault struct {
		method string
		cut    bool
	}
	faults := []fault{{"Put", false}, {"Put", true}, {"Delete", false}, {"Get", false}, {"Get", true}, {"Stat", false}, {"List", false}}
	if !all {
		faults = faults[:3] // the writes: what a kill interrupts
	}
	for _, f := range faults {
		for n := 1; ; n++ {
			name := fmt.Sprintf("%s %d cut=%v", f.method, n, f.cut)
			fs, r, snap0, day0 := rotateFixtureOn(t, newStore())
			fs.Reset()
			if f.cut {
				fs.CutOnce(f.method, n)
			} else {
				fs.FailOnce(f.method, n, nil)
			}
			_, err := r.RotateKeys(t.Context(), [][]byte{testPassword, otherPassword})
			fired := fs.Calls(f.method) >= n
			fs.Reset()
			if err == nil {
				if fired && !f.cut {
					t.Fatalf("%s: the rotation succeeded though a store call failed", name)
				}
				if !fired {
					// Every call of this method has been failed once: a
					// rotation of two key files makes at least six Puts
					// (two key files and the config, each with its copy)
					// and four Deletes.
					if min := map[string]int{"Put": 6, "Delete": 4}[f.method]; n-1 < min {
						t.Fatalf("%s %v: only %d calls were failed, want %d or more", f.method, f.cut, n-1, min)
					}
					t.Logf("%s cut=%v: failed each of %d calls", f.method, f.cut, n-1)
					break
				}
			}
			// Any step: check runs and says how to finish, every password
			// opens and restores, and a writer works.
			if crep, err := Check(t.Context(), openWith(t, fs, testPassword), CheckOptions{}); err != nil {
				t.Fatalf("%s: check after the kill: %v", name, err)
			} else {
				for _, p := range crep.Problems {
					if strings.Contains(p, "config") && !strings.Contains(p, "key rotate") {
						t.Fatalf("%s: check after the kill: %q does not say how to finish", name, p)
					}
				}
			}
			restoresAll(t, fs, map[*index.SnapshotRef][]byte{&snap0: day0})
			w := openWith(t, fs, testPassword)
			day1 := ndjson(800, 34, map[int]int{1: 1})
			snap1 := backup(t, w, day1, BackupOptions{Stream: "db", Format: FormatNDJSON, Parent: &snap0})
			// A rerun completes the rotation, without a second generation;
			// only when the config landed (a cut reply to the last Put) was
			// the rotation done, and a rerun is a new one.
			rr := openWith(t, fs, otherPassword)
			want := uint32(1)
			if rr.Config().KeyGeneration == 1 {
				want = 2
			}
			rep, err := rr.RotateKeys(t.Context(), [][]byte{otherPassword, testPassword})
			if err != nil {
				t.Fatalf("%s: rerun: %v", name, err)
			}
			if rep.To != want {
				t.Fatalf("%s: rerun reached generation %d, want %d", name, rep.To, want)
			}
			for _, pw := range [][]byte{testPassword, otherPassword} {
				if g := openWith(t, fs, pw).Config().KeyGeneration; g != want {
					t.Fatalf("%s: password %q opens generation %d after the rerun, want %d", name, pw, g, want)
				}
			}
			day2 := ndjson(800, 35, map[int]int{2: 1})
			snap2 := backup(t, rr, day2, BackupOptions{Stream: "db", Format: FormatNDJSON, Parent: &snap1})
			restoresAll(t, fs, map[*index.SnapshotRef][]byte{&snap0: day0, &snap1: day1, &snap2: day2})
			checkClean(t, openWith(t, fs, testPassword), true)
			if keys, err := rr.ListKeys(t.Context()); err != nil || len(keys) != 2 {
				t.Fatalf("%s: %d key files after the rerun (%v), want 2", name, len(keys), err)
			}
			if n > 40 {
				t.Fatalf("%s: the rotation makes more store calls than expected", name)
			}
		}
	}
}
