package engine

import (
	"errors"
	"syscall"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/faulty"
	"github.com/strata-backup/strata/repo/mem"
)

// TestLogFullDiskCounts: a capture that fills the disk after storing some
// segments reports those segments and their events, not the events it took
// and could not store.
func TestLogFullDiskCounts(t *testing.T) {
	fs := faulty.New(mem.New())
	r := newRepo(t, fs, repo.InitOptions{DataShards: 2, ParityShards: 1})
	w, err := OpenLog(t.Context(), r, LogOptions{Stream: "s", SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents(400)
	for i := range evs[:100] {
		if err := w.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fs.FullDisk(0)
	var appendErr error
	for i := 100; i < len(evs) && appendErr == nil; i++ {
		appendErr = w.Append(&evs[i])
	}
	st, err := w.Close()
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(appendErr, syscall.ENOSPC) {
		t.Fatalf("close: %v, append: %v; want ENOSPC", err, appendErr)
	}
	logs, lerr := index.ListLogs(t.Context(), fs, "s")
	if lerr != nil {
		t.Fatal(lerr)
	}
	stored := int64(len(logs["s"].Segments))
	if stored == 0 || st.Segments != stored {
		t.Fatalf("stats say %d segments, the store holds %d", st.Segments, stored)
	}
	head, _ := logs["s"].Newest()
	if st.Stored != int64(head.Last) || st.Appended <= st.Stored {
		t.Fatalf("stats say %d events stored of %d taken; the log ends at %d", st.Stored, st.Appended, head.Last)
	}
}
