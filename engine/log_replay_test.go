package engine

import (
	"errors"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// TestLogVerifyReplay: with VerifyReplay, an event at a position the log
// holds is compared with the stored one, whether it is in a stored segment,
// one being sealed, or the open one; identical replays are skipped, and
// any difference is refused.
func TestLogVerifyReplay(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	evs := testEvents(300)
	o := LogOptions{Stream: "s", SegmentBytes: 1024, VerifyReplay: true}
	w, err := OpenLog(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs[:200] {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	changed := func(i int, how string) *repo.Event {
		e := evs[i]
		switch how {
		case "doc":
			e.Op, e.Value = repo.OpPut, []byte(`{"_id":"other"}`)
		case "time":
			e.Time++
		case "key":
			e.Key = []byte("someone-else")
		case "op":
			if e.Op == repo.OpPut {
				e.Op, e.Value = repo.OpDelete, nil
			} else {
				e.Op, e.Value = repo.OpPut, []byte(`{}`)
			}
		}
		return &e
	}
	// Same writer: the newest event is in the open segment, an early one stored.
	for _, i := range []int{199, 198, 3, 120} {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatalf("identical replay of %d: %v", i+1, err)
		}
		for _, how := range []string{"doc", "time", "key", "op"} {
			if err := w.Append(changed(i, how)); !errors.Is(err, ErrReplayMismatch) {
				t.Fatalf("replay of %d with another %s: %v, want ErrReplayMismatch", i+1, how, err)
			}
		}
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments < 3 || st.Appended != 200 || st.Skipped != 4 {
		t.Fatalf("stats %+v", st)
	}
	// A restarted capture fed from the start: identical events are skipped,
	// a changed one is refused, and the log is unchanged.
	w, err = OpenLog(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs[:150] {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatalf("identical replay of %d after a restart: %v", i+1, err)
		}
	}
	if err := w.Append(changed(150, "doc")); !errors.Is(err, ErrReplayMismatch) {
		t.Fatalf("changed replay after a restart: %v", err)
	}
	for i := 150; i < 300; i++ {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, readLog(t, r, "s"), evs)

	// Without the option a replay is skipped unread, as sources dated on
	// arrival need.
	o.VerifyReplay = false
	w, err = OpenLog(t.Context(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(changed(5, "time")); err != nil {
		t.Fatalf("replay without VerifyReplay: %v", err)
	}
	w.Close()
}

// TestLogVerifyReplayGap: a position inside a recorded gap holds nothing to
// compare with, so a late event there is skipped as before.
func TestLogVerifyReplayGap(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	evs := testEvents(20)
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s", VerifyReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if i >= 10 && i < 14 {
			continue
		}
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Append(&evs[11]); err != nil {
		t.Fatalf("event in a gap: %v", err)
	}
	if err := w.Append(&evs[2]); err != nil {
		t.Fatalf("identical replay: %v", err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
