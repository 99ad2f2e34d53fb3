package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/strata-backup/strata/repo"
)

// MaxRecordBytes bounds a drill or scrub record read back: a record is a
// few hundred bytes, and a keyless server must not load whatever a writer
// put under drills/ into memory.
const MaxRecordBytes = 1 << 20

// RecordReader reads the newest drill record of every stream and the newest
// scrub record from a store, remembering what it has decoded: records are
// written once and never rewritten (FORMAT.md §24), so a long-running
// reader (the index server) decodes each only once. Safe for concurrent use.
type RecordReader struct {
	mu     sync.Mutex
	drills map[string]*DrillRecord // by object name; nil for a record that is unreadable
	bad    map[string]string       // why a record is unreadable, by name
}

// NewRecordReader returns an empty reader.
func NewRecordReader() *RecordReader {
	return &RecordReader{drills: map[string]*DrillRecord{}, bad: map[string]string{}}
}

// Records is what a RecordReader found.
type Records struct {
	Drills map[string]Drills `json:"drills"`          // by stream
	Scrub  *ScrubRecord      `json:"scrub,omitempty"` // the newest scrub record, nil when none
	// Problems names each record that could not be read or decoded; a
	// record listed here may be the newest of its stream.
	Problems []string `json:"problems,omitempty"`
}

// Read lists drills/ and scrub/ and reads what it has not read before. A
// failure to list is an error; an unreadable record is a Problem, not an
// error, so one bad object does not hide every other stream's status.
func (rr *RecordReader) Read(ctx context.Context, st repo.Store) (*Records, error) {
	var names []string
	if err := st.List(ctx, repo.DrillsPrefix, func(oi repo.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list drill records: %w", err)
	}
	rr.mu.Lock()
	var todo []string
	for _, n := range names {
		if _, ok := rr.drills[n]; !ok {
			todo = append(todo, n)
		}
	}
	rr.mu.Unlock()
	got := make([]*DrillRecord, len(todo))
	why := make([]string, len(todo))
	err := repo.ForEach(ctx, st, len(todo), func(i int) error {
		var d DrillRecord
		if err := readRecord(ctx, st, todo[i], repo.KindDrill, &d); err != nil {
			if ctx.Err() != nil {
				return err
			}
			why[i] = err.Error()
			return nil
		}
		got[i] = &d
		return nil
	})
	if err != nil {
		return nil, err
	}
	rr.mu.Lock()
	for i, n := range todo {
		rr.drills[n] = got[i]
		if why[i] != "" {
			rr.bad[n] = why[i]
		}
	}
	out := &Records{Drills: map[string]Drills{}}
	// Names are stamped with the drill's time, so ascending name order is
	// time order: the last seen of a stream is its newest.
	for _, n := range names {
		d := rr.drills[n]
		if d == nil {
			out.Problems = append(out.Problems, fmt.Sprintf("drill record %s: %s", n, rr.bad[n]))
			continue
		}
		cur := out.Drills[d.Stream]
		cur.Newest = d
		if d.OK {
			cur.NewestOK = d
		}
		out.Drills[d.Stream] = cur
	}
	rr.mu.Unlock()

	var newest string
	if err := st.List(ctx, repo.ScrubPrefix, func(oi repo.ObjectInfo) error {
		if o, err := repo.ParseObject(oi.Name); err == nil && o.Kind == repo.KindScrub {
			newest = oi.Name
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list scrub records: %w", err)
	}
	if newest != "" {
		var s ScrubRecord
		if err := readRecord(ctx, st, newest, repo.KindScrub, &s); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			out.Problems = append(out.Problems, fmt.Sprintf("scrub record %s: %s", newest, err))
		} else {
			out.Scrub = &s
		}
	}
	slices.Sort(out.Problems)
	return out, nil
}

// readRecord reads and decodes one record, checking its name and size.
func readRecord(ctx context.Context, st repo.Store, name string, kind repo.Kind, v any) error {
	o, err := repo.ParseObject(name)
	if err != nil || o.Kind != kind {
		return fmt.Errorf("not a %s record name", kind)
	}
	info, err := st.Stat(ctx, name)
	if err != nil {
		return err
	}
	if info.Size > MaxRecordBytes {
		return fmt.Errorf("%d bytes, over the %d a record may have", info.Size, MaxRecordBytes)
	}
	b, err := st.Get(ctx, name)
	if err != nil {
		return err
	}
	if len(b) > MaxRecordBytes {
		return fmt.Errorf("%d bytes, over the %d a record may have", len(b), MaxRecordBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if d, ok := v.(*DrillRecord); ok {
		if err := repo.ValidStream(d.Stream); err != nil {
			return err
		}
	}
	return nil
}
