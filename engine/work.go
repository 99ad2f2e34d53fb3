package engine

import "sync/atomic"

// Work counts a long operation's progress for a caller to display (the
// CLI's progress bar): Total once it is known (0 until then) and Done as
// the work goes, in the unit the operation documents. Fields are updated
// atomically; the operation never reads them.
type Work struct {
	Total, Done atomic.Int64
}

// add counts n more done; a nil Work counts nothing.
func (w *Work) add(n int64) {
	if w != nil {
		w.Done.Add(n)
	}
}

// setTotal records the total; a nil Work records nothing.
func (w *Work) setTotal(n int64) {
	if w != nil {
		w.Total.Store(n)
	}
}
