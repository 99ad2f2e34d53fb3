package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/shard"
	"golang.org/x/sync/errgroup"
)

// CheckOptions choose how deep a check goes. The zero value checks structure.
type CheckOptions struct {
	ReadData bool // read every shard and verify every blob
	Repair   bool // rewrite a damaged metadata object from its copy, rebuild missing or corrupt shards from parity, re-index unindexed packs
	Workers  int  // packs read in parallel with ReadData; default 2
	// Select, with ReadData, chooses the packs to read from every pack
	// the check knows (indexed and of log segments), given in ID order;
	// nil reads them all. It MUST return a subset of its argument. The
	// structural checks (shards listed, snapshots, segments) still cover
	// the whole repository. Subset.Select and scrubs (Scrub) make one.
	Select func(packs []repo.PackInfo) []repo.PackInfo
	// Progress, when set, counts the bytes of the shards ReadData reads:
	// its total once the packs to read are known.
	Progress *Work
}

// CheckReport is what a check found. Problems are damage that remains;
// Repaired is damage fixed by this run; Notes are harmless findings.
type CheckReport struct {
	Problems                                 []string
	Repaired                                 []string
	Notes                                    []string
	Packs, Shards, Indexes, Snapshots, Blobs int
	Segments                                 int // log segment manifests
	// PacksRead and BytesRead are what ReadData read (all of their shards);
	// BadShards counts the shards found missing or damaged, by listing
	// or by reading, and ShardsRepaired those of them rebuilt from parity.
	PacksRead      int
	BytesRead      int64
	BadShards      int
	ShardsRepaired int
}

// badShards records which shards of which packs were found missing or
// damaged, so each is counted once however many ways it was found.
type badShards map[repo.ID]map[int]bool

func (b badShards) add(id repo.ID, idx ...int) {
	if len(idx) == 0 {
		return
	}
	if b[id] == nil {
		b[id] = map[int]bool{}
	}
	for _, i := range idx {
		b[id][i] = true
	}
}

func (b badShards) count() int {
	n := 0
	for _, m := range b {
		n += len(m)
	}
	return n
}

func (c *CheckReport) problem(format string, args ...any) {
	c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
}

// Check verifies the repository. It returns an error only when it could not
// run (the store failed); damage is in the report.
func Check(ctx context.Context, r *repo.Repository, o CheckOptions) (*CheckReport, error) {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	rep := &CheckReport{}
	// Metadata copies first (FORMAT.md §25), so that everything after reads
	// a repaired repository.
	if err := checkCopies(ctx, r, o.Repair, rep); err != nil {
		return nil, err
	}
	if _, err := r.ListKeys(ctx); err != nil {
		if !errors.Is(err, repo.ErrCorrupt) {
			return nil, err
		}
		rep.problem("keys: %v", err) // the error's hint says what helps: key files have no parity
	}

	// Index files, then the shards present in the store, by pack.
	ix, badIndexes, err := loadIndexFiles(ctx, r, rep)
	if err != nil {
		return nil, err
	}
	present, err := listShards(ctx, r, rep)
	if err != nil {
		return nil, err
	}
	// Snapshots and log segments. Segment packs are referenced by their
	// manifests, not by index files: they are neither unindexed nor
	// re-indexed.
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		var ce *repo.CorruptError
		if !errors.As(err, &ce) && !errors.Is(err, repo.ErrUnsupportedVersion) && !errors.Is(err, repo.ErrCorrupt) {
			return nil, err
		}
		rep.problem("manifests: %v", err)
	}
	if cat == nil {
		cat = &index.Catalog{Logs: map[string]*index.Log{}}
	}
	segs, err := checkLogs(ctx, r, cat, o.Repair, rep)
	if err != nil {
		return nil, err
	}
	segPacks := segmentPacks(segs)
	unindexed := unindexedPacks(ix, present, segPacks)
	if o.Repair && (len(unindexed) > 0 || len(badIndexes) > 0) {
		// Re-index first, so the rest of the check sees the repaired index.
		if err := reindex(ctx, r, unindexed, badIndexes, rep); err != nil {
			return rep, err
		}
		ixRep := &CheckReport{}
		if ix, _, err = loadIndexFiles(ctx, r, ixRep); err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, ixRep.Problems...)
		unindexed = unindexedPacks(ix, present, segPacks)
	}
	rep.Indexes = ix.Files
	rep.Blobs = ix.Len()
	var damaged []repo.PackInfo
	bad := badShards{}
	for _, pi := range allPacks(ix, segs) {
		rep.Packs++
		want := shard.NewHeader(pi.K, pi.M, pi.Length, pi.ID).Size()
		var lost []string
		for i := 0; i < pi.K+pi.M; i++ {
			size, ok := present[pi.ID][i]
			switch {
			case !ok:
				lost = append(lost, fmt.Sprintf("shard %d missing", i))
				bad.add(pi.ID, i)
			case size != want:
				lost = append(lost, fmt.Sprintf("shard %d is %d bytes, want %d", i, size, want))
				bad.add(pi.ID, i)
			default:
				rep.Shards++
			}
		}
		if len(lost) > 0 {
			damaged = append(damaged, pi)
			sev := "repairable from parity"
			if len(lost) > pi.M {
				sev = fmt.Sprintf("NOT recoverable: more than %d shards lost", pi.M)
			}
			if sp := segPacks[pi.ID]; sp != nil {
				sev += "; the pack of " + segLabel(sp.key)
			}
			rep.problem("pack %s: %v (%s)", pi.ID.Short(), lost, sev)
		}
	}
	// Snapshots: every tree node readable, every data blob indexed.
	rep.Snapshots = len(cat.Snapshots)
	br := newBlobReader(r, ix.BlobIndex, 32)
	for _, s := range cat.Snapshots {
		missing := 0
		var first repo.ID
		var ids []repo.ID // the data blobs in order, for the key map
		err := walkTree(ctx, br, s.Tree, func(id repo.ID) error {
			if s.KeyMap != nil {
				ids = append(ids, id)
			}
			if _, _, ok := ix.Lookup(id); !ok {
				if missing == 0 {
					first = id
				}
				missing++
			}
			return nil
		}, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.problem("snapshot %s (%s): blob tree unreadable: %v", s.ID.Short(), s.Stream, err)
		}
		if missing > 0 {
			rep.problem("snapshot %s (%s): %d data blobs missing from the index, first %s", s.ID.Short(), s.Stream, missing, first.Short())
		}
		if s.KeyMap != nil && err == nil {
			for _, p := range checkKeyMap(ctx, r, s, ids, ix.BlobIndex) {
				rep.problem("%s", p)
			}
		}
		if err := checkLabel(ctx, r, s, o.Repair, rep); err != nil {
			return nil, err
		}
		// Trees the export names (S3 gateway bases), as for log events.
		if missing == 0 && err == nil {
			n := 0
			err := SnapshotExportTrees(ctx, r, ix.BlobIndex, s.Snapshot, func(t repo.Tree) error {
				n++
				missing := 0
				err := walkTree(ctx, br, t, func(id repo.ID) error {
					if _, _, ok := ix.Lookup(id); !ok {
						missing++
					}
					return nil
				}, nil)
				if err != nil {
					rep.problem("snapshot %s (%s): tree %d its export names: unreadable: %v", s.ID.Short(), s.Stream, n, err)
				} else if missing > 0 {
					rep.problem("snapshot %s (%s): tree %d its export names: %d data blobs missing from the index", s.ID.Short(), s.Stream, n, missing)
				}
				return nil
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				rep.problem("snapshot %s (%s): export unreadable: %v", s.ID.Short(), s.Stream, err)
			}
		}
	}

	// Blob trees that log events name (S3 gateway objects): every tree
	// node readable, every data blob indexed, as for snapshots.
	for _, cs := range segs {
		trees := eventTreesFor(cs.key.Stream)
		if trees == nil {
			continue
		}
		err := ReadSegment(ctx, r, cs.key, cs.seg, func(e *repo.Event) error {
			ts, err := trees(e)
			if err != nil {
				rep.problem("%s: event %d: %v", segLabel(cs.key), e.Seq, err)
				return nil
			}
			for _, t := range ts {
				missing := 0
				err := walkTree(ctx, br, t, func(id repo.ID) error {
					if _, _, ok := ix.Lookup(id); !ok {
						missing++
					}
					return nil
				}, nil)
				if err != nil {
					rep.problem("%s: event %d (key %q): blob tree unreadable: %v", segLabel(cs.key), e.Seq, e.Key, err)
				} else if missing > 0 {
					rep.problem("%s: event %d (key %q): %d data blobs missing from the index", segLabel(cs.key), e.Seq, e.Key, missing)
				}
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.problem("%s: events unreadable: %v", segLabel(cs.key), err)
		}
	}
	if err := checkOrphanLabels(ctx, r, o.Repair, rep); err != nil {
		return nil, err
	}

	if o.ReadData {
		if err := readAllData(ctx, r, ix, segs, o, rep, &damaged, bad); err != nil {
			return nil, err
		}
	}

	if o.Repair {
		repairPacks(ctx, r, damaged, rep)
	}
	rep.BadShards = bad.count()
	if len(unindexed) > 0 {
		// Without reading them, what they hold is unknown: say every cause.
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d packs are in no index file and named by no segment manifest: packs of log segments that forget removed (prune deletes them), packs left by an interrupted backup or log capture, or packs of a damaged index file (--repair re-indexes those that hold data)", len(unindexed)))
	}
	return rep, nil
}

// loadIndexFiles reads every index file into one blob index. Unreadable
// files are problems in rep, and returned so a re-index can replace them;
// a failure of the store itself aborts the check.
func loadIndexFiles(ctx context.Context, r *repo.Repository, rep *CheckReport) (*checkIndex, []repo.ID, error) {
	ix, n, err := index.Load(ctx, r, nil)
	var le *index.LoadError
	if err != nil && !errors.As(err, &le) {
		return nil, nil, err
	}
	var bad []repo.ID
	if le != nil {
		for _, id := range le.IDs() {
			ferr := le.Failed[id]
			if !errors.Is(ferr, repo.ErrCorrupt) && !errors.Is(ferr, repo.ErrUnsupportedVersion) {
				return nil, nil, ferr
			}
			rep.problem("index %s: %v", id.Short(), ferr)
			bad = append(bad, id)
		}
	}
	return &checkIndex{BlobIndex: ix, Files: n}, bad, nil
}

// checkIndex is the blob index of every readable index file.
type checkIndex struct {
	*index.BlobIndex
	Files int // index files read
}

// listShards returns the shard objects in the store: pack → shard → size.
func listShards(ctx context.Context, r *repo.Repository, rep *CheckReport) (map[repo.ID]map[int]int64, error) {
	present := map[repo.ID]map[int]int64{}
	err := r.Store().List(ctx, repo.DataPrefix, func(oi repo.ObjectInfo) error {
		id, i, err := repo.ParseShardName(oi.Name)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("unexpected object %s", oi.Name))
			return nil
		}
		if present[id] == nil {
			present[id] = map[int]int64{}
		}
		present[id][i] = oi.Size
		return nil
	})
	return present, err
}

// unindexedPacks returns the packs with shards in the store that no index
// file lists and no segment manifest names, in ID order.
func unindexedPacks(ix *checkIndex, present map[repo.ID]map[int]int64, segPacks map[repo.ID]*checkedSegment) []repo.ID {
	indexed := map[repo.ID]bool{}
	for _, pi := range ix.Packs() {
		indexed[pi.ID] = true
	}
	var out []repo.ID
	for id := range present {
		if !indexed[id] && segPacks[id] == nil {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Compare(out[b]) < 0 })
	return out
}

// readAllData reads every indexed pack and every log segment's pack,
// verifies shards, the trailer against the index, every blob against its
// ID, and the events of every segment (ReadSegment).
func readAllData(ctx context.Context, r *repo.Repository, ix *checkIndex, segs []checkedSegment, o CheckOptions, rep *CheckReport, damaged *[]repo.PackInfo, bad badShards) error {
	segPacks := segmentPacks(segs)
	// Group index entries by pack so each pack is compared once.
	byPack := map[repo.ID][]repo.IndexEntry{}
	ix.Each(func(e repo.IndexEntry, _ repo.PackInfo) { byPack[e.Pack] = append(byPack[e.Pack], e) })
	already := map[repo.ID]bool{}
	for _, pi := range *damaged {
		already[pi.ID] = true
	}
	all := allPacks(ix, segs)
	slices.SortFunc(all, func(a, b repo.PackInfo) int { return a.ID.Compare(b.ID) })
	if o.Select != nil {
		all = o.Select(all)
	}
	var total int64
	for _, pi := range all {
		total += packBytes(pi)
	}
	o.Progress.setTotal(total)
	var mu sync.Mutex
	var fatal error // the first store failure; the other packs are still read
	var g errgroup.Group
	g.SetLimit(o.Workers)
	for _, pi := range all {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			problems, srep, pack, err := verifyPack(ctx, r, pi, byPack[pi.ID])
			shardDamage := srep.Damaged()
			if sp := segPacks[pi.ID]; sp != nil && err == nil {
				var more []string
				more, err = verifySegment(r, sp, pack)
				problems = append(problems, more...)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && fatal == nil {
				fatal = err
			}
			rep.Problems = append(rep.Problems, problems...)
			rep.PacksRead++
			rep.BytesRead += packBytes(pi)
			o.Progress.add(packBytes(pi))
			bad.add(pi.ID, srep.Missing...)
			bad.add(pi.ID, slices.Collect(maps.Keys(srep.Bad))...)
			if shardDamage && !already[pi.ID] {
				*damaged = append(*damaged, pi)
				already[pi.ID] = true
			}
			return nil
		})
	}
	_ = g.Wait() // every failure is in fatal or rep.Problems
	if fatal != nil {
		return fatal
	}
	return ctx.Err()
}

// verifyPack reads one pack whole. It reports problems as text, and
// whether the pack could be read back at all; err is only for failures of
// the store itself.
func verifyPack(ctx context.Context, r *repo.Repository, pi repo.PackInfo, entries []repo.IndexEntry) (problems []string, srep shard.Report, pack []byte, err error) {
	name := "pack " + pi.ID.Short()
	pack, srep, err = r.ReadPack(ctx, pi)
	for _, b := range srep.Problems() {
		problems = append(problems, fmt.Sprintf("%s: %s", name, b))
	}
	if err != nil {
		if errors.Is(err, shard.ErrTooFewShards) || errors.Is(err, repo.ErrCorrupt) {
			return append(problems, fmt.Sprintf("%s: NOT recoverable: %v", name, err)), srep, nil, nil
		}
		return problems, srep, nil, err
	}
	frames, err := r.ParseTrailer(name, pack)
	if err != nil {
		return append(problems, err.Error()), srep, pack, nil
	}
	inTrailer := map[repo.ID]repo.IndexEntry{}
	for _, e := range repo.EntriesFor(pi.ID, frames) {
		inTrailer[e.ID] = e
	}
	for _, e := range entries {
		t, ok := inTrailer[e.ID]
		if !ok || t != e {
			problems = append(problems, fmt.Sprintf("%s: index entry for blob %s does not match the pack trailer", name, e.ID.Short()))
		}
	}
	for _, f := range frames {
		raw := 0
		for _, b := range f.Blobs {
			raw += int(b.Len)
		}
		plain, err := r.OpenFrame(pack[f.Offset:f.Offset+f.Length], raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: frame at %d: %v", name, f.Offset, err))
			continue
		}
		off := 0
		for _, b := range f.Blobs {
			if r.BlobID(b.Type, plain[off:off+int(b.Len)]) != b.ID {
				problems = append(problems, fmt.Sprintf("%s: blob %s at frame %d does not match its ID", name, b.ID.Short(), f.Offset))
			}
			off += int(b.Len)
		}
	}
	return problems, srep, pack, nil
}

func repairPacks(ctx context.Context, r *repo.Repository, damaged []repo.PackInfo, rep *CheckReport) {
	for _, pi := range damaged {
		done, err := r.RepairPack(ctx, pi)
		if err != nil {
			rep.problem("repair pack %s: %v", pi.ID.Short(), err)
			continue
		}
		if len(done) > 0 {
			rep.ShardsRepaired += len(done)
			rep.Repaired = append(rep.Repaired, fmt.Sprintf("pack %s: rebuilt shards %v from parity", pi.ID.Short(), done))
		}
	}
	// Problems about packs that are now whole are no longer problems.
	if len(rep.Repaired) > 0 {
		rep.Problems = filterRepaired(rep.Problems, damaged, rep)
	}
}

// filterRepaired drops problems that name a pack repaired by this run.
func filterRepaired(problems []string, damaged []repo.PackInfo, rep *CheckReport) []string {
	fixed := map[string]bool{}
	for _, s := range rep.Repaired {
		if len(s) > 13 {
			fixed[s[5:13]] = true // "pack XXXXXXXX: …"
		}
	}
	var out []string
	for _, p := range problems {
		if len(p) > 13 && p[:5] == "pack " && fixed[p[5:13]] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// reindex writes a new index file for packs no index lists, from their
// trailers, then removes the index files that were unreadable, but only when
// every pack was re-indexed: the trailers are the source of truth, and a
// damaged index file is all that remains if one is not.
func reindex(ctx context.Context, r *repo.Repository, packs []repo.ID, badIndexes []repo.ID, rep *CheckReport) error {
	f := &repo.IndexFile{}
	cfg := r.Config()
	failed := 0
	for _, id := range packs {
		// Read the shard header for k and m: the pack may predate a config change.
		pi := repo.PackInfo{ID: id, K: cfg.DataShards, M: cfg.ParityShards}
		hdr, err := readShardHeader(ctx, r, id, pi.K+pi.M)
		if err != nil {
			rep.problem("re-index pack %s: %v", id.Short(), err)
			failed++
			continue
		}
		pi.K, pi.M, pi.Length = hdr.K, hdr.M, hdr.PackLen
		pack, _, err := r.ReadPack(ctx, pi)
		if err != nil {
			rep.problem("re-index pack %s: %v", id.Short(), err)
			failed++
			continue
		}
		frames, err := r.ParseTrailer("pack "+id.Short(), pack)
		if err != nil {
			rep.problem("re-index pack %s: %v", id.Short(), err)
			failed++
			continue
		}
		if holdsLogBlobs(frames) {
			// Index files take data and list blobs only. A log pack no
			// manifest names is one whose segment forget removed, or one
			// an interrupted capture left; prune removes it.
			rep.Notes = append(rep.Notes, fmt.Sprintf("pack %s holds log events that no segment manifest names (its segment was forgotten, or a log capture was interrupted; not re-indexed, prune removes it)", id.Short()))
			continue
		}
		f.Packs = append(f.Packs, pi)
		f.Entries = append(f.Entries, repo.EntriesFor(id, frames)...)
	}
	if len(f.Packs) > 0 {
		newID, err := r.SaveIndex(ctx, f)
		if err != nil {
			return err
		}
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("index %s: re-indexed %d packs from their trailers", newID.Short(), len(f.Packs)))
	}
	if failed > 0 {
		return nil
	}
	for _, id := range badIndexes {
		if err := r.Store().Delete(ctx, repo.IndexName(id)); err != nil {
			return err
		}
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("index %s: removed the damaged file (its packs are indexed elsewhere)", id.Short()))
	}
	rep.Problems = dropPrefix(rep.Problems, "index ")
	return nil
}

func dropPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if len(s) < len(prefix) || s[:len(prefix)] != prefix {
			out = append(out, s)
		}
	}
	return out
}

// readShardHeader returns the header of the first shard of a pack that verifies.
func readShardHeader(ctx context.Context, r *repo.Repository, id repo.ID, maxShards int) (shard.Header, error) {
	var last error = fmt.Errorf("no shard found")
	for i := 0; i < 255; i++ {
		b, err := r.Store().Get(ctx, repo.ShardName(id, i))
		if errors.Is(err, repo.ErrNotFound) {
			if i >= maxShards {
				break
			}
			continue
		}
		if err != nil {
			return shard.Header{}, err
		}
		h, err := shard.Verify(b)
		if err == nil {
			return h, nil
		}
		last = err
	}
	return shard.Header{}, last
}

func holdsLogBlobs(frames []repo.PackFrame) bool {
	for _, f := range frames {
		for _, b := range f.Blobs {
			if b.Type == repo.LogBlob {
				return true
			}
		}
	}
	return false
}

// checkedSegment is a log segment whose manifest loaded.
type checkedSegment struct {
	key repo.SegmentKey
	seg *repo.Segment
}

func segLabel(k repo.SegmentKey) string {
	return fmt.Sprintf("log %s segment %d-%d (%s)", k.Stream, k.First, k.Last, k.ID.Short())
}

// checkLogs loads every segment manifest (hash, authentication, name),
// checks that each segment chains to the one before it within a contiguous
// run, and reports overlaps as problems and gaps as notes. It returns the
// segments that loaded; err is only for failures of the store itself.
func checkLogs(ctx context.Context, r *repo.Repository, cat *index.Catalog, repair bool, rep *CheckReport) ([]checkedSegment, error) {
	var out []checkedSegment
	for _, stream := range slices.Sorted(maps.Keys(cat.Logs)) {
		l := cat.Logs[stream]
		// keys are the segments a restore reads: l.Segments, with the
		// replacement in place of each twin group's first member.
		keys := l.Segments
		var loaded []*repo.Segment
		if len(l.Twins) > 0 {
			var twins []checkedSegment
			var err error
			l, keys, loaded, twins, err = checkTwins(ctx, r, l, rep)
			if err != nil {
				return nil, err
			}
			out = append(out, twins...)
		}
		errs := make([]error, len(keys))
		if loaded == nil {
			loaded = make([]*repo.Segment, len(keys))
			if err := repo.ForEach(ctx, r.Store(), len(keys), func(i int) error {
				loaded[i], errs[i] = r.LoadSegment(ctx, keys[i])
				return nil
			}); err != nil {
				return nil, err
			}
		}
		rep.Segments += len(keys)
		for i, k := range keys {
			if loaded[i] == nil && errs[i] == nil {
				continue // a twin group's member that failed: reported by checkTwins
			}
			switch err := errs[i]; {
			case err == nil:
				out = append(out, checkedSegment{key: k, seg: loaded[i]})
			case errors.Is(err, repo.ErrNotFound):
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: removed while the check ran", segLabel(k)))
			case errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrUnsupportedVersion):
				rep.problem("%s: %v", segLabel(k), err)
			default:
				return nil, err
			}
		}
		// The first segment of a run may name a segment forget removed, or
		// one before a gap: only links inside a run are checked.
		for i := 1; i < len(keys); i++ {
			a, b := keys[i-1], keys[i]
			switch s := loaded[i]; {
			case b.First == a.Last+1 && s != nil && !s.Follows(a.ID, loaded[i-1]):
				prev := "none"
				if s.Prev != nil {
					prev = s.Prev.Short()
				}
				rep.problem("%s: does not chain to %s, the segment before it (its prev is %s): a segment was replaced, or two writers", segLabel(b), segLabel(a), prev)
			case b.First > a.Last+1 && s != nil && s.Prev != nil && !s.Follows(a.ID, loaded[i-1]):
				// A capture chains every segment to the newest one it stored,
				// a recorded gap included, and forget removes only a prefix:
				// the segment its prev names was stored and is gone.
				rep.problem("%s: the segment manifest before it is missing: its prev names %s, not %s; positions %d-%d are lost (segment manifests have no parity; the pack of the missing one may remain)",
					segLabel(b), s.Prev.Short(), segLabel(a), a.Last+1, b.First-1)
			case b.First > a.Last+1:
				note := fmt.Sprintf("log %s: positions %d-%d missing between %s and %s", stream, a.Last+1, b.First-1,
					index.FormatTime(time.Unix(0, a.LastTime)), index.FormatTime(time.Unix(0, b.FirstTime)))
				if s != nil && s.Gap != "" {
					note += " (the capture recorded: " + s.Gap + ")"
				}
				rep.Notes = append(rep.Notes, note)
			}
		}
		// Before the first segment: forget removes segments no kept snapshot
		// needs, so a missing predecessor is damage only when a snapshot of
		// the stream needs its positions.
		if len(keys) > 0 && loaded[0] != nil && loaded[0].Prev != nil {
			first := keys[0]
			for _, sn := range cat.Stream(stream) {
				if sn.Position != nil && *sn.Position+1 < first.First {
					rep.problem("%s: the segment manifest before it is missing: its prev names %s, and snapshot %s (position %d) needs positions %d-%d",
						segLabel(first), loaded[0].Prev.Short(), sn.ID.Short(), *sn.Position, *sn.Position+1, first.First-1)
					break
				}
			}
		}
		if repair && len(l.Conflicts) > 0 {
			removed, err := resolveOverlaps(ctx, r, l, loaded, rep)
			if err != nil {
				return nil, err
			}
			out = slices.DeleteFunc(out, func(c checkedSegment) bool { return removed[c.key.ID] })
		} else {
			for _, c := range l.Conflicts {
				rep.problem("log %s: overlapping segments (two writers?): %s ('strata check --repair' keeps the chain that restores and removes the other writer's segments)", stream, c)
			}
		}
		// Fenced segments are a deposed writer's: verified like the rest
		// (their packs are referenced, not garbage), never read by a restore.
		for _, k := range l.Fenced {
			rep.Segments++
			s, err := r.LoadSegment(ctx, k)
			switch {
			case err == nil:
				out = append(out, checkedSegment{key: k, seg: s})
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: fenced out: sealed by a writer at epoch %d after a writer with a higher epoch took the stream over at or before position %d; no restore reads it (FORMAT.md §15)",
					segLabel(k), k.Epoch, k.Last))
			case errors.Is(err, repo.ErrNotFound):
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: removed while the check ran", segLabel(k)))
			case errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrUnsupportedVersion):
				rep.problem("%s (fenced out): %v", segLabel(k), err)
			default:
				return nil, err
			}
		}
	}
	return out, nil
}

// checkTwins decides each twin group of l (index.Log.Twins: manifests
// whose names agree but for the ID) on the manifests, as a restore does
// (resolveTwins). A group that is one replacement chain is a re-encryption
// cut short, reported as a note: keys holds its replacement, loaded its
// manifest, and the replaced members are verified too and returned as
// twins (their packs are referenced until they go). When some group is
// not (two writers' segments), or l has overlaps besides, l comes back
// Unfolded, keys its Segments and loaded nil, so the caller reports and
// repairs the overlap as any other. Only failures of the store itself
// are returned as err.
func checkTwins(ctx context.Context, r *repo.Repository, l *index.Log, rep *CheckReport) (_ *index.Log, keys []repo.SegmentKey, loaded []*repo.Segment, twins []checkedSegment, _ error) {
	if len(l.Conflicts) > 0 {
		// Overlaps besides: repair decides them all by their chains, which
		// follow replacements (resolveOverlaps).
		u := l.Unfolded()
		return u, u.Segments, nil, nil, nil
	}
	// Findings go to rep only when the groups are decided here: an
	// unfolded log is checked again from the start by the caller.
	var sub CheckReport
	all := make([]repo.SegmentKey, 0, len(l.Segments)+len(l.Twins))
	for _, k := range l.Segments {
		if g := l.Group(k); g != nil {
			all = append(all, g...)
		} else {
			all = append(all, k)
		}
	}
	segs := make([]*repo.Segment, len(all))
	errs := make([]error, len(all))
	if err := repo.ForEach(ctx, r.Store(), len(all), func(i int) error {
		segs[i], errs[i] = r.LoadSegment(ctx, all[i])
		return nil
	}); err != nil {
		return nil, nil, nil, nil, err
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, repo.ErrNotFound) && !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrUnsupportedVersion) {
			return nil, nil, nil, nil, fmt.Errorf("%s: %w", all[i].Name(), err)
		}
	}
	keys = make([]repo.SegmentKey, 0, len(l.Segments))
	loaded = make([]*repo.Segment, 0, len(l.Segments))
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && index.SameName(all[i], all[j]) {
			j++
		}
		if j == i+1 {
			keys, loaded = append(keys, all[i]), append(loaded, segs[i])
			switch {
			case errors.Is(errs[i], repo.ErrNotFound):
				sub.Notes = append(sub.Notes, fmt.Sprintf("%s: removed while the check ran", segLabel(all[i])))
			case errs[i] != nil:
				sub.problem("%s: %v", segLabel(all[i]), errs[i])
			}
			i = j
			continue
		}
		h, err := replacementOf(l.Stream, all[i:j], segs[i:j], errs[i:j])
		if errors.Is(err, index.ErrNotRestorable) {
			u := l.Unfolded()
			return u, u.Segments, nil, nil, nil
		}
		for m := i; m < j; m++ {
			switch {
			case errors.Is(errs[m], repo.ErrNotFound):
				sub.Notes = append(sub.Notes, fmt.Sprintf("%s: removed while the check ran", segLabel(all[m])))
			case errs[m] != nil:
				sub.problem("%s: %v", segLabel(all[m]), errs[m])
			case err != nil || m != i+h:
				twins = append(twins, checkedSegment{key: all[m], seg: segs[m]})
				if err == nil {
					sub.Notes = append(sub.Notes, fmt.Sprintf("%s: replaced by %s, a re-encryption cut short before deleting it; restores read the replacement (the same events); 'strata key rotate --reencrypt' deletes it (FORMAT.md §4.1)",
						segLabel(all[m]), all[i+h].ID.Short()))
				}
			}
		}
		if err != nil {
			// A member that does not load may be the replacement: its
			// damage is reported above (its copy heals it); the chain past
			// the group is still checked.
			keys, loaded = append(keys, all[i]), append(loaded, nil)
		} else {
			keys, loaded = append(keys, all[i+h]), append(loaded, segs[i+h])
		}
		sub.Segments += j - i - 1
		i = j
	}
	rep.Problems = append(rep.Problems, sub.Problems...)
	rep.Notes = append(rep.Notes, sub.Notes...)
	rep.Segments += sub.Segments
	return l, keys, loaded, twins, nil
}

// allPacks returns the indexed packs, then the packs of segments that no
// index file lists.
func allPacks(ix *checkIndex, segs []checkedSegment) []repo.PackInfo {
	out := slices.Clone(ix.Packs())
	seen := map[repo.ID]bool{}
	for _, pi := range out {
		seen[pi.ID] = true
	}
	for _, s := range segs {
		if pi := s.seg.Pack.Info(); !seen[pi.ID] {
			seen[pi.ID] = true
			out = append(out, pi)
		}
	}
	return out
}

// segmentPacks maps each segment's pack to the segment.
func segmentPacks(segs []checkedSegment) map[repo.ID]*checkedSegment {
	m := make(map[repo.ID]*checkedSegment, len(segs))
	for i := range segs {
		m[segs[i].seg.Pack.ID] = &segs[i]
	}
	return m
}

// verifySegment reads a segment's events from its pack, which verifyPack
// has just read, checking what a restore relies on beyond the pack:
// positions, times and counts. A pack that could not be read (nil) is
// reported once, by name of the segment.
func verifySegment(r *repo.Repository, s *checkedSegment, pack []byte) ([]string, error) {
	if pack == nil {
		return []string{fmt.Sprintf("%s: its events cannot be read: pack %s is damaged beyond repair", segLabel(s.key), s.seg.Pack.ID.Short())}, nil
	}
	err := segmentEvents(r, s.key, s.seg, pack, func(*repo.Event) error { return nil })
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrUnsupportedVersion), errors.Is(err, shard.ErrTooFewShards):
		return []string{fmt.Sprintf("%s: %v", segLabel(s.key), err)}, nil
	}
	return nil, err
}

// checkLabel compares a snapshot's plaintext label with its manifest; an
// index server plans from labels alone. Repair writes the label afresh.
func checkLabel(ctx context.Context, r *repo.Repository, s index.SnapshotRef, repair bool, rep *CheckReport) error {
	name := repo.LabelName(s.ID)
	b, err := r.Store().Get(ctx, name)
	var why string
	switch {
	case errors.Is(err, repo.ErrNotFound):
		why = "has no label (written before labels existed, or the label was lost)"
	case err != nil:
		return err
	default:
		l, err := repo.DecodeLabel(name, b)
		if err == nil {
			err = l.Agrees(s.Snapshot)
		}
		if err == nil {
			return nil
		}
		why = fmt.Sprintf("label is wrong: %v", err)
	}
	if repair {
		if err := r.SaveLabel(ctx, s.ID, s.Snapshot); err != nil {
			rep.problem("snapshot %s (%s): %s; rewriting it failed: %v", s.ID.Short(), s.Stream, why, err)
			return nil
		}
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("snapshot %s (%s): %s; label rewritten", s.ID.Short(), s.Stream, why))
		return nil
	}
	rep.problem("snapshot %s (%s): %s (--repair rewrites it)", s.ID.Short(), s.Stream, why)
	return nil
}

// checkOrphanLabels reports labels whose snapshot manifest is gone. A
// snapshot is removed by forget manifest first, label right after, and
// written label first, manifest last; so a label alone is a snapshot that
// was lost (or one whose backup or forget died between its two writes, or
// is between them now). Manifests that exist but do not load are reported
// by the catalog. Repair removes such a label once it has been reported:
// nothing can rebuild the manifest from it, and a backup killed between the
// two writes leaves one that is no loss.
func checkOrphanLabels(ctx context.Context, r *repo.Repository, repair bool, rep *CheckReport) error {
	manifests := map[repo.ID]bool{}
	err := r.Store().List(ctx, repo.SnapshotsPrefix, func(oi repo.ObjectInfo) error {
		if id, err := repo.ParseID(oi.Name[len(repo.SnapshotsPrefix):]); err == nil {
			manifests[id] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	var orphans []repo.ID
	err = r.Store().List(ctx, repo.LabelsPrefix, func(oi repo.ObjectInfo) error {
		id, err := repo.ParseID(oi.Name[len(repo.LabelsPrefix):])
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("unexpected object %s", oi.Name))
			return nil
		}
		if !manifests[id] {
			orphans = append(orphans, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range orphans {
		what := "stream unknown: its label is unreadable"
		b, err := r.Store().Get(ctx, repo.LabelName(id))
		switch {
		case errors.Is(err, repo.ErrNotFound):
			continue // forget removed both while the check ran
		case err != nil:
			return err
		}
		if l, err := repo.DecodeLabel(repo.LabelName(id), b); err == nil {
			what = fmt.Sprintf("%s at %s", l.Stream, index.FormatTime(l.Time))
		}
		msg := fmt.Sprintf("snapshot %s (%s): its manifest is missing and only its label remains: the snapshot cannot be restored (lost or deleted; a backup or forget killed between its two writes leaves the same). Snapshot manifests have no parity: back the stream up again", id.Short(), what)
		if repair {
			if err := r.Store().Delete(ctx, repo.LabelName(id)); err != nil {
				msg += fmt.Sprintf("; removing the label failed: %v", err)
			} else {
				msg += "; the label is removed"
			}
		} else {
			msg += "; 'strata check --repair' removes the label"
		}
		rep.problem("%s", msg)
	}
	return nil
}

// checkCopies verifies both copies of every metadata object and, with
// repair, rewrites a damaged or missing one from the other. Reads fall back
// to the intact copy by themselves, so what a single fault did is reported
// here and nowhere else.
func checkCopies(ctx context.Context, r *repo.Repository, repair bool, rep *CheckReport) error {
	if v := r.Config().Version; v < 2 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the repository is format version %d: its metadata objects (config, key files, manifests, labels, index files) have no second copy, so one damaged object can be lost for good; 'strata upgrade' adds the copies (format version %d)", v, repo.FormatVersion))
		return nil
	}
	found, err := r.CheckCopies(ctx, repair)
	if err != nil {
		return err
	}
	for _, f := range found {
		switch {
		case f.Repaired:
			rep.Repaired = append(rep.Repaired, f.String()+"; rewritten from the intact one")
		case f.RepairError != nil:
			rep.problem("%s; rewriting it failed: %v", f, f.RepairError)
		case f.Object != nil && f.Copy != nil:
			// Both lost: what depends on the object reports it below, by
			// kind (index files are rebuilt from pack trailers, labels
			// from manifests), once.
		case f.Differ && repo.KindOf(f.Name) == repo.KindLabel:
			rep.problem("%s ('strata check --repair' rewrites the copy from the label, and both from the manifest if the label disagrees with it)", f)
		case f.Differ:
			rep.problem("%s: compare them by hand before keeping either", f)
		case f.Object == nil && errors.Is(f.Copy, repo.ErrNotFound):
			// Deletes remove the copy first: an interrupted forget or prune
			// leaves exactly this, as does a lost copy.
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s (a delete was interrupted, or the copy was lost; 'strata check --repair' rewrites it)", f))
		default:
			rep.problem("%s ('strata check --repair' rewrites it from the intact one)", f)
		}
	}
	return nil
}

// packBytes is what reading every shard of a pack reads.
func packBytes(pi repo.PackInfo) int64 {
	return int64(pi.K+pi.M) * shard.NewHeader(pi.K, pi.M, pi.Length, pi.ID).Size()
}
