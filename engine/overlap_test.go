package engine

import (
	"strings"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// TestRepairLegacyOverlap: two captures without leases (older versions)
// left overlapping segments on one stream; check reports them, plans
// refuse to cross them, and check --repair keeps the chain that reaches
// furthest and reads back, removes the other writer's overlapping
// segment saying whether its events differed, and leaves a log that
// restores every event.
func TestRepairLegacyOverlap(t *testing.T) {
	for _, differ := range []bool{false, true} {
		ctx := t.Context()
		r := newRepo(t, mem.New(), repo.InitOptions{})
		evs := testEvents(50)
		write := func(w *LogWriter, evs []repo.Event) {
			t.Helper()
			for i := range evs {
				if err := w.Append(&evs[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		a, err := OpenLog(ctx, r, LogOptions{Stream: "s"})
		if err != nil {
			t.Fatal(err)
		}
		write(a, evs[:20])
		b, err := OpenLog(ctx, r, LogOptions{Stream: "s"}) // continues after 1-20, as A does
		if err != nil {
			t.Fatal(err)
		}
		other := append([]repo.Event(nil), evs[20:40]...)
		if differ {
			for i := range other {
				other[i].Op, other[i].Key, other[i].Value = repo.OpPut, []byte("other"), []byte(`{"_id":"other"}`)
			}
		}
		write(a, other) // A: 21-40
		a.Close()
		write(b, evs[20:30]) // B: 21-30, 31-50
		write(b, evs[30:50])
		b.Close()

		logs, _ := index.ListLogs(ctx, r.Store(), "s")
		if len(logs["s"].Conflicts) == 0 {
			t.Fatal("no overlap to repair")
		}
		rep, err := Check(ctx, r, CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "overlapping") {
			t.Fatalf("check without repair: %v", rep.Problems)
		}
		rep, err = Check(ctx, r, CheckOptions{Repair: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 0 || len(rep.Repaired) != 1 {
			t.Fatalf("repair: problems %v, repaired %v", rep.Problems, rep.Repaired)
		}
		msg := rep.Repaired[0]
		if !strings.Contains(msg, "segment 21-40") || strings.Contains(msg, "DIFFER") != differ {
			t.Fatalf("repair says %q (events differed: %v)", msg, differ)
		}
		rep, err = Check(ctx, r, CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 0 {
			t.Fatalf("check after repair: %v", rep.Problems)
		}
		sameEvents(t, readLog(t, r, "s"), evs)
	}
}
