package engine

import (
	"errors"
	"fmt"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
)

func testEvents(n int) []repo.Event {
	evs := make([]repo.Event, n)
	for i := range evs {
		key := fmt.Sprintf("k%03d", i%97)
		evs[i] = repo.Event{Seq: uint64(i + 1), Time: int64(1767225600e9) + int64(i/3)*1e9, Op: repo.OpPut, Key: []byte(key),
			Value: fmt.Appendf(nil, `{"_id":%q,"v":%d}`, key, i)}
		if i%7 == 0 {
			evs[i].Op, evs[i].Value = repo.OpDelete, nil
		}
	}
	return evs
}

// readLog reads every event of a stream's log, checking the chain.
func readLog(t *testing.T, r *repo.Repository, stream string) []repo.Event {
	t.Helper()
	logs, err := index.ListLogs(t.Context(), r.Store(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []repo.Event
	var prev *repo.ID
	if logs[stream] == nil {
		return nil
	}
	for _, k := range logs[stream].Segments {
		seg, err := r.LoadSegment(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if (prev == nil) != (seg.Prev == nil) || prev != nil && *prev != *seg.Prev {
			t.Fatalf("segment %d-%d does not chain", k.First, k.Last)
		}
		prev = &k.ID
		err = ReadSegment(t.Context(), r, k, seg, func(e *repo.Event) error {
			c := *e
			c.Key, c.Value = append([]byte{}, e.Key...), append([]byte(nil), e.Value...)
			if len(c.Value) == 0 {
				c.Value = nil
			}
			out = append(out, c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameEvents(t *testing.T, got, want []repo.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events stored, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Time != w.Time || g.Op != w.Op || string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) {
			t.Fatalf("event %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestLogOrder(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents(10)
	for i := range evs {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	early := repo.Event{Seq: 11, Time: evs[9].Time - 1, Op: repo.OpDelete, Key: []byte("x")}
	if err := w.Append(&early); !errors.Is(err, ErrEventOrder) {
		t.Errorf("an event earlier than the one before: %v, want ErrEventOrder", err)
	}
	zero := repo.Event{Seq: 0, Time: evs[9].Time, Op: repo.OpDelete, Key: []byte("x")}
	if err := w.Append(&zero); !errors.Is(err, ErrEventOrder) {
		t.Errorf("position 0: %v, want ErrEventOrder", err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(&evs[0]); !errors.Is(err, ErrLogClosed) {
		t.Errorf("append after close: %v", err)
	}
	sameEvents(t, readLog(t, r, "s"), evs)
}

// TestLogCrashAtEveryWrite: a capture whose store fails at write N, for
// every N, leaves a log that is a chained prefix of the events; a restarted
// capture fed every event again completes it with nothing duplicated.
func TestLogCrashAtEveryWrite(t *testing.T) {
	evs := testEvents(300)
	for n := 1; ; n++ {
		fs := faulty.New(mem.New())
		r := newRepo(t, fs, repo.InitOptions{DataShards: 2, ParityShards: 1})
		fs.FailAfter("Put", n, faulty.ErrInjected)
		w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s", SegmentBytes: 2048, FrameSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := range evs {
			if appendErr = w.Append(&evs[i]); appendErr != nil {
				break
			}
		}
		_, closeErr := w.Close()
		failed := appendErr != nil || closeErr != nil
		fs.Reset()
		if !failed {
			if n < 3 {
				t.Fatalf("no failure with the store failing from write %d", n)
			}
			sameEvents(t, readLog(t, r, "s"), evs)
			return // every write point has been tried
		}
		stored := readLog(t, r, "s")
		sameEvents(t, stored, evs[:len(stored)])
		w, err = OpenLog(t.Context(), r, LogOptions{Stream: "s", SegmentBytes: 2048, FrameSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if err := w.Append(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		st, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.Skipped != int64(len(stored)) {
			t.Fatalf("write %d: restart skipped %d events, %d were stored", n, st.Skipped, len(stored))
		}
		sameEvents(t, readLog(t, r, "s"), evs)
	}
}

// TestLogRecycledBuffers: segments written through recycled buffers hold
// their own events, never bytes of an earlier segment, and a replay
// verified against them still finds a differing document.
func TestLogRecycledBuffers(t *testing.T) {
	r := newRepo(t, mem.New(), repo.InitOptions{})
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s", SegmentBytes: 1024, FrameSize: 256, VerifyReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents(600)
	for i := range evs {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	bad := evs[5]
	bad.Value = []byte(`{"_id":"k005","v":-1}`)
	if bad.Op == repo.OpPut {
		if err := w.Append(&bad); err == nil {
			t.Error("a replayed event with a different document was accepted")
		}
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments < 10 {
		t.Fatalf("%d segments: too few to recycle buffers", st.Segments)
	}
	sameEvents(t, readLog(t, r, "s"), evs)
}
