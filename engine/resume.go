package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Resumable backups (FORMAT.md §12.1). A running Backup writes an index
// file and a checkpoint naming every index file it has written at least
// every CheckpointEvery (and whenever an index file fills). When it is
// killed, its stored packs stay findable through the checkpoint; the next
// backup of the stream adds their blobs to its dedup set and uploads only
// the rest. Prune counts the packs a young checkpoint names as referenced
// (PruneOptions.CheckpointAge), so they survive until a backup reuses them
// and are collected once the checkpoint has expired.

// ResumeMaxAge is the oldest checkpoint a backup resumes from. It is
// shorter than prune's default CheckpointAge by more than any backup runs,
// so a backup never reuses packs a prune may already have marked.
const ResumeMaxAge = 48 * time.Hour

// checkpointer is a running backup's checkpoint state; its methods run
// under backupRun.uploadMu.
type checkpointer struct {
	stream  string
	parent  *repo.ID
	carried []repo.ID // index files of the checkpoints this backup resumed from
	every   time.Duration
	start   time.Time
	last    time.Time // when the last checkpoint was written
	own     []repo.ID // this run's checkpoints not yet deleted
	logf    func(string, ...any)
	noDel   bool // the store refused a delete: leave the rest to prune
}

// due reports whether a checkpoint is due: CheckpointEvery has passed since
// the last one, or a twentieth of the time the backup has run, whichever
// is longer (a long backup writes tens of checkpoints, not thousands).
func (c *checkpointer) due(now time.Time) bool {
	return now.Sub(c.last) >= max(c.every, now.Sub(c.start)/20)
}

// save writes a checkpoint naming the carried index files and written,
// then deletes this run's earlier ones (best effort: a store that refuses,
// such as an index server for a backup token, leaves them to prune).
func (c *checkpointer) save(ctx context.Context, r *repo.Repository, written []repo.ID) error {
	cp := &repo.Checkpoint{Stream: c.stream, Created: time.Now().UTC(), Parent: c.parent,
		Indexes: append(slices.Clone(c.carried), written...)}
	if len(cp.Indexes) > repo.MaxCheckpointIndexes {
		return nil // a backup this long keeps its last checkpoint
	}
	id, err := r.SaveCheckpoint(ctx, cp)
	if err != nil {
		return err
	}
	c.last = time.Now()
	c.deleteOwn(ctx, r)
	c.own = append(c.own, id)
	return nil
}

// deleteOwn deletes this run's checkpoints.
func (c *checkpointer) deleteOwn(ctx context.Context, r *repo.Repository) {
	c.own = deleteCheckpoints(ctx, r, c.stream, c.own, &c.noDel, c.logf)
}

// deleteCheckpoints deletes ids and returns those left; once the store
// refuses a delete, no further delete is tried.
func deleteCheckpoints(ctx context.Context, r *repo.Repository, stream string, ids []repo.ID, noDel *bool, logf func(string, ...any)) []repo.ID {
	for i, id := range ids {
		if *noDel {
			return ids[i:]
		}
		err := r.Store().Delete(ctx, repo.CheckpointName(stream, id))
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			*noDel = true
			if logf != nil {
				logf("checkpoint %s left for prune to remove: %v", id.Short(), err)
			}
			return ids[i:]
		}
	}
	return nil
}

// resumed is what a backup takes over from interrupted ones.
type resumed struct {
	indexes  []repo.ID // index files whose every pack is stored
	consumed []repo.ID // the checkpoints read
	blobs    int       // blobs they locate
}

// resumeFrom reads stream's checkpoints written after parent (any, without
// one) and not older than ResumeMaxAge, checks that every pack of their
// index files is stored (at least k shards), and adds those files' blobs
// to known. Nothing here fails a backup: a checkpoint, index file or pack
// that cannot be read or checked is skipped, and its blobs are stored anew.
func resumeFrom(ctx context.Context, r *repo.Repository, stream string, parent *index.SnapshotRef, known *index.IDSet, logf func(string, ...any)) resumed {
	note := func(format string, args ...any) {
		if logf != nil {
			logf(format, args...)
		}
	}
	var res resumed
	ids, err := r.ListCheckpoints(ctx, stream)
	if err != nil {
		note("resume: cannot list the checkpoints of %s, starting afresh: %v", stream, err)
		return res
	}
	now := time.Now()
	seen := map[repo.ID]bool{}
	var files []repo.ID
	for _, id := range ids {
		cp, err := r.LoadCheckpoint(ctx, stream, id)
		if err != nil {
			note("resume: checkpoint %s skipped: %v", id.Short(), err)
			continue
		}
		if parent != nil && !cp.Created.After(parent.Snapshot.Created) || now.Sub(cp.Created) > ResumeMaxAge {
			continue // finished by a snapshot, or left for prune
		}
		res.consumed = append(res.consumed, id)
		for _, f := range cp.Indexes {
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		return res
	}
	// Each file's entries go into known as soon as it is checked, so only
	// the files being read at once are held.
	ok := make([]bool, len(files))
	var mu sync.Mutex
	_ = repo.ForEach(ctx, r.Store(), len(files), func(i int) error {
		f, err := r.LoadIndex(ctx, files[i])
		if err == nil {
			err = packsStored(ctx, r, f.Packs)
		}
		mu.Lock() // known and Logf are not safe for concurrent use
		defer mu.Unlock()
		if err != nil {
			note("resume: index file %s skipped: %v", files[i].Short(), err)
			return nil
		}
		for _, e := range f.Entries {
			known.Add(e.ID)
		}
		res.blobs += len(f.Entries)
		ok[i] = true
		return nil
	})
	for i, f := range files {
		if ok[i] {
			res.indexes = append(res.indexes, f)
		}
	}
	return res
}

// packsStored checks that at least k shards of every pack exist: an index
// file a checkpoint names lists only packs whose shards were all written,
// but something may have removed them since.
func packsStored(ctx context.Context, r *repo.Repository, packs []repo.PackInfo) error {
	type shardRef struct {
		pack int
		i    int
	}
	var refs []shardRef
	for p, pi := range packs {
		for i := range pi.K + pi.M {
			refs = append(refs, shardRef{p, i})
		}
	}
	found := make([]bool, len(refs))
	err := repo.ForEach(ctx, r.Store(), len(refs), func(j int) error {
		_, err := r.Store().Stat(ctx, repo.ShardName(packs[refs[j].pack].ID, refs[j].i))
		if errors.Is(err, repo.ErrNotFound) {
			return nil
		}
		found[j] = err == nil
		return err
	})
	if err != nil {
		return err
	}
	have := make([]int, len(packs))
	for j, ok := range found {
		if ok {
			have[refs[j].pack]++
		}
	}
	for p, pi := range packs {
		if have[p] < pi.K {
			return fmt.Errorf("pack %s has %d of the %d shards it needs", pi.ID.Short(), have[p], pi.K)
		}
	}
	return nil
}
