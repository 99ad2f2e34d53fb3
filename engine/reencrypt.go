package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/shard"
)

// ReencryptOptions tune Reencrypt; the zero value is a valid default
// (without passwords a run cannot rotate or retire, so callers set them).
type ReencryptOptions struct {
	// Passwords MUST hold the password of every key file, the one that
	// opened the repository among them (as repo.RotateKeys).
	Passwords [][]byte
	// DryRun counts what would be rewritten and changes nothing.
	DryRun bool
	// Grace and Now are the prune's (PruneOptions): replaced packs are
	// deleted only Grace after a run first found them unreferenced.
	Grace time.Duration
	Now   func() time.Time
	// Progress, when set, counts the objects examined, out of all of them.
	Progress *Work
}

// ReencryptResult is what Reencrypt found and did (with DryRun: would do).
type ReencryptResult struct {
	Generation uint32             `json:"generation"` // every object is sealed under it when Done
	Rotated    *repo.RotateReport `json:"rotated,omitempty"`
	Resumed    bool               `json:"resumed"` // a re-encryption under way was continued
	DryRun     bool               `json:"dry_run,omitempty"`
	// Objects rewritten (or, with DryRun, to rewrite) in this run.
	Packs       int   `json:"packs"`
	PackBytes   int64 `json:"pack_bytes"`
	Indexes     int   `json:"indexes"`
	Snapshots   int   `json:"snapshots"`
	Segments    int   `json:"segments"`
	Checkpoints int   `json:"checkpoints"`
	// Renamed maps the ID of each rewritten snapshot to its new ID: a
	// snapshot's ID is the hash of its sealed manifest.
	Renamed map[string]string `json:"renamed,omitempty"`
	// Prune is what the run's prune did: replaced packs are marked, and
	// deleted by a run at least the grace period later.
	Prune *ReencryptPrune `json:"prune,omitempty"`
	// Waiting says why the old generations are not retired yet; empty
	// when Done. Running again after the grace period finishes.
	Waiting []string `json:"waiting,omitempty"`
	// Retired is the retirement, when this run did it.
	Retired *repo.RetireReport `json:"retired,omitempty"`
	Done    bool               `json:"done"`
	// JournalDamaged counts journal records that did not open or decode
	// and were skipped (FORMAT.md §4.1: losing one costs rewriting again).
	JournalDamaged int `json:"journal_damaged,omitempty"`
}

// ReencryptPrune summarizes the prune run of a re-encryption.
type ReencryptPrune struct {
	Marked     int   `json:"marked"`      // packs found unreferenced for the first time
	Pending    int   `json:"pending"`     // marked packs within their grace period
	Deleted    int   `json:"deleted"`     // packs deleted
	FreedBytes int64 `json:"freed_bytes"` // bytes of the deleted shards
}

// rekeyRecord is one record of the re-encryption journal (FORMAT.md §4.1):
// "start" names the target generation; "index", "snapshot" and "segment"
// record, before the new object is written, which object replaces which.
type rekeyRecord struct {
	Version    int       `json:"version"`
	Generation uint32    `json:"generation"`
	Kind       string    `json:"kind"`
	Old        string    `json:"old,omitempty"`
	New        string    `json:"new,omitempty"`
	Time       time.Time `json:"time"`
}

const rekeyVersion = 1

// decodeRekeyRecord parses and checks a journal record's plaintext: version
// 1, a known kind, and for a replacement two object names of the same kind
// that the record may name (index files, snapshots, segment manifests).
func decodeRekeyRecord(name string, p []byte) (rekeyRecord, error) {
	var rec rekeyRecord
	bad := func(why string) (rekeyRecord, error) {
		return rekeyRecord{}, &repo.CorruptError{Object: name, Offset: -1, Reason: "re-encryption journal record: " + why}
	}
	if err := json.Unmarshal(p, &rec); err != nil {
		return bad("not JSON")
	}
	if rec.Version != rekeyVersion {
		return bad(fmt.Sprintf("version %d", rec.Version))
	}
	var prefix string
	switch rec.Kind {
	case "start":
		return rec, nil
	case "index":
		prefix = repo.IndexPrefix
	case "snapshot":
		prefix = repo.SnapshotsPrefix
	case "segment":
		prefix = repo.LogsPrefix
	default:
		return bad(fmt.Sprintf("unknown kind %q", rec.Kind))
	}
	for _, n := range []string{rec.Old, rec.New} {
		o, err := repo.ParseObject(n)
		if err != nil || !strings.HasPrefix(n, prefix) || o.Kind == repo.KindCopy {
			return bad(fmt.Sprintf("%q is not a %s name", n, rec.Kind))
		}
	}
	return rec, nil
}

// rekeyJournal is the journal as loaded: the records' names and the
// replacements they record, by old name.
type rekeyJournal struct {
	names    []string
	start    *rekeyRecord
	replaced map[string]string // old object name → new object name
	made     map[string]bool   // new object names
	damaged  int               // records that did not open or decode, skipped
}

func loadRekeyJournal(ctx context.Context, r *repo.Repository) (*rekeyJournal, error) {
	j := &rekeyJournal{replaced: map[string]string{}, made: map[string]bool{}}
	var names []string
	if err := r.Store().List(ctx, repo.RekeyPrefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return nil, fmt.Errorf("list the re-encryption journal: %w", err)
	}
	var recs []rekeyRecord
	for _, name := range names {
		p, err := r.OpenRekey(ctx, name)
		var rec rekeyRecord
		if err == nil {
			rec, err = decodeRekeyRecord(name, p)
		}
		j.names = append(j.names, name) // deleted at the end, whatever it holds
		switch {
		case errors.Is(err, repo.ErrCorrupt):
			// A damaged record (or one sealed under a generation this
			// keyring no longer holds) costs at most rewriting again: the
			// objects themselves say what generation they are under.
			j.damaged++
			continue
		case err != nil:
			return nil, fmt.Errorf("read the re-encryption journal: %w", err)
		}
		recs = append(recs, rec)
	}
	// Later records win: a replacement recorded again (its first new
	// object was never stored) supersedes the earlier one.
	slices.SortStableFunc(recs, func(a, b rekeyRecord) int { return a.Time.Compare(b.Time) })
	for i, rec := range recs {
		switch rec.Kind {
		case "start":
			if j.start == nil || rec.Generation >= j.start.Generation {
				j.start = &recs[i]
			}
		default:
			j.replaced[rec.Old] = rec.New
			j.made[rec.New] = true
		}
	}
	return j, nil
}

// record seals and stores a journal record.
func (j *rekeyJournal) record(ctx context.Context, r *repo.Repository, rec rekeyRecord) error {
	rec.Version = rekeyVersion
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	p, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	o := r.SealRekey(p)
	if err := r.PutSealed(ctx, o); err != nil {
		return fmt.Errorf("write the re-encryption journal: %w", err)
	}
	j.names = append(j.names, o.Name)
	if rec.Kind != "start" {
		j.replaced[rec.Old] = rec.New
		j.made[rec.New] = true
	}
	return nil
}

// resolve follows the recorded replacements of name to the newest.
func (j *rekeyJournal) resolve(name string) string {
	for range 64 {
		n, ok := j.replaced[name]
		if !ok {
			return name
		}
		name = n
	}
	return name
}

// reencrypter carries one run's state.
type reencrypter struct {
	r       *repo.Repository
	o       ReencryptOptions
	j       *rekeyJournal
	res     *ReencryptResult
	target  uint32
	packGen map[repo.ID]uint32        // packs whose generation is known
	newPack map[repo.ID]repo.PackInfo // old pack → its re-encrypted copy, this run
	counted map[repo.ID]bool          // old packs counted in Packs
	native  map[string]bool           // segment names found sealed under target, not written by a re-encryption
	segNew  map[repo.ID]repo.ID       // segment manifest ID → the ID of the manifest that replaced it
	// twinOf maps the ID in a listed manifest's replaces field to the ID
	// of the manifest that, in this run, replaces it now: a twin it
	// replaced is deleted, not rewritten (segment).
	twinOf  map[repo.ID]repo.ID
	seen    map[string]bool // metadata names found (or made) under target
	waiting []string
}

// Reencrypt rewrites every frame and every sealed metadata object still
// sealed under an older key generation so that all of it is sealed under
// the newest, then retires the older generations from every key file
// (FORMAT.md §4.1, "Re-encryption and retirement"). Without a
// re-encryption under way it first rotates (repo.RotateKeys), so the
// target is a generation no old key file holds.
//
// It is resumable: its progress is a journal in the repository (rekey/),
// and each step is ordered so that a kill leaves every snapshot
// restorable and a rerun completes the work. Replaced packs go through
// prune's two phases: a run marks them, and a run at least Grace later
// deletes them; the old generations are retired only when no pack,
// manifest, index file, segment or checkpoint sealed under them remains
// and no stream's lease holder can still be writing under them (Waiting
// says what holds it up). It MUST NOT run alongside prune or check
// --repair, like prune.
func Reencrypt(ctx context.Context, r *repo.Repository, o ReencryptOptions) (*ReencryptResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if r.Config().Version < 2 {
		return nil, fmt.Errorf("key rotate --reencrypt: the repository is format version %d: run `strata upgrade` first", r.Config().Version)
	}
	j, err := loadRekeyJournal(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("key rotate --reencrypt: %w", err)
	}
	res := &ReencryptResult{DryRun: o.DryRun, Renamed: map[string]string{}, JournalDamaged: j.damaged}
	g := r.Config().KeyGeneration
	switch {
	case j.start != nil && j.start.Generation <= g:
		res.Resumed = true
		if j.start.Generation < g && !o.DryRun {
			// Rotated again since: the newest generation is the target.
			if err := j.record(ctx, r, rekeyRecord{Kind: "start", Generation: g}); err != nil {
				return nil, err
			}
		}
	case o.DryRun:
		g++ // a real run rotates first: everything stored is older
	default:
		rot, err := r.RotateKeys(ctx, o.Passwords)
		if err != nil {
			return nil, err
		}
		res.Rotated = &rot
		g = rot.To
		if err := j.record(ctx, r, rekeyRecord{Kind: "start", Generation: g}); err != nil {
			return nil, err
		}
	}
	res.Generation = g
	e := &reencrypter{r: r, o: o, j: j, res: res, target: g,
		packGen: map[repo.ID]uint32{}, newPack: map[repo.ID]repo.PackInfo{}, counted: map[repo.ID]bool{},
		native: map[string]bool{}, seen: map[string]bool{}, segNew: map[repo.ID]repo.ID{}, twinOf: map[repo.ID]repo.ID{}}
	for old, n := range j.replaced {
		ok, err1 := repo.ParseSegmentName(old)
		nk, err2 := repo.ParseSegmentName(n)
		if err1 == nil && err2 == nil {
			e.segNew[ok.ID] = nk.ID
		}
	}
	if err := e.run(ctx); err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			// Damage is not rewritten under a new key: it would launder it.
			return res, fmt.Errorf("key rotate --reencrypt: %w; repair the repository first ('strata check --read-data --repair'), then run it again to continue", err)
		}
		return res, fmt.Errorf("key rotate --reencrypt: %w; run it again to continue", err)
	}
	return res, nil
}

func (e *reencrypter) run(ctx context.Context) error {
	r := e.r
	idx, err := r.ListIDs(ctx, repo.IndexPrefix)
	if err != nil {
		return err
	}
	snaps, err := r.ListIDs(ctx, repo.SnapshotsPrefix)
	if err != nil {
		return err
	}
	logs, err := index.ListLogs(ctx, r.Store(), "")
	if err != nil {
		return err
	}
	cps, err := e.listCheckpoints(ctx)
	if err != nil {
		return err
	}
	total := len(idx) + len(snaps) + len(cps)
	for _, l := range logs {
		total += len(l.All())
	}
	e.o.Progress.setTotal(int64(total))
	for _, id := range idx {
		if err := e.index(ctx, id); err != nil {
			return err
		}
		e.o.Progress.add(1)
	}
	if err := e.snapshots(ctx, snaps); err != nil {
		return err
	}
	for _, name := range cps {
		if err := e.checkpoint(ctx, name); err != nil {
			return err
		}
		e.o.Progress.add(1)
	}
	streams := make([]string, 0, len(logs))
	for s := range logs {
		streams = append(streams, s)
	}
	slices.Sort(streams)
	for _, s := range streams {
		for _, k := range logs[s].All() {
			if err := e.segment(ctx, k, logs[s].Group(k)); err != nil {
				return err
			}
			e.o.Progress.add(1)
		}
	}
	if e.o.DryRun {
		return nil
	}
	// The replaced packs are unreferenced now: prune's two phases delete
	// them (a run marks, a run Grace later deletes).
	pr, err := Prune(ctx, r, PruneOptions{Grace: e.o.Grace, Now: e.o.Now})
	if err != nil {
		return err
	}
	e.res.Prune = &ReencryptPrune{Marked: pr.Marked, Pending: pr.Pending, Deleted: pr.Deleted, FreedBytes: pr.FreedBytes}
	if err := e.rescan(ctx); err != nil {
		return err
	}
	if err := e.leases(ctx, streams); err != nil {
		return err
	}
	if len(e.waiting) > 0 {
		e.res.Waiting = e.waiting
		return nil
	}
	ret, err := r.RetireGenerations(ctx, e.o.Passwords)
	if err != nil {
		return err
	}
	e.res.Retired = &ret
	// The journal goes last: until it is gone a rerun resumes.
	for _, name := range e.j.names {
		if err := r.Store().Delete(ctx, name); err != nil && !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("delete the re-encryption journal: %w", err)
		}
	}
	e.res.Done = true
	return nil
}

// reput stores again the object name that a cut-short run recorded and
// stored, perhaps only as its copy (a write whose reply was lost): the
// same bytes, so both copies exist before what it replaces goes. It
// reports false when neither copy is stored.
func (e *reencrypter) reput(ctx context.Context, name string) (bool, error) {
	b, err := e.r.Store().Get(ctx, name)
	if errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrCorrupt) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := e.r.Store().Put(ctx, name, b); err != nil {
		return false, fmt.Errorf("store %s again: %w", name, err)
	}
	return true, nil
}

// del deletes name (with its copy), tolerating its absence.
func (e *reencrypter) del(ctx context.Context, name string) error {
	if err := e.r.Store().Delete(ctx, name); err != nil && !errors.Is(err, repo.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// packGeneration returns a pack's generation, reading its tail once.
func (e *reencrypter) packGeneration(ctx context.Context, pi repo.PackInfo) (uint32, error) {
	if g, ok := e.packGen[pi.ID]; ok {
		return g, nil
	}
	g, err := e.r.PackGeneration(ctx, pi)
	if err != nil {
		return 0, err
	}
	e.packGen[pi.ID] = g
	return g, nil
}

// packGenerations learns the generation of every pack of packs not yet
// known, reading their tails in parallel (two range reads each).
func (e *reencrypter) packGenerations(ctx context.Context, packs []repo.PackInfo) error {
	var todo []repo.PackInfo
	for _, pi := range packs {
		if _, ok := e.packGen[pi.ID]; !ok {
			todo = append(todo, pi)
		}
	}
	gens := make([]uint32, len(todo))
	if err := repo.ForEach(ctx, e.r.Store(), len(todo), func(i int) error {
		var err error
		gens[i], err = e.r.PackGeneration(ctx, todo[i])
		return err
	}); err != nil {
		return err
	}
	for i, pi := range todo {
		e.packGen[pi.ID] = gens[i]
	}
	return nil
}

// swapPacks re-encrypts packs in parallel (each held in memory once, at
// most repo.Concurrency of them at a time) and records their copies.
func (e *reencrypter) swapPacks(ctx context.Context, packs []repo.PackInfo) error {
	out := make([]repo.PackInfo, len(packs))
	if err := repo.ForEach(ctx, e.r.Store(), len(packs), func(i int) error {
		var err error
		out[i], err = e.r.ReencryptPack(ctx, packs[i])
		return err
	}); err != nil {
		return err
	}
	for i, pi := range packs {
		e.newPack[pi.ID] = out[i]
		e.packGen[out[i].ID] = e.target
	}
	return nil
}

// swapPack returns the re-encrypted copy of an old pack, writing it the
// first time this run needs it.
func (e *reencrypter) swapPack(ctx context.Context, pi repo.PackInfo) (repo.PackInfo, error) {
	if np, ok := e.newPack[pi.ID]; ok {
		return np, nil
	}
	np, err := e.r.ReencryptPack(ctx, pi)
	if err != nil {
		return repo.PackInfo{}, err
	}
	e.newPack[pi.ID] = np
	e.packGen[np.ID] = e.target
	return np, nil
}

// countPack counts an old pack once.
func (e *reencrypter) countPack(pi repo.PackInfo) {
	if !e.counted[pi.ID] {
		e.counted[pi.ID] = true
		e.res.Packs++
		e.res.PackBytes += int64(pi.Length)
	}
}

// index rewrites one index file when it or one of its packs is sealed
// under an older generation: (1) the old packs are re-encrypted (all
// shards stored), (2) the journal records the replacement, (3) the new
// index file is stored, (4) the old one is deleted. Its old packs are
// then unreferenced, for prune.
func (e *reencrypter) index(ctx context.Context, id repo.ID) error {
	r, name := e.r, repo.IndexName(id)
	if n, ok := e.j.replaced[name]; ok {
		if ok, err := e.reput(ctx, n); err != nil {
			return err
		} else if ok {
			// Replaced by a run that was cut short before the delete.
			e.seen[n] = true
			return e.del(ctx, name)
		}
	}
	gen, err := r.ObjectGeneration(ctx, name)
	if errors.Is(err, repo.ErrNotFound) {
		return nil // gone since the listing
	} else if err != nil {
		return err
	}
	f, err := r.LoadIndex(ctx, id)
	if err != nil {
		return err
	}
	if err := e.packGenerations(ctx, f.Packs); err != nil {
		return err
	}
	stale := gen != e.target
	old := map[repo.ID]bool{}
	for _, pi := range f.Packs {
		if g := e.packGen[pi.ID]; g != e.target {
			old[pi.ID] = true
			stale = true
			e.countPack(pi)
		}
	}
	if !stale {
		e.seen[name] = true
		return nil
	}
	e.res.Indexes++
	if e.o.DryRun {
		return nil
	}
	var todo []repo.PackInfo
	for _, pi := range f.Packs {
		if _, done := e.newPack[pi.ID]; old[pi.ID] && !done {
			todo = append(todo, pi)
		}
	}
	if err := e.swapPacks(ctx, todo); err != nil {
		return err
	}
	swap := map[repo.ID]repo.ID{}
	nf := &repo.IndexFile{Packs: make([]repo.PackInfo, len(f.Packs)), Entries: slices.Clone(f.Entries)}
	for i, pi := range f.Packs {
		nf.Packs[i] = pi
		if old[pi.ID] {
			np, err := e.swapPack(ctx, pi)
			if err != nil {
				return err
			}
			nf.Packs[i], swap[pi.ID] = np, np.ID
		}
	}
	for i := range nf.Entries {
		if n, ok := swap[nf.Entries[i].Pack]; ok {
			nf.Entries[i].Pack = n
		}
	}
	so, err := r.SealIndex(nf)
	if err != nil {
		return err
	}
	if err := e.j.record(ctx, r, rekeyRecord{Kind: "index", Generation: e.target, Old: name, New: so.Name}); err != nil {
		return err
	}
	if err := r.PutSealed(ctx, so); err != nil {
		return fmt.Errorf("store the re-encrypted %s: %w", name, err)
	}
	e.seen[so.Name] = true
	return e.del(ctx, name)
}

// mapIndexes maps index file IDs through the recorded replacements.
func (e *reencrypter) mapIndexes(ids []repo.ID) ([]repo.ID, bool) {
	out := make([]repo.ID, 0, len(ids))
	changed := false
	for _, id := range ids {
		n := e.j.resolve(repo.IndexName(id))
		nid, err := repo.ParseID(strings.TrimPrefix(n, repo.IndexPrefix))
		if err != nil {
			nid = id
		}
		changed = changed || nid != id
		if !slices.Contains(out, nid) {
			out = append(out, nid)
		}
	}
	return out, changed
}

// mapParent maps a snapshot ID through the recorded replacements.
func (e *reencrypter) mapParent(p *repo.ID) (*repo.ID, bool) {
	if p == nil {
		return nil, false
	}
	n := e.j.resolve(repo.SnapshotName(*p))
	nid, err := repo.ParseID(strings.TrimPrefix(n, repo.SnapshotsPrefix))
	if err != nil || nid == *p {
		return p, false
	}
	return &nid, true
}

// snapshots rewrites the snapshot manifests, parents before children (by
// creation), so a child names its parent's new ID.
func (e *reencrypter) snapshots(ctx context.Context, ids []repo.ID) error {
	type snap struct {
		id  repo.ID
		s   *repo.Snapshot
		gen uint32
	}
	var all []snap
	for _, id := range ids {
		name := repo.SnapshotName(id)
		if n, ok := e.j.replaced[name]; ok {
			if ok, err := e.reput(ctx, n); err != nil {
				return err
			} else if ok {
				e.seen[n] = true
				if err := e.finishSnapshot(ctx, id, n); err != nil {
					return err
				}
				e.o.Progress.add(1)
				continue
			}
			// Its new manifest was never stored: the label written before
			// it would read as a lost snapshot.
			if err := e.del(ctx, repo.LabelsPrefix+strings.TrimPrefix(n, repo.SnapshotsPrefix)); err != nil {
				return err
			}
		}
		gen, err := e.r.ObjectGeneration(ctx, name)
		if errors.Is(err, repo.ErrNotFound) {
			continue // forgotten since the listing
		} else if err != nil {
			return err
		}
		s, err := e.r.LoadSnapshot(ctx, id)
		if err != nil {
			return err
		}
		all = append(all, snap{id, s, gen})
	}
	// A replaced snapshot whose manifest went but whose label a kill left
	// (the label goes last) is finished here: nothing lists it any more.
	for old, n := range e.j.replaced {
		id, err := repo.ParseID(strings.TrimPrefix(old, repo.SnapshotsPrefix))
		if !strings.HasPrefix(old, repo.SnapshotsPrefix) || err != nil || e.o.DryRun {
			continue
		}
		if _, err := e.r.Store().Stat(ctx, repo.LabelName(id)); errors.Is(err, repo.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if ok, err := e.reput(ctx, n); err != nil {
			return err
		} else if ok {
			if err := e.finishSnapshot(ctx, id, n); err != nil {
				return err
			}
		}
	}
	slices.SortStableFunc(all, func(a, b snap) int { return a.s.Created.Compare(b.s.Created) })
	for _, sn := range all {
		e.o.Progress.add(1)
		name := repo.SnapshotName(sn.id)
		ns := *sn.s
		var ci, cp bool
		ns.Indexes, ci = e.mapIndexes(sn.s.Indexes)
		ns.Parent, cp = e.mapParent(sn.s.Parent)
		if sn.gen == e.target && !ci && !cp {
			e.seen[name] = true
			continue
		}
		e.res.Snapshots++
		if e.o.DryRun {
			continue
		}
		// A key map locates chunks by pack ID, and this run renames the
		// packs: the resealed snapshot goes without one (FORMAT.md §26),
		// and gets read through the index files until the next backup.
		ns.KeyMap = nil
		so, err := e.r.SealSnapshot(&ns)
		if err != nil {
			return err
		}
		if err := e.j.record(ctx, e.r, rekeyRecord{Kind: "snapshot", Generation: e.target, Old: name, New: so.Name}); err != nil {
			return err
		}
		// The label first, as a backup writes it, carrying what an index
		// server stamped on the old one.
		nid := strings.TrimPrefix(so.Name, repo.SnapshotsPrefix)
		lb, err := e.r.Store().Get(ctx, repo.LabelName(sn.id))
		switch {
		case err == nil:
			err = e.r.Store().Put(ctx, repo.LabelsPrefix+nid, lb)
		case errors.Is(err, repo.ErrNotFound):
			var id repo.ID
			if id, err = repo.ParseID(nid); err == nil {
				err = e.r.SaveLabel(ctx, id, &ns)
			}
		}
		if err != nil {
			return fmt.Errorf("label of the re-encrypted %s: %w", name, err)
		}
		if err := e.r.PutSealed(ctx, so); err != nil {
			return fmt.Errorf("store the re-encrypted %s: %w", name, err)
		}
		e.seen[so.Name] = true
		if err := e.finishSnapshot(ctx, sn.id, so.Name); err != nil {
			return err
		}
	}
	return nil
}

// finishSnapshot deletes a replaced snapshot and its label, making sure the
// new one has its label first.
func (e *reencrypter) finishSnapshot(ctx context.Context, old repo.ID, newName string) error {
	nid := strings.TrimPrefix(newName, repo.SnapshotsPrefix)
	e.res.Renamed[old.String()] = nid
	if ok, err := e.reput(ctx, repo.LabelsPrefix+nid); err != nil {
		return err
	} else if !ok {
		if lb, err := e.r.Store().Get(ctx, repo.LabelName(old)); err == nil {
			if err := e.r.Store().Put(ctx, repo.LabelsPrefix+nid, lb); err != nil {
				return err
			}
		}
	}
	if err := e.del(ctx, repo.SnapshotName(old)); err != nil {
		return err
	}
	return e.del(ctx, repo.LabelName(old))
}

// listCheckpoints lists every stream's checkpoints.
func (e *reencrypter) listCheckpoints(ctx context.Context) ([]string, error) {
	var names []string
	err := e.r.Store().List(ctx, repo.CheckpointsPrefix, func(oi repo.ObjectInfo) error {
		if _, _, err := repo.ParseCheckpointName(oi.Name); err == nil {
			names = append(names, oi.Name)
		}
		return nil
	})
	return names, err
}

// checkpoint rewrites a checkpoint sealed under an older generation, or
// naming replaced index files or snapshots. A fresh one under an older
// generation is a backup running with the old config: retirement waits.
func (e *reencrypter) checkpoint(ctx context.Context, name string) error {
	stream, id, _ := repo.ParseCheckpointName(name)
	gen, err := e.r.ObjectGeneration(ctx, name)
	if errors.Is(err, repo.ErrNotFound) {
		return nil // its backup finished and deleted it
	} else if err != nil {
		return err
	}
	c, err := e.r.LoadCheckpoint(ctx, stream, id)
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	nc := *c
	var ci, cp bool
	nc.Indexes, ci = e.mapIndexes(c.Indexes)
	nc.Parent, cp = e.mapParent(c.Parent)
	if gen == e.target && !ci && !cp {
		e.seen[name] = true
		return nil
	}
	if gen != e.target && e.o.Now().Sub(c.Created) < e.grace() {
		e.waiting = append(e.waiting, fmt.Sprintf("a backup of stream %q wrote a checkpoint under key generation %d at %s: it runs with the old key; let it finish", stream, gen, c.Created.UTC().Format(time.RFC3339)))
	}
	e.res.Checkpoints++
	if e.o.DryRun {
		return nil
	}
	so, err := e.r.SealCheckpoint(&nc)
	if err != nil {
		return err
	}
	if err := e.r.PutSealed(ctx, so); err != nil {
		return fmt.Errorf("store the re-encrypted %s: %w", name, err)
	}
	e.seen[so.Name] = true
	return e.del(ctx, name)
}

func (e *reencrypter) grace() time.Duration {
	if e.o.Grace > 0 {
		return e.o.Grace
	}
	return time.Hour
}

// segment rewrites a segment manifest (and its pack) sealed under an older
// generation, or whose prev names a replaced manifest. The new manifest
// says which it Replaces, so the next segment, whose prev still names the
// old one, chains to it until it is rewritten in turn.
//
// group is k's twin group (index.Log.Group), nil when it has none: a
// member that replaces k is its replacement even without a journal record
// (one that was lost or damaged), so k is deleted rather than rewritten
// into a second replacement of the same manifest, which no reader could
// tell from a second writer's segment.
func (e *reencrypter) segment(ctx context.Context, k repo.SegmentKey, group []repo.SegmentKey) error {
	r, name := e.r, k.Name()
	if n, ok := e.j.replaced[name]; ok {
		if ok, err := e.reput(ctx, n); err != nil {
			return err
		} else if ok {
			e.seen[n] = true
			return e.del(ctx, name)
		}
	}
	if len(group) > 0 {
		by, ok := e.twinOf[k.ID] // a twin that replaces k was handled first
		for _, o := range group {
			if ok {
				break
			}
			if o.ID == k.ID {
				continue
			}
			s, err := r.LoadSegment(ctx, o)
			if err == nil && s.Replaces != nil && *s.Replaces == k.ID {
				by, ok = o.ID, true
			} // else not its replacement, or damaged: decided as without it
		}
		if ok {
			if e.o.DryRun {
				return nil
			}
			e.segNew[k.ID] = by
			return e.del(ctx, name)
		}
	}
	gen, err := r.ObjectGeneration(ctx, name)
	if errors.Is(err, repo.ErrNotFound) {
		return nil // forgotten since the listing
	} else if err != nil {
		return err
	}
	s, err := r.LoadSegment(ctx, k)
	if err != nil {
		return err
	}
	pgen, err := e.packGeneration(ctx, s.Pack.Info())
	if err != nil {
		return err
	}
	var prev *repo.ID
	if s.Prev != nil {
		p := *s.Prev
		for range 64 {
			n, ok := e.segNew[p]
			if !ok {
				break
			}
			p = n
		}
		if p != *s.Prev {
			prev = &p
		}
	}
	if len(group) > 0 && s.Replaces != nil {
		defer func() { e.twinOf[*s.Replaces] = cmp.Or(e.segNew[k.ID], k.ID) }()
	}
	if gen == e.target && pgen == e.target && prev == nil {
		e.seen[name] = true
		if !e.j.made[name] && s.Replaces == nil { // a capture's, not a re-encryption's
			e.native[name] = true
		}
		return nil
	}
	e.res.Segments++
	if pgen != e.target {
		e.countPack(s.Pack.Info())
	}
	if e.o.DryRun {
		return nil
	}
	ns := *s
	if pgen != e.target {
		np, err := e.swapPack(ctx, s.Pack.Info())
		if err != nil {
			return err
		}
		ns.Pack = repo.SegmentPack{ID: np.ID, Length: np.Length, K: np.K, M: np.M}
	}
	if prev != nil {
		ns.Prev = prev
	}
	ns.Replaces = &k.ID
	so, nk, err := r.SealSegment(&ns)
	if err != nil {
		return err
	}
	if err := e.j.record(ctx, r, rekeyRecord{Kind: "segment", Generation: e.target, Old: name, New: so.Name}); err != nil {
		return err
	}
	e.segNew[k.ID] = nk.ID
	if err := r.PutSealed(ctx, so); err != nil {
		return fmt.Errorf("store the re-encrypted %s: %w", name, err)
	}
	e.seen[so.Name] = true
	return e.del(ctx, name)
}

// rescan looks, after the prune, for anything still sealed under an older
// generation: packs awaiting deletion, packs no index lists, and objects a
// concurrent writer stored after the scan. Each holds retirement up.
func (e *reencrypter) rescan(ctx context.Context) error {
	st := e.r.Store()
	packs := map[repo.ID]string{} // pack → one of its shard names
	err := st.List(ctx, repo.DataPrefix, func(oi repo.ObjectInfo) error {
		if id, _, err := repo.ParseShardName(oi.Name); err == nil {
			if _, ok := packs[id]; !ok {
				packs[id] = oi.Name
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	old, waitingPacks := 0, 0
	for id, shardName := range packs {
		g, ok := e.packGen[id]
		if !ok {
			b, err := st.Get(ctx, shardName)
			if err != nil {
				return err
			}
			h, err := shard.Verify(b)
			if err != nil {
				waitingPacks++ // a damaged shard of a pack no one lists: prune removes it
				continue
			}
			if g, err = e.packGeneration(ctx, repo.PackInfo{ID: id, Length: h.PackLen, K: h.K, M: h.M}); err != nil {
				waitingPacks++ // a partial pack no one lists: prune removes it
				continue
			}
		}
		if g != e.target {
			old++
		}
	}
	if old > 0 || waitingPacks > 0 {
		e.waiting = append(e.waiting, fmt.Sprintf("%d pack(s) sealed under older key generations and %d unreadable unreferenced pack(s) await prune's grace period (%v after they were first marked)", old, waitingPacks, e.grace()))
	}
	stale := 0
	for _, prefix := range []string{repo.IndexPrefix, repo.SnapshotsPrefix, repo.LogsPrefix, repo.CheckpointsPrefix} {
		var names []string
		if err := st.List(ctx, prefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
			return err
		}
		for _, n := range names {
			if e.seen[n] {
				continue
			}
			g, err := e.r.ObjectGeneration(ctx, n)
			if errors.Is(err, repo.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if g != e.target {
				stale++
			}
		}
	}
	if stale > 0 {
		e.waiting = append(e.waiting, fmt.Sprintf("%d object(s) were written under older key generations during this run (a writer that opened the repository before the rotation)", stale))
	}
	return nil
}

// leases holds retirement up while a stream's lease holder may still be
// sealing under an older generation: a holder is known to use the target
// only once a segment of its epoch, written by it (not re-encrypted), is
// sealed under the target.
func (e *reencrypter) leases(ctx context.Context, streams []string) error {
	var names []string
	if err := e.r.Store().List(ctx, repo.LeasesPrefix, func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return err
	}
	leased := map[string]bool{}
	for _, n := range names {
		if s, _, err := repo.ParseLeaseName(n); err == nil {
			leased[s] = true
		}
	}
	for _, stream := range slices.Sorted(maps.Keys(leased)) {
		l, _, err := repo.NewestLease(ctx, e.r.Store(), stream)
		if err != nil || l == nil || l.Released {
			continue // damaged (check reports it) or free: no holder writes
		}
		ok := false
		for n := range e.native {
			if k, err := repo.ParseSegmentName(n); err == nil && k.Stream == stream && k.Epoch == l.Epoch {
				ok = true
				break
			}
		}
		if !ok {
			e.waiting = append(e.waiting, fmt.Sprintf("stream %q is captured by %s (since %s), which has not yet stored a segment under key generation %d: restart that capture (it may run with the old key) or let it seal a segment, then run again",
				stream, l.Holder, l.Since.UTC().Format(time.RFC3339), e.target))
		}
	}
	return nil
}

// ReencryptPending reports whether a re-encryption is under way: its
// journal is in the repository. A plain rotation then would re-wrap key
// files with generations a cut-short retirement already dropped; the
// caller continues the re-encryption instead.
func ReencryptPending(ctx context.Context, r *repo.Repository) (bool, error) {
	found := false
	err := r.Store().List(ctx, repo.RekeyPrefix, func(repo.ObjectInfo) error { found = true; return nil })
	return found, err
}
