package engine

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// RestoreOptions tune a restore; the zero value is a valid default.
type RestoreOptions struct {
	Workers int // parallel frame fetches; default 4
}

// restoreJob is one frame fetch serving a run of consecutive blobs.
type restoreJob struct {
	pack    repo.PackInfo
	entries []repo.IndexEntry
	out     [][]byte
	err     error
}

// Restore writes the snapshot's export to w, byte-exact. Frames are fetched
// in parallel; writes stay in order. Every blob is verified against its ID
// before it is written, so w never receives a wrong byte; on a failure it
// may hold a prefix, and the returned error says why.
func Restore(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, w io.Writer, o RestoreOptions) (int64, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ix, err := loadSnapshotIndex(ctx, r, snap.Snapshot, nil)
	if err != nil {
		return 0, fmt.Errorf("restore %s: load index: %w", snap.ID.Short(), err)
	}
	// Eight frames cover the revisits of a day-N snapshot (a changed blob
	// between two runs of an older frame) and the list blobs' frames.
	br := newBlobReader(r, ix.BlobIndex, 8)
	br.damaged = ix.damaged

	// Frames are fetched by Workers goroutines; the writes below take them
	// back in tree order. Each frame waiting for the writer holds ~256 KiB:
	// twice the workers keep them busy without the memory of a deeper queue.
	frames := newOrdered(o.Workers, 2*o.Workers, func(j *restoreJob) {
		plain, err := br.frame(ctx, j.pack, j.entries[0].Location)
		if err == nil {
			j.out = make([][]byte, len(j.entries))
			for i, e := range j.entries {
				if j.out[i], err = extract(r, plain, e); err != nil {
					break
				}
			}
		}
		j.err = err
	})
	var walkErr error
	go func() {
		defer frames.close()
		var cur *restoreJob
		send := func() bool {
			if cur == nil {
				return true
			}
			ok := frames.submit(ctx, *cur)
			cur = nil
			return ok
		}
		walkErr = walkTree(ctx, br, snap.Tree, func(id repo.ID) error {
			e, pi, ok := ix.Lookup(id)
			if !ok {
				return ix.missing("data blob", id)
			}
			if cur != nil && (cur.pack.ID != pi.ID || cur.entries[0].FrameOffset != e.FrameOffset) {
				if !send() {
					return context.Cause(ctx)
				}
			}
			if cur == nil {
				cur = &restoreJob{pack: pi}
			}
			cur.entries = append(cur.entries, e)
			return nil
		}, nil)
		if walkErr == nil {
			send()
		} else {
			cancel(walkErr)
		}
	}()
	var written int64
	var werr error
	for werr == nil {
		j, ok, err := frames.next(ctx)
		if !ok {
			break
		}
		if err != nil {
			werr = err
			break
		}
		if j.err != nil {
			werr = j.err
			cancel(werr)
			continue
		}
		for _, b := range j.out {
			n, err := w.Write(b)
			written += int64(n)
			if err != nil {
				werr = fmt.Errorf("write output: %w", err)
				cancel(werr)
				break
			}
		}
	}
	frames.drain()
	if werr == nil {
		werr = walkErr
	}
	if werr == nil && ctx.Err() != nil {
		werr = context.Cause(ctx)
	}
	if werr != nil {
		return written, fmt.Errorf("restore %s: %w", snap.ID.Short(), werr)
	}
	if written != snap.Size {
		return written, fmt.Errorf("restore %s: wrote %d bytes, the snapshot records %d", snap.ID.Short(), written, snap.Size)
	}
	return written, nil
}
