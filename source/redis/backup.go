package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// BackupOptions describe a one-off base snapshot. Stream is required.
type BackupOptions struct {
	Stream string
	Host   string
	Logf   func(format string, args ...any)
	// Wait bounds how long the backup waits for a running capture of the
	// stream to store the commands around the RDB's offset, which is how
	// the snapshot gets a log position; default 15 s.
	Wait time.Duration
}

// BackupResult says what Backup stored.
type BackupResult struct {
	ID       repo.ID
	Snapshot *repo.Snapshot
	Base     Base
	// Positioned: the snapshot has a log position (the stream's log holds
	// the commands around its offset), so the log can be applied to it.
	Positioned bool
}

// Backup takes a full sync from the instance at o and stores its RDB as a
// snapshot of the stream. The snapshot's position is the log position of
// the last stored command at or before the RDB's offset when the stream's
// log proves it (the command is stored, and so is the next one, or the
// command ends exactly at the offset); otherwise it has no position and
// restores only as itself.
func Backup(ctx context.Context, r *repo.Repository, o Options, bo BackupOptions) (BackupResult, error) {
	var res BackupResult
	if err := repo.ValidStream(bo.Stream); err != nil {
		return res, err
	}
	if bo.Wait <= 0 {
		bo.Wait = 15 * time.Second
	}
	if bo.Logf == nil {
		bo.Logf = func(string, ...any) {}
	}
	conn, err := Dial(ctx, o)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	s, err := conn.Replicate("", 0)
	if err != nil {
		return res, err
	}
	arrived := time.Now().UTC()
	rdb, err := conn.RDB()
	if err != nil {
		return res, err
	}
	res.Base = Base{ReplID: s.ReplID, Offset: s.Offset}
	parent, err := engine.Parent(ctx, r, bo.Stream)
	if err != nil {
		bo.Logf("warning: some manifests could not be read: %v", err)
	}
	hdr := AppendBaseHeader(nil, res.Base)
	var mapErr error
	rdbIn, prover := proveRDB(r, rdb)
	proved := false
	res.ID, res.Snapshot, err = engine.Backup(ctx, r, io.MultiReader(bytes.NewReader(hdr), rdbIn), engine.BackupOptions{
		Stream: bo.Stream, Format: engine.FormatRaw, Time: arrived, Parent: parent, Host: bo.Host, Logf: bo.Logf,
		Describe: func(snap *repo.Snapshot) {
			conn.Close() // the RDB is read; the master need not keep this replica
			prover.finish(snap, bo.Logf)
			proved = true
			pos, t, err := mapOffset(ctx, r, bo.Stream, res.Base, bo.Wait)
			if err != nil {
				mapErr = err
				return
			}
			snap.Position, snap.Time = &pos, time.Unix(0, t).UTC()
			res.Positioned = true
		},
	})
	if !proved {
		prover.abort()
	}
	if err != nil {
		return res, fmt.Errorf("%s: storing the snapshot: %w", o.name(), err)
	}
	if mapErr != nil {
		bo.Logf("snapshot %s has no log position, so no log applies to it (it restores only as itself): %v", res.ID.Short(), mapErr)
	}
	return res, nil
}

// errNoMatch says the log does not prove a position for an offset.
var errNoMatch = errors.New("no stored command matches the offset")

// mapOffset finds the log position whose state the RDB at b holds: the
// last stored command ending at or before b.Offset (in b's replication
// history), proven by ending exactly there or by a stored command after
// it starting at or after b.Offset (what lies between is PINGs and
// REPLCONFs, never stored). It polls the log for up to wait, since a
// running capture seals what it received only every segment interval.
// It returns the position and that command's arrival time.
func mapOffset(ctx context.Context, r *repo.Repository, stream string, b Base, wait time.Duration) (uint64, int64, error) {
	deadline := time.Now().Add(wait)
	var seen repo.SegmentKey
	for {
		logs, err := index.ListLogs(ctx, r.Store(), stream)
		if err != nil {
			return 0, 0, err
		}
		l := logs[stream]
		newest, ok := l.Newest()
		if !ok {
			return 0, 0, fmt.Errorf("%w: stream %s has no log", errNoMatch, stream)
		}
		if newest != seen {
			seen = newest
			pos, t, done, err := matchOffset(ctx, r, l, b)
			if err != nil || done {
				return pos, t, err
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%w: the log holds nothing after offset %d yet (is a capture of %s running? it proves the position by storing the next command)", errNoMatch, b.Offset, stream)
		}
		select {
		case <-ctx.Done():
			return 0, 0, context.Cause(ctx)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// matchOffset looks for b's position in the newest segments of l. done
// false means the log may prove it once more is stored.
func matchOffset(ctx context.Context, r *repo.Repository, l *index.Log, b Base) (pos uint64, t int64, done bool, err error) {
	type mark struct {
		seq        uint64
		t          int64
		start, end int64
		replID     string
	}
	// Scan from the newest segment back until one starts at or before the offset.
	var after *mark // the first stored command starting at or after b.Offset
	for i := len(l.Segments) - 1; i >= 0 && i >= len(l.Segments)-4; i-- {
		k := l.Segments[i]
		seg, err := r.LoadSegment(ctx, k)
		if err != nil {
			return 0, 0, true, err
		}
		var marks []mark
		err = engine.ReadSegment(ctx, r, k, seg, func(e *repo.Event) error {
			c, err := DecodeCommandEvent(e.Value)
			if err != nil {
				return fmt.Errorf("%s position %d: %w", k.Name(), e.Seq, err)
			}
			marks = append(marks, mark{e.Seq, e.Time, c.Start, c.End, c.ReplID})
			return nil
		})
		if err != nil {
			return 0, 0, true, err
		}
		for j := len(marks) - 1; j >= 0; j-- {
			m := marks[j]
			if m.replID != b.ReplID {
				return 0, 0, true, fmt.Errorf("%w: the log's commands around offset %d are of replication history %s, the RDB's is %s", errNoMatch, b.Offset, m.replID, b.ReplID)
			}
			if m.start >= b.Offset {
				after = &m
				continue
			}
			switch {
			case m.end == b.Offset || m.end < b.Offset && after != nil:
				return m.seq, m.t, true, nil
			case m.end < b.Offset:
				return 0, 0, false, nil // wait for the capture to store more
			}
			return 0, 0, true, fmt.Errorf("%w: stored command %d spans offset %d", errNoMatch, m.seq, b.Offset)
		}
		if i > 0 && l.Segments[i-1].Last+1 != k.First {
			break // a gap: older segments are another history
		}
	}
	return 0, 0, true, fmt.Errorf("%w: the log's newest segments begin after offset %d", errNoMatch, b.Offset)
}
