package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// catalog is the server's in-memory view of every stream: snapshots from
// their plaintext labels, log segments from their names. It never needs the
// key. Lookups take the read lock; every write through the server updates it
// under the write lock, so a lookup never sees half an update.
type catalog struct {
	mu sync.RWMutex
	// labels holds every label, including labels whose snapshot has not
	// arrived yet (a snapshot upload is checked against its label).
	labels map[repo.ID]*repo.Label
	// cat.Snapshots holds the snapshots that exist, oldest first, ByStream
	// the same by stream, Logs every stream's segments. The slices and maps
	// are replaced, never modified in place, so a view taken under the read
	// lock stays valid after it is released.
	cat index.Catalog
	// coverage caches each stream's coverage until the stream changes: it
	// costs a search of the log per snapshot.
	coverage map[string]*coverageEntry
	// baseJSON caches the JSON of snapshots that plans were based on
	// (repo.ID → []byte, Server.snapshotJSON), dropped with the label.
	baseJSON sync.Map
}

// loadCatalog rebuilds the catalog from the store: labels, snapshot names,
// segment names. Snapshots without a label (written before labels existed)
// are counted in unlabeled and left out: `strata check --repair` with the
// password writes their labels.
func loadCatalog(ctx context.Context, st repo.Store) (c *catalog, unlabeled int, err error) {
	c = &catalog{labels: map[repo.ID]*repo.Label{}, cat: index.Catalog{Logs: map[string]*index.Log{}}, coverage: map[string]*coverageEntry{}}
	var labelIDs []repo.ID
	if err := st.List(ctx, repo.LabelsPrefix, func(oi repo.ObjectInfo) error {
		id, err := repo.ParseID(oi.Name[len(repo.LabelsPrefix):])
		if err != nil {
			return &repo.CorruptError{Object: oi.Name, Offset: -1, Reason: "unexpected object name"}
		}
		labelIDs = append(labelIDs, id)
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("list labels: %w", err)
	}
	labels := make([]*repo.Label, len(labelIDs))
	err = repo.ForEach(ctx, st, len(labelIDs), func(i int) error {
		name := repo.LabelName(labelIDs[i])
		b, err := st.Get(ctx, name)
		if err == nil {
			labels[i], err = repo.DecodeLabel(name, b)
		}
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read labels: %w", err)
	}
	for i, id := range labelIDs {
		c.labels[id] = labels[i]
	}
	if err := st.List(ctx, repo.SnapshotsPrefix, func(oi repo.ObjectInfo) error {
		id, err := repo.ParseID(oi.Name[len(repo.SnapshotsPrefix):])
		if err != nil {
			return &repo.CorruptError{Object: oi.Name, Offset: -1, Reason: "unexpected object name"}
		}
		l, ok := c.labels[id]
		if !ok {
			unlabeled++
			return nil
		}
		c.cat.Snapshots = append(c.cat.Snapshots, index.SnapshotRef{ID: id, Snapshot: repo.SnapshotOfLabel(l)})
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("list snapshots: %w", err)
	}
	slices.SortStableFunc(c.cat.Snapshots, compareSnapshots)
	c.cat.ByStream = map[string][]index.SnapshotRef{}
	for _, ref := range c.cat.Snapshots {
		c.cat.ByStream[ref.Stream] = append(c.cat.ByStream[ref.Stream], ref)
	}
	logs, err := index.ListLogs(ctx, st, "")
	if err != nil {
		return nil, 0, fmt.Errorf("list log segments: %w", err)
	}
	c.cat.Logs = logs
	return c, unlabeled, nil
}

// compareSnapshots orders snapshots as index.LoadCatalog does.
func compareSnapshots(a, b index.SnapshotRef) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return a.ID.Compare(b.ID)
}

func (c *catalog) label(id repo.ID) (*repo.Label, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, ok := c.labels[id]
	return l, ok
}

func (c *catalog) addLabel(id repo.ID, l *repo.Label) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.labels[id] = l
	c.baseJSON.Delete(id)
}

// snapshotJSON is the JSON of a snapshot as a plan's base (wire.Snapshot),
// made once per snapshot: labels never change, and marshalling one
// (times, numbers) was most of a short plan's answer. It is stored under
// the read lock, so a label removed under the write lock leaves no entry.
func (c *catalog) snapshotJSON(id repo.ID) []byte {
	if j, ok := c.baseJSON.Load(id); ok {
		return j.([]byte)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	snap := wire.Snapshot{ID: id.String(), Label: c.labels[id]}
	j, err := json.Marshal(snap)
	if err != nil {
		// Unreachable: a label always marshals.
		return []byte(`{"id":"` + snap.ID + `","label":null}`)
	}
	if snap.Label != nil {
		c.baseJSON.Store(id, j)
	}
	return j
}

// addSnapshot records a stored snapshot; its label must be known.
func (c *catalog) addSnapshot(id repo.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.labels[id]
	if !ok {
		return
	}
	ref := index.SnapshotRef{ID: id, Snapshot: repo.SnapshotOfLabel(l)}
	i, found := slices.BinarySearchFunc(c.cat.Snapshots, ref, compareSnapshots)
	if found {
		return
	}
	// Copy on insert: plans and listings handed out earlier keep their slice.
	s := make([]index.SnapshotRef, 0, len(c.cat.Snapshots)+1)
	s = append(append(append(s, c.cat.Snapshots[:i]...), ref), c.cat.Snapshots[i:]...)
	c.cat.Snapshots = s
	c.changed(ref.Stream)
}

// changed rebuilds one stream's snapshot list and drops its cached
// coverage, copying the maps so that earlier views keep theirs.
func (c *catalog) changed(stream string) {
	var list []index.SnapshotRef
	for _, s := range c.cat.Snapshots {
		if s.Stream == stream {
			list = append(list, s)
		}
	}
	by := maps.Clone(c.cat.ByStream)
	if len(list) == 0 {
		delete(by, stream)
	} else {
		by[stream] = list
	}
	c.cat.ByStream = by
	delete(c.coverage, stream)
}

// removeSnapshot forgets a deleted snapshot (and, with label, its label).
func (c *catalog) removeSnapshot(id repo.ID, label bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var stream string
	if l, ok := c.labels[id]; ok {
		stream = l.Stream
	}
	if label {
		delete(c.labels, id)
		c.baseJSON.Delete(id)
	}
	c.cat.Snapshots = slices.DeleteFunc(slices.Clone(c.cat.Snapshots), func(s index.SnapshotRef) bool { return s.ID == id })
	if stream != "" {
		c.changed(stream)
	}
}

// addSegment records a stored segment manifest.
func (c *catalog) addSegment(k repo.SegmentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.cat.Logs[k.Stream]
	if ok {
		k.Stream = l.Stream // one copy of the name per stream, not one per segment
	} else {
		k.Stream = strings.Clone(k.Stream)
		l = index.NewLog(k.Stream, nil)
	}
	logs := maps.Clone(c.cat.Logs)
	logs[k.Stream] = l.With(k)
	c.cat.Logs = logs
	delete(c.coverage, k.Stream)
}

// removeSegment forgets a deleted segment manifest.
func (c *catalog) removeSegment(k repo.SegmentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.cat.Log(k.Stream)
	segs := slices.DeleteFunc(slices.Clone(l.All()), func(s repo.SegmentKey) bool { return s == k })
	logs := maps.Clone(c.cat.Logs)
	if len(segs) == 0 {
		delete(logs, k.Stream)
	} else {
		logs[k.Stream] = index.NewLog(k.Stream, segs)
	}
	c.cat.Logs = logs
	delete(c.coverage, k.Stream)
}

// coverageEntry is a stream's coverage and the JSON answer of GET
// /v1/coverage for it up to lag_seconds, which alone changes with the
// clock: both made once per change of the stream.
type coverageEntry struct {
	cov index.Coverage
	// json is wire.CoverageOf's JSON without lag_seconds and without the
	// closing brace (nil if it could not be made).
	json []byte
}

// streamCoverage returns a stream's coverage, computed once per change.
func (c *catalog) streamCoverage(stream string) index.Coverage {
	return c.coverageOf(stream).cov
}

func (c *catalog) coverageOf(stream string) *coverageEntry {
	c.mu.RLock()
	e, ok := c.coverage[stream]
	c.mu.RUnlock()
	if ok {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.coverage[stream]; ok {
		return e
	}
	e = &coverageEntry{cov: c.cat.Coverage(stream)}
	j := wire.CoverageOf(e.cov, time.Time{})
	j.LagSecs = nil
	// Plain data always marshals; were it ever not to, json stays nil and
	// the handler encodes each answer itself.
	if b, err := json.Marshal(j); err == nil && len(b) > 0 && b[len(b)-1] == '}' {
		e.json = b[:len(b)-1]
	}
	c.coverage[stream] = e
	return e
}

// read runs fn on the catalog under the read lock: the lookup path.
func (c *catalog) read(fn func(cat *index.Catalog)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	fn(&c.cat)
}

// trusted returns the catalog with each snapshot's Time replaced by the time
// the server received it, where known: retention decides by the server's
// clock, never by dates a client claims (PROTOCOL.md, "Trusted time").
func (c *catalog) trusted() *index.Catalog {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v := &index.Catalog{Snapshots: make([]index.SnapshotRef, len(c.cat.Snapshots)), Logs: c.cat.Logs}
	for i, s := range c.cat.Snapshots {
		cp := *s.Snapshot
		if l := c.labels[s.ID]; l != nil && l.Received != nil {
			cp.Time = *l.Received
		}
		v.Snapshots[i] = index.SnapshotRef{ID: s.ID, Snapshot: &cp}
	}
	slices.SortStableFunc(v.Snapshots, compareSnapshots)
	v.ByStream = map[string][]index.SnapshotRef{}
	for _, ref := range v.Snapshots {
		v.ByStream[ref.Stream] = append(v.ByStream[ref.Stream], ref)
	}
	return v
}

// streams lists every stream with its counts and newest instant.
func (c *catalog) streams() map[string]*streamInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]*streamInfo{}
	get := func(s string) *streamInfo {
		if out[s] == nil {
			out[s] = &streamInfo{}
		}
		return out[s]
	}
	for _, s := range c.cat.Snapshots {
		si := get(s.Stream)
		si.snapshots++
		if s.Time.After(si.newest) {
			si.newest = s.Time
		}
	}
	for name, l := range c.cat.Logs {
		si := get(name)
		si.segments += len(l.Segments)
		if n, ok := l.Newest(); ok {
			if t := time.Unix(0, n.LastTime).UTC(); t.After(si.newest) {
				si.newest = t
			}
		}
	}
	return out
}

type streamInfo struct {
	snapshots, segments int
	newest              time.Time
}

// catalogEntryBytes is a generous estimate of the memory one label,
// snapshot or segment takes in the catalog.
const catalogEntryBytes = 512

// CatalogBytes estimates the memory the in-memory catalog takes now.
func (s *Server) CatalogBytes() int64 {
	var n int
	s.cat.read(func(c *index.Catalog) {
		n = len(c.Snapshots)
		for _, l := range c.Logs {
			n += len(l.Segments)
		}
	})
	s.cat.mu.RLock()
	n += len(s.cat.labels)
	s.cat.mu.RUnlock()
	return int64(n) * catalogEntryBytes
}
