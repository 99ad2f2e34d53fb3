package engine

import "github.com/strata-backup/strata/repo"

// segmentKeyFilter returns the key filter of a segment's events
// (FORMAT.md §15.1), decoded from the very bytes its pack holds; nil, and
// no filter, if they do not decode.
func segmentKeyFilter(c *pendingSegment) *repo.KeyFilter {
	n := 0
	for _, f := range c.frames {
		n += f.events
	}
	kf := repo.NewKeyFilter(n)
	if err := repo.DecodeEvents("segment", c.buf, func(e *repo.Event) error { kf.Add(e.Key); return nil }); err != nil {
		return nil
	}
	return kf
}
