package engine_test

// The single-fault sweep of issue 13 (FORMAT.md §25): a real repository
// (ndjson snapshots and a change log), and for every object in it, in turn,
// each fault kind; check --read-data --repair must put the object back, and
// the full and point-in-time restores must then be byte-exact. It lives in
// an external test package because the point-in-time restore is ndjson's.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source/ndjson"
)

var (
	sweepEpoch    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sweepPassword = []byte("sweep password")
	sweepOther    = []byte("a second password")
	sweepKDF      = repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
)

// sweepState is the export of the stream after the events up to seq: keys
// k0000..k0039, each at the seq of the newest event that put it.
func sweepState(seq uint64) []byte {
	var b bytes.Buffer
	for k := range 40 {
		v := uint64(0)
		for s := uint64(1); s <= seq; s++ {
			if s%40 == uint64(k) {
				v = s
			}
		}
		fmt.Fprintf(&b, `{"_id":"k%04d","seq":%d,"pad":"%s"}`+"\n", k, v, strings.Repeat("p", 40+k))
	}
	return b.Bytes()
}

// sweepRepository builds the repository the sweep damages: snapshot A at
// position 0, events 1..30 in three segments, snapshot B at position 20,
// two key files, 2+1 shards. It returns every object's bytes.
func sweepRepository(t *testing.T) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	s := mem.New()
	r, err := repo.Init(ctx, s, sweepPassword, repo.InitOptions{DataShards: 2, ParityShards: 1, KDF: sweepKDF})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddKey(ctx, sweepOther, sweepKDF, "h", "u"); err != nil {
		t.Fatal(err)
	}
	pos := uint64(0)
	if _, _, err := engine.Backup(ctx, r, bytes.NewReader(sweepState(0)), engine.BackupOptions{Stream: "db", Format: engine.FormatNDJSON, Time: sweepEpoch, Position: &pos}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "db"})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 30; seq++ {
		k := fmt.Sprintf("k%04d", seq%40)
		e := &repo.Event{Seq: seq, Time: sweepEpoch.Add(time.Duration(seq) * time.Minute).UnixNano(), Op: repo.OpPut,
			Key: []byte(k), Value: fmt.Appendf(nil, `{"_id":"%s","seq":%d,"pad":"%s"}`, k, seq, strings.Repeat("p", 40+int(seq%40)))}
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
		if seq%10 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	pos = 20
	if _, _, err := engine.Backup(ctx, r, bytes.NewReader(sweepState(20)), engine.BackupOptions{Stream: "db", Format: engine.FormatNDJSON, Time: sweepEpoch.Add(20 * time.Minute), Position: &pos}); err != nil {
		t.Fatal(err)
	}
	objs := map[string][]byte{}
	err = s.List(ctx, "", func(oi repo.ObjectInfo) error {
		b, err := s.Get(ctx, oi.Name)
		objs[oi.Name] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func storeOf(t *testing.T, objs map[string][]byte) *mem.Store {
	t.Helper()
	s := mem.New()
	for n, b := range objs {
		if err := s.Put(context.Background(), n, bytes.Clone(b)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// restores returns what every restore of the stream gives: each snapshot
// in full, and the stream at three instants (on snapshot A's log, on B's,
// and between two events).
func restores(ctx context.Context, r *repo.Repository) ([][]byte, error) {
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	snaps := cat.Stream("db")
	if len(snaps) != 2 {
		return nil, fmt.Errorf("%d snapshots, want 2", len(snaps))
	}
	for _, sn := range snaps {
		var b bytes.Buffer
		if _, err := engine.Restore(ctx, r, sn, &b, engine.RestoreOptions{}); err != nil {
			return nil, fmt.Errorf("restore %s: %w", sn.ID.Short(), err)
		}
		out = append(out, b.Bytes())
	}
	for _, m := range []time.Duration{13 * time.Minute, 27*time.Minute + 30*time.Second, 30 * time.Minute} {
		p, err := cat.Plan("db", index.Target{Time: sweepEpoch.Add(m)})
		if err != nil {
			return nil, fmt.Errorf("plan at +%v: %w", m, err)
		}
		var b bytes.Buffer
		if _, err := ndjson.RestoreAt(ctx, r, p, &b, engine.RestoreOptions{}); err != nil {
			return nil, fmt.Errorf("restore at +%v: %w", m, err)
		}
		out = append(out, b.Bytes())
	}
	return out, nil
}

var sweepFaults = []struct {
	name  string
	apply func(ctx context.Context, s repo.Store, name string, b []byte) error
}{
	{"flip", func(ctx context.Context, s repo.Store, name string, b []byte) error {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 0x40
		return s.Put(ctx, name, b)
	}},
	{"flip first byte", func(ctx context.Context, s repo.Store, name string, b []byte) error {
		b = bytes.Clone(b)
		b[0] ^= 0x01
		return s.Put(ctx, name, b)
	}},
	{"flip last byte", func(ctx context.Context, s repo.Store, name string, b []byte) error {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0x80
		return s.Put(ctx, name, b)
	}},
	{"truncate", func(ctx context.Context, s repo.Store, name string, b []byte) error {
		return s.Put(ctx, name, bytes.Clone(b[:len(b)/2]))
	}},
	{"delete", func(ctx context.Context, s repo.Store, name string, _ []byte) error {
		return s.Delete(ctx, name)
	}},
}

// TestEverySingleFaultHeals damages every object of the repository in turn
// (metadata, their copies, and pack shards), with each fault kind. The
// repository opens with either password before any repair; check reports
// the damage; check --read-data --repair puts the object back byte for
// byte; a second check is clean; every restore is byte-exact.
func TestEverySingleFaultHeals(t *testing.T) {
	objs := sweepRepository(t)
	ctx := t.Context()
	pristine := storeOf(t, objs)
	r, err := repo.Open(ctx, pristine, sweepPassword)
	if err != nil {
		t.Fatal(err)
	}
	want, err := restores(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want[0], sweepState(0)) || !bytes.Equal(want[1], sweepState(20)) || !bytes.Equal(want[2], sweepState(13)) ||
		!bytes.Equal(want[3], sweepState(27)) || !bytes.Equal(want[4], sweepState(30)) {
		t.Fatal("the undamaged repository does not restore what was backed up")
	}
	if rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true}); err != nil || len(rep.Problems)+len(rep.Notes) > 0 {
		t.Fatalf("the undamaged repository does not check clean: %v %q %q", err, rep.Problems, rep.Notes)
	}

	kinds := map[string]int{}
	total, healed := 0, 0
	for name, orig := range objs {
		kinds[kindName(name)]++
		for _, f := range sweepFaults {
			if testing.Short() && strings.HasPrefix(f.name, "flip ") {
				continue // -short: one flip, a truncation and a deletion
			}
			total++
			if sweepOne(t, objs, name, orig, f.name, f.apply, want) {
				healed++
			}
		}
	}
	t.Logf("single faults healed: %d of %d (%d objects × %d fault kinds; objects by kind %v)", healed, total, len(objs), total/len(objs), kinds)
	if healed != total {
		t.Fatalf("only %d of %d single faults healed", healed, total)
	}
}

func kindName(name string) string {
	if n, ok := strings.CutPrefix(name, repo.CopiesPrefix); ok {
		return "copy of " + repo.KindOf(n).String()
	}
	return repo.KindOf(name).String()
}

// sweepOne applies one fault to one object of a fresh copy of the
// repository and reports whether everything healed; failures are test errors.
func sweepOne(t *testing.T, objs map[string][]byte, name string, orig []byte, fault string,
	apply func(context.Context, repo.Store, string, []byte) error, want [][]byte) bool {
	t.Helper()
	ctx := t.Context()
	fail := func(format string, args ...any) bool {
		t.Errorf("%s %s: %s", fault, name, fmt.Sprintf(format, args...))
		return false
	}
	s := storeOf(t, objs)
	if err := apply(ctx, s, name, orig); err != nil {
		t.Fatal(err)
	}
	for _, pw := range [][]byte{sweepOther, sweepPassword} {
		if _, err := repo.Open(ctx, s, pw); err != nil {
			return fail("open before repair: %v", err)
		}
	}
	r, _ := repo.Open(ctx, s, sweepPassword)
	rep, err := engine.Check(ctx, r, engine.CheckOptions{ReadData: true})
	if err != nil {
		return fail("check: %v", err)
	}
	if len(rep.Problems)+len(rep.Notes) == 0 {
		return fail("check reports nothing")
	}
	if rep, err = engine.Check(ctx, r, engine.CheckOptions{ReadData: true, Repair: true}); err != nil || len(rep.Problems) > 0 || len(rep.Repaired) == 0 {
		return fail("check --read-data --repair: %v; problems %q; repaired %q", err, rep.Problems, rep.Repaired)
	}
	if b, err := s.Get(ctx, name); err != nil || !bytes.Equal(b, orig) {
		return fail("not put back byte for byte: %v", err)
	}
	r, err = repo.Open(ctx, s, sweepPassword)
	if err != nil {
		return fail("open after repair: %v", err)
	}
	if rep, err = engine.Check(ctx, r, engine.CheckOptions{ReadData: true}); err != nil || len(rep.Problems)+len(rep.Notes) > 0 {
		return fail("check after repair: %v; problems %q; notes %q", err, rep.Problems, rep.Notes)
	}
	got, err := restores(ctx, r)
	if err != nil {
		return fail("restore after repair: %v", err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			return fail("restore %d after repair differs", i)
		}
	}
	return true
}
