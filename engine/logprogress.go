package engine

import (
	"context"
	"sync/atomic"

	"github.com/strata-backup/strata/repo"
)

// LogProgress counts what a running capture has taken, for a caller to
// display (the CLI's progress bar for 'strata log'). Fields are updated
// atomically by the log writer; it never reads them.
type LogProgress struct {
	Events   atomic.Int64  // events taken: appended, or skipped as already stored
	Bytes    atomic.Int64  // key and value bytes of those events
	Position atomic.Uint64 // position of the last event taken
}

// took counts one event; a nil LogProgress counts nothing.
func (p *LogProgress) took(e *repo.Event) {
	if p == nil {
		return
	}
	p.Events.Add(1)
	p.Bytes.Add(int64(len(e.Key) + len(e.Value)))
	p.Position.Store(e.Seq)
}

type logProgressKey struct{}

// WithLogProgress returns a context that makes every log writer opened
// with it (OpenLog, when LogOptions.Progress is nil) count into p: how a
// caller watches a capture run by a source it does not configure itself.
func WithLogProgress(ctx context.Context, p *LogProgress) context.Context {
	return context.WithValue(ctx, logProgressKey{}, p)
}

func logProgressFrom(ctx context.Context) *LogProgress {
	p, _ := ctx.Value(logProgressKey{}).(*LogProgress)
	return p
}
