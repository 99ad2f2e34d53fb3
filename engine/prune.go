package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Prune marks objects (repo.PruneMarksPrefix, FORMAT.md §18) are named
// prune/marks-<unix nanoseconds, 19 digits>.json.
//
// A marks object is plain JSON, not sealed: it lists pack IDs, which are
// BLAKE3 hashes of encrypted packs and already appear in the names of
// their shards, and the times they were found unreferenced. Anyone who can
// write it can at worst make Prune skip the grace period for packs that no
// manifest references, and could as well delete the shards directly.

const marksVersion = 1

// marksFile is the content of a marks object.
type marksFile struct {
	Version int         `json:"version"`
	Created time.Time   `json:"created"`
	Packs   []markEntry `json:"packs"` // by ID
}

type markEntry struct {
	ID     repo.ID   `json:"id"`
	Marked time.Time `json:"marked"` // when a prune first found it unreferenced
}

// PruneOptions tune Prune; the zero value is a valid default.
type PruneOptions struct {
	// Grace is how long a pack must have stayed marked as unreferenced
	// before it is deleted; default 1 hour. It must exceed the longest
	// backup or log capture write: a backup's new packs are unreferenced
	// until its snapshot is written, and a backup deduplicates against its
	// parent's blobs for as long as it runs.
	Grace time.Duration
	// DryRun computes everything and changes nothing; the result counts
	// what a real run would do.
	DryRun bool
	// Now is the clock that stamps and ages marks; default time.Now. It
	// must be trustworthy: a clock that jumps ahead deletes early.
	Now func() time.Time
	// CheckpointAge is how long a backup checkpoint (FORMAT.md §12.1)
	// keeps the packs its index files list referenced; older checkpoints
	// are deleted, and their packs then age out through the marks like
	// any other; default 72 hours. It must exceed ResumeMaxAge by more
	// than the longest backup.
	CheckpointAge time.Duration
	// Progress, when set, counts the snapshots and log segments whose
	// trees the reachability walk has read, out of all of them.
	Progress *Work
}

// validate checks the options and fills the defaults of zero fields.
func (o *PruneOptions) validate() error {
	if o.Grace < 0 {
		return fmt.Errorf("prune: grace %v: must not be negative", o.Grace)
	}
	if o.Grace == 0 {
		o.Grace = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckpointAge < 0 {
		return fmt.Errorf("prune: checkpoint age %v: must not be negative", o.CheckpointAge)
	}
	if o.CheckpointAge == 0 {
		o.CheckpointAge = 72 * time.Hour
	}
	return nil
}

// PruneResult is what Prune found and did (with DryRun: would do).
type PruneResult struct {
	Marked   int // packs found unreferenced for the first time
	Unmarked int // marked packs referenced again, so kept
	Pending  int // marked packs still within their grace period
	Deleted  int // packs whose shards were all deleted
	// DeletedPacks are the IDs of the deleted packs.
	DeletedPacks []repo.ID
	// RewrittenIndexes counts index files replaced by one without the
	// deleted packs; DeletedIndexes those removed without a replacement.
	RewrittenIndexes, DeletedIndexes int
	// ExpiredCheckpoints counts backup checkpoints older than
	// CheckpointAge, deleted after the sweep.
	ExpiredCheckpoints int
	// Deferred names objects the store refused to delete because they are
	// under retention (repo.ErrRetained). Their packs stay marked, and a
	// later Prune retries them.
	Deferred   []string
	FreedBytes int64 // bytes of the deleted shard objects
}

// Prune deletes data no snapshot or log segment references, in two phases
// across runs. A run first builds a complete view: every snapshot manifest,
// every index file, every list blob of every tree, every log segment
// manifest and the shards in the store. Anything unreadable aborts the run
// before it writes, because a partial view would make referenced packs look
// unreferenced.
//
// Mark: packs present in the store that no snapshot's tree and no segment
// manifest references are recorded with the time in a marks object
// (repo.PruneMarksPrefix); that covers packs of forgotten snapshots and
// segments, and packs, whole or partial, left by interrupted writers.
// Sweep: packs that a marks object recorded at least Grace ago and that are
// still unreferenced are deleted; marked packs referenced again are
// unmarked. Only the newest marks object counts; older ones are leftovers
// of an interrupted run and are deleted.
//
// Order, so that a crash at any point leaves every snapshot and segment
// restorable and a rerun finishes the work: (1) the new marks object, then
// the old ones are deleted; (2) each index file that lists a pack to
// delete is replaced: a new index file with the other packs is written
// before the old file is deleted (readers fall back to every index file
// when a snapshot's listed one is gone); (3) the shards of the packs, which
// no index file lists any more, are deleted.
//
// Deletes refused with repo.ErrRetained are reported in Deferred and leave
// their packs marked; they are not errors. Prune must not run concurrently
// with another Prune or with 'check --repair' (which would re-index packs
// between steps 2 and 3).
func Prune(ctx context.Context, r *repo.Repository, o PruneOptions) (*PruneResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	view, err := loadPruneView(ctx, r, o.Now().Add(-o.CheckpointAge), o.Progress)
	if err != nil {
		return nil, fmt.Errorf("prune: %w; nothing was changed", err)
	}
	st := r.Store()
	old, err := loadMarks(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("prune: %w; nothing was changed", err)
	}
	now := o.Now()
	res := &PruneResult{}

	// Decide. Packs to sweep stay in the new marks object until they are
	// gone, so that an interrupted sweep is finished by the next run.
	marks := map[repo.ID]time.Time{}
	var sweep []repo.ID
	for id, t := range old.packs {
		switch {
		case view.referenced[id]:
			res.Unmarked++
		case view.present[id] == nil && !view.listed[id]:
			// Already gone: an earlier sweep finished it.
		case now.Sub(t) >= o.Grace:
			sweep = append(sweep, id)
			marks[id] = t
		default:
			res.Pending++
			marks[id] = t
		}
	}
	for id := range view.present {
		if _, ok := old.packs[id]; !ok && !view.referenced[id] {
			marks[id] = now
			res.Marked++
		}
	}
	slices.SortFunc(sweep, repo.ID.Compare)

	// 1. Persist the marks, superseding every older marks object.
	if !o.DryRun {
		if err := writeMarks(ctx, st, marks, now, old, res); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	// 2. Replace the index files that list packs to delete.
	held, err := rewriteIndexes(ctx, r, view, sweep, o.DryRun, res)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	// 3. Delete the shards.
	if err := deletePacks(ctx, st, view, sweep, held, o.DryRun, res); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	// 4. Delete expired checkpoints: this run already counted their packs
	// as unreferenced.
	for _, name := range view.expired {
		if !o.DryRun {
			err := st.Delete(ctx, name)
			if errors.Is(err, repo.ErrRetained) {
				res.Deferred = append(res.Deferred, name)
				continue
			}
			if err != nil && !errors.Is(err, repo.ErrNotFound) {
				return res, fmt.Errorf("prune: delete %s: %w", name, err)
			}
		}
		res.ExpiredCheckpoints++
	}
	return res, nil
}

// pruneView is everything a prune decides from.
type pruneView struct {
	present    map[repo.ID]map[int]int64 // pack → shard → size
	files      map[repo.ID]*repo.IndexFile
	fileIDs    []repo.ID        // sorted
	listed     map[repo.ID]bool // packs some index file lists
	referenced map[repo.ID]bool // packs holding a reachable blob, segment packs, and packs of live checkpoints
	expired    []string         // checkpoints older than the cutoff
}

// loadPruneView builds the complete view, or fails: it never returns a
// partial one. Checkpoints created before cutoff are expired: they
// reference nothing.
func loadPruneView(ctx context.Context, r *repo.Repository, cutoff time.Time, progress *Work) (*pruneView, error) {
	v := &pruneView{files: map[repo.ID]*repo.IndexFile{}, listed: map[repo.ID]bool{}, referenced: map[repo.ID]bool{}}
	// The shards are listed first: a pack written after this listing is
	// not considered at all by this run.
	var err error
	if v.present, err = listShards(ctx, r, &CheckReport{}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read snapshots and log segments: %w (run 'strata check')", err)
	}
	if v.fileIDs, err = r.ListIDs(ctx, repo.IndexPrefix); err != nil {
		return nil, fmt.Errorf("list index files: %w", err)
	}
	slices.SortFunc(v.fileIDs, repo.ID.Compare)
	files := make([]*repo.IndexFile, len(v.fileIDs))
	if err := repo.ForEach(ctx, r.Store(), len(v.fileIDs), func(i int) (err error) {
		files[i], err = r.LoadIndex(ctx, v.fileIDs[i])
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w (run 'strata check --repair')", err)
	}
	lists := index.NewBlobIndex()
	for i, f := range files {
		v.files[v.fileIDs[i]] = f
		for _, p := range f.Packs {
			v.listed[p.ID] = true
		}
		lists.Add(f, func(e repo.IndexEntry) bool { return e.Type == repo.ListBlob })
	}
	lists.Seal()

	// Every blob reachable from a snapshot, data and list.
	reach := index.NewIDSet(1 << 16)
	br := newBlobReader(r, lists, 32)
	walks := int64(len(cat.Snapshots))
	for _, l := range cat.Logs {
		walks += int64(len(l.Segments))
	}
	progress.setTotal(walks)
	for _, s := range cat.Snapshots {
		if err := markTree(ctx, br, s.Tree, reach); err != nil {
			return nil, fmt.Errorf("snapshot %s (%s): %w", s.ID.Short(), s.Stream, err)
		}
		progress.add(1)
	}
	// Blob trees that snapshot exports name (S3 gateway bases: a bucket's
	// key table names the content of every version it holds).
	if err := markSnapshotTrees(ctx, r, cat.Snapshots, files, br, reach); err != nil {
		return nil, err
	}
	// A pack is referenced when it holds a reachable blob, at any of the
	// blob's locations: keeping duplicates is cheaper than betting on one.
	found := index.NewIDSet(reach.Len())
	for _, f := range files {
		for _, e := range f.Entries {
			if reach.Has(e.ID) {
				found.Add(e.ID)
				v.referenced[e.Pack] = true
			}
		}
	}
	if missing := reach.Len() - found.Len(); missing > 0 {
		return nil, fmt.Errorf("%w: %d blobs that snapshots need are in no index file (run 'strata check')", ErrMissingBlob, missing)
	}
	markKeyMaps(v, cat.Snapshots)

	// Every pack of an index file a live checkpoint names: an interrupted
	// backup's packs wait for the backup that resumes from them.
	if err := markCheckpoints(ctx, r, v, cutoff); err != nil {
		return nil, err
	}

	// Every log segment's pack, fenced segments' included: a manifest that
	// exists keeps its pack (check verifies it).
	var keys []repo.SegmentKey
	for _, l := range cat.Logs {
		keys = append(keys, l.All()...)
	}
	packs := make([]repo.ID, len(keys))
	if err := repo.ForEach(ctx, r.Store(), len(keys), func(i int) error {
		seg, err := r.LoadSegment(ctx, keys[i])
		if err == nil {
			packs[i] = seg.Pack.ID
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w (run 'strata check')", err)
	}
	for _, id := range packs {
		v.referenced[id] = true
	}
	// Blob trees that log events name (S3 gateway objects): every event a
	// stored segment holds may be read by a point-in-time view, so all of
	// their trees stay reachable while the segment exists.
	before := reach.Len()
	for _, l := range cat.Logs {
		trees := eventTreesFor(l.Stream)
		if trees == nil {
			progress.add(int64(len(l.Segments)))
			continue
		}
		for _, k := range l.Segments {
			progress.add(1)
			seg, err := r.LoadSegment(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("%w (run 'strata check')", err)
			}
			err = ReadSegment(ctx, r, k, seg, func(e *repo.Event) error {
				ts, err := trees(e)
				if err != nil {
					return err
				}
				for _, t := range ts {
					if err := markTree(ctx, br, t, reach); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("log segment %s: %w", k.Name(), err)
			}
		}
	}
	if reach.Len() > before {
		found := index.NewIDSet(reach.Len())
		for _, f := range files {
			for _, e := range f.Entries {
				if reach.Has(e.ID) {
					found.Add(e.ID)
					v.referenced[e.Pack] = true
				}
			}
		}
		if missing := reach.Len() - found.Len(); missing > 0 {
			return nil, fmt.Errorf("%w: %d blobs that snapshots or log events need are in no index file (run 'strata check')", ErrMissingBlob, missing)
		}
	}
	return v, nil
}

// EventTrees returns the blob trees one log event references. It MUST
// return every one (an error rather than a miss), since prune deletes
// what no tree reaches.
type EventTrees func(e *repo.Event) ([]repo.Tree, error)

var eventTrees = map[string]EventTrees{} // by stream prefix

// RegisterEventTrees declares that the events of every stream starting
// with prefix may reference blob trees, found by fn. Packages whose events
// hold trees (the S3 gateway) register from their init.
func RegisterEventTrees(prefix string, fn EventTrees) { eventTrees[prefix] = fn }

func eventTreesFor(stream string) EventTrees {
	for p, fn := range eventTrees {
		if strings.HasPrefix(stream, p) {
			return fn
		}
	}
	return nil
}

// SnapshotTrees calls fn with every blob tree that a snapshot's export,
// read from content, references beside the snapshot's own tree. It MUST
// call fn for every one, and return an error rather than skip a part it
// cannot read, since prune deletes what no tree reaches. It may stop
// reading early only with an error.
type SnapshotTrees func(content io.Reader, fn func(repo.Tree) error) error

var snapshotTrees = map[string]SnapshotTrees{} // by stream prefix

// RegisterSnapshotTrees declares that the exports of snapshots of every
// stream starting with prefix may reference blob trees, found by fn.
// Packages whose snapshots hold trees (the S3 gateway's bucket bases)
// register from their init.
func RegisterSnapshotTrees(prefix string, fn SnapshotTrees) { snapshotTrees[prefix] = fn }

func snapshotTreesFor(stream string) SnapshotTrees {
	for p, fn := range snapshotTrees {
		if strings.HasPrefix(stream, p) {
			return fn
		}
	}
	return nil
}

// SnapshotExportTrees reads the export of snap through loc and calls fn
// with the trees its registered SnapshotTrees finds; a snapshot of a
// stream without one names none.
func SnapshotExportTrees(ctx context.Context, r *repo.Repository, loc BlobLocator, snap *repo.Snapshot, fn func(repo.Tree) error) error {
	trees := snapshotTreesFor(snap.Stream)
	if trees == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		_, err := ReadContent(ctx, r, loc, snap.Tree, 0, -1, pw)
		pw.CloseWithError(err)
	}()
	err := trees(pr, fn)
	pr.CloseWithError(errors.New("export trees: reader stopped"))
	return err
}

// markSnapshotTrees adds the blobs of every tree that snapshot exports
// name to reach (SnapshotTrees); the snapshots' own trees are in reach.
func markSnapshotTrees(ctx context.Context, r *repo.Repository, snaps []index.SnapshotRef, files []*repo.IndexFile, br *blobReader, reach *index.IDSet) error {
	var full *index.BlobIndex // every blob, built only when a snapshot needs it
	for _, s := range snaps {
		if snapshotTreesFor(s.Stream) == nil {
			continue
		}
		if full == nil {
			full = index.NewBlobIndex()
			for _, f := range files {
				full.Add(f, nil)
			}
			full.Seal()
		}
		err := SnapshotExportTrees(ctx, r, full, s.Snapshot, func(t repo.Tree) error { return markTree(ctx, br, t, reach) })
		if err != nil {
			return fmt.Errorf("snapshot %s (%s): the trees its export names: %w", s.ID.Short(), s.Stream, err)
		}
	}
	return nil
}

// markTree adds every blob of a tree to reach. A list blob already in reach
// was walked with its subtree (its ID is the hash of its children), so
// shared subtrees of many snapshots are read once.
func markTree(ctx context.Context, br *blobReader, t repo.Tree, reach *index.IDSet) error {
	return walkTree(ctx, br, t, func(id repo.ID) error { reach.Add(id); return nil }, func(id repo.ID) error {
		if !reach.Add(id) {
			return errSkipSubtree
		}
		return nil
	})
}

// PruneMarks returns the packs the newest marks object records as
// unreferenced, with the time each was first found so: what the next
// Prune may delete once the grace period has passed. Retention tooling can
// leave them out when it extends object locks. An unreadable marks object
// reads as empty; one of an unknown version is an error wrapping
// repo.ErrUnsupportedVersion.
func PruneMarks(ctx context.Context, st repo.Store) (map[repo.ID]time.Time, error) {
	m, err := loadMarks(ctx, st)
	if err != nil {
		return nil, err
	}
	return m.packs, nil
}

// oldMarks is what the marks objects in the store say.
type oldMarks struct {
	names  []string // every marks object, ascending (oldest first)
	packs  map[repo.ID]time.Time
	newest int64 // unix nanoseconds in the newest name
}

// parseMarksName returns the stamp of a marks object name; only the
// 19-digit names PruneMarksName writes count.
func parseMarksName(name string) (int64, bool) {
	o, err := repo.ParseObject(name)
	return o.Stamp, err == nil && o.Kind == repo.KindPruneMarks && repo.PruneMarksName(o.Stamp) == name
}

// loadMarks reads the newest marks object. An unreadable one counts as
// empty (that only delays deletion); one of a newer version is an error.
func loadMarks(ctx context.Context, st repo.Store) (*oldMarks, error) {
	m := &oldMarks{packs: map[repo.ID]time.Time{}}
	err := st.List(ctx, repo.PruneMarksPrefix, func(oi repo.ObjectInfo) error {
		if ns, ok := parseMarksName(oi.Name); ok {
			m.names = append(m.names, oi.Name)
			m.newest = max(m.newest, ns)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list prune marks: %w", err)
	}
	if len(m.names) == 0 {
		return m, nil
	}
	name := repo.PruneMarksName(m.newest)
	b, err := st.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read prune marks: %w", err)
	}
	var f marksFile
	if json.Unmarshal(b, &f) != nil {
		return m, nil
	}
	if f.Version != marksVersion {
		return nil, fmt.Errorf("%s: %w: prune marks version %d", name, repo.ErrUnsupportedVersion, f.Version)
	}
	for _, e := range f.Packs {
		if t, ok := m.packs[e.ID]; !ok || e.Marked.Before(t) {
			m.packs[e.ID] = e.Marked
		}
	}
	return m, nil
}

// writeMarks stores marks as the newest marks object, then deletes the
// older ones. With no marks left it still writes an empty object first when
// older ones exist, so that an interruption never leaves a stale one
// newest, and then deletes that too.
func writeMarks(ctx context.Context, st repo.Store, marks map[repo.ID]time.Time, now time.Time, old *oldMarks, res *PruneResult) error {
	if len(marks) == 0 && len(old.names) == 0 {
		return nil
	}
	// Newer than every existing one even if the clock went back.
	name := repo.PruneMarksName(max(now.UnixNano(), old.newest+1))
	f := marksFile{Version: marksVersion, Created: now.UTC(), Packs: make([]markEntry, 0, len(marks))}
	for id, t := range marks {
		f.Packs = append(f.Packs, markEntry{ID: id, Marked: t.UTC()})
	}
	slices.SortFunc(f.Packs, func(a, b markEntry) int { return a.ID.Compare(b.ID) })
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, name, b); err != nil {
		return fmt.Errorf("write prune marks: %w", err)
	}
	superseded := slices.Clone(old.names)
	if len(marks) == 0 {
		superseded = append(superseded, name) // deleted last
	}
	for _, n := range superseded {
		if err := st.Delete(ctx, n); errors.Is(err, repo.ErrRetained) {
			res.Deferred = append(res.Deferred, n)
		} else if err != nil {
			return fmt.Errorf("delete old prune marks: %w", err)
		}
	}
	return nil
}

// rewriteIndexes replaces every index file that lists a pack in sweep by
// one without those packs, written before the old file is deleted. Packs
// another surviving index file lists are left out of the replacement, so
// that rerunning after an interruption (or while an old file is retained)
// adds no duplicate files. It returns the packs held back because an index
// file listing them could not be deleted: their shards must stay, or that
// file would list missing packs.
func rewriteIndexes(ctx context.Context, r *repo.Repository, v *pruneView, sweep []repo.ID, dryRun bool, res *PruneResult) (map[repo.ID]bool, error) {
	gone := map[repo.ID]bool{}
	for _, id := range sweep {
		gone[id] = true
	}
	covered := map[repo.ID]bool{} // packs listed by index files that stay
	var touched []repo.ID
	for _, id := range v.fileIDs {
		f := v.files[id]
		if slices.ContainsFunc(f.Packs, func(p repo.PackInfo) bool { return gone[p.ID] }) {
			touched = append(touched, id)
			continue
		}
		for _, p := range f.Packs {
			covered[p.ID] = true
		}
	}
	held := map[repo.ID]bool{}
	for _, id := range touched {
		f := v.files[id]
		nf := &repo.IndexFile{}
		keep := map[repo.ID]bool{}
		for _, p := range f.Packs {
			if !gone[p.ID] && !covered[p.ID] {
				nf.Packs = append(nf.Packs, p)
				keep[p.ID] = true
			}
		}
		if len(nf.Packs) > 0 {
			for _, e := range f.Entries {
				if keep[e.Pack] {
					nf.Entries = append(nf.Entries, e)
				}
			}
			if !dryRun {
				if _, err := r.SaveIndex(ctx, nf); err != nil {
					return nil, err
				}
			}
			for id := range keep {
				covered[id] = true
			}
		}
		if !dryRun {
			name := repo.IndexName(id)
			err := r.Store().Delete(ctx, name)
			if errors.Is(err, repo.ErrRetained) {
				res.Deferred = append(res.Deferred, name)
				for _, p := range f.Packs {
					if gone[p.ID] {
						held[p.ID] = true
					}
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("delete index %s: %w", id.Short(), err)
			}
		}
		if len(nf.Packs) > 0 {
			res.RewrittenIndexes++
		} else {
			res.DeletedIndexes++
		}
	}
	return held, nil
}

// deletePacks deletes every shard of the packs in sweep but those held.
func deletePacks(ctx context.Context, st repo.Store, v *pruneView, sweep []repo.ID, held map[repo.ID]bool, dryRun bool, res *PruneResult) error {
	var mu sync.Mutex
	err := repo.ForEach(ctx, st, len(sweep), func(i int) error {
		id := sweep[i]
		shards := v.present[id]
		if held[id] || len(shards) == 0 {
			return nil
		}
		var freed int64
		var retained []string
		for _, n := range slices.Sorted(maps.Keys(shards)) {
			name := repo.ShardName(id, n)
			if !dryRun {
				err := st.Delete(ctx, name)
				if errors.Is(err, repo.ErrRetained) {
					retained = append(retained, name)
					continue
				}
				if err != nil {
					return fmt.Errorf("delete pack %s: %w", id.Short(), err)
				}
			}
			freed += shards[n]
		}
		mu.Lock()
		defer mu.Unlock()
		res.FreedBytes += freed
		res.Deferred = append(res.Deferred, retained...)
		if len(retained) == 0 {
			res.Deleted++
			res.DeletedPacks = append(res.DeletedPacks, id)
		}
		return nil
	})
	slices.SortFunc(res.DeletedPacks, repo.ID.Compare)
	slices.Sort(res.Deferred)
	return err
}

// markCheckpoints marks the packs of live checkpoints' index files as
// referenced and records the expired checkpoints. A checkpoint that cannot
// be read aborts the run, as any unreadable manifest does: its packs might
// be about to be reused. An index file it names that no longer exists
// references nothing (a resuming backup skips it too).
func markCheckpoints(ctx context.Context, r *repo.Repository, v *pruneView, cutoff time.Time) error {
	type ref struct {
		stream string
		id     repo.ID
	}
	var refs []ref
	err := r.Store().List(ctx, repo.CheckpointsPrefix, func(oi repo.ObjectInfo) error {
		stream, id, err := repo.ParseCheckpointName(oi.Name)
		if err != nil {
			return fmt.Errorf("%s: unexpected object name under %s", oi.Name, repo.CheckpointsPrefix)
		}
		refs = append(refs, ref{stream, id})
		return nil
	})
	if err != nil {
		return fmt.Errorf("list checkpoints: %w", err)
	}
	cps := make([]*repo.Checkpoint, len(refs))
	if err := repo.ForEach(ctx, r.Store(), len(refs), func(i int) (err error) {
		cps[i], err = r.LoadCheckpoint(ctx, refs[i].stream, refs[i].id)
		return err
	}); err != nil {
		return fmt.Errorf("%w (run 'strata check')", err)
	}
	for i, cp := range cps {
		if cp.Created.Before(cutoff) {
			v.expired = append(v.expired, repo.CheckpointName(refs[i].stream, refs[i].id))
			continue
		}
		for _, f := range cp.Indexes {
			if file := v.files[f]; file != nil {
				for _, p := range file.Packs {
					v.referenced[p.ID] = true
				}
			}
		}
	}
	return nil
}
