package index

import "fmt"

// PlanFrom plans a restore of stream at t from the given base snapshot,
// rather than the newest one before t: record history reads the log from
// an older base to see every version. It refuses, wrapping
// ErrNotRestorable, when the base is after t or its log does not reach t.
func (c *Catalog) PlanFrom(stream string, base SnapshotRef, t Target) (*Plan, error) {
	if base.Stream != stream {
		return nil, fmt.Errorf("%w: snapshot %s is of stream %q, not %q", ErrNotRestorable, base.ID.Short(), base.Stream, stream)
	}
	if t.ByPos && (base.Position == nil || *base.Position > t.Position) || !t.ByPos && base.Time.After(t.Time) {
		return nil, fmt.Errorf("%w: snapshot %s is after %s", ErrNotRestorable, base.ID.Short(), t)
	}
	p, _, err := c.Log(stream).plan(base, t, c.Stream(stream))
	if err != nil {
		return nil, err
	}
	p.Untrusted = c.Untrusted
	return p, nil
}
