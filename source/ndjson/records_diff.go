package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Changes of a key between two instants, as Diff reports them.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// DiffEntry is one key whose document differs between two instants.
type DiffEntry struct {
	Key    []byte
	Change string // Added, Removed or Changed
}

// maxLookups is how many keys are looked up in a base one by one (a search
// each) before a single pass over the whole base is cheaper.
const maxLookups = 256

// Diff calls fn, in key order, for every key whose document differs between
// the states at from's and to's targets. When both plans share their base,
// it reads the log between them and looks up in the base only the keys the
// log touched; otherwise it reads both states whole and compares them.
func Diff(ctx context.Context, r *repo.Repository, from, to *index.Plan, fn func(DiffEntry) error) error {
	if _, err := checkBase(from.Base); err != nil {
		return err
	}
	if _, err := checkBase(to.Base); err != nil {
		return err
	}
	if from.Base.ID != to.Base.ID {
		return diffWhole(ctx, r, from, to, fn)
	}
	// Same base, same run of log: the plan with more segments holds every
	// event either applies.
	long := from
	if len(to.Segments) > len(from.Segments) {
		long = to
	}
	a, b := NewChanges(), NewChanges()
	segs, err := engine.LoadPlanSegments(ctx, r, long)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		err := engine.ReadSegment(ctx, r, long.Segments[i], seg, func(e *repo.Event) error {
			if from.Applies(e.Seq, e.Time) {
				a.Apply(e)
			}
			if to.Applies(e.Seq, e.Time) {
				b.Apply(e)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	keys := map[string]bool{}
	var need [][]byte // keys only one side's events touched: the other side is the base's
	for k := range a.m {
		keys[k] = true
	}
	for k := range b.m {
		keys[k] = true
	}
	for k := range keys {
		_, ina := a.m[k]
		_, inb := b.m[k]
		if ina != inb {
			need = append(need, []byte(k))
		}
	}
	base, err := lookupMany(ctx, r, from.Base, need)
	if err != nil {
		return err
	}
	state := func(c *Changes, k string) []byte {
		if d, ok := c.m[k]; ok {
			return d
		}
		return base[k]
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		if c := change3(state(a, k), state(b, k)); c != "" {
			if err := fn(DiffEntry{Key: []byte(k), Change: c}); err != nil {
				return err
			}
		}
	}
	return nil
}

func change3(a, b []byte) string {
	switch {
	case a == nil && b != nil:
		return Added
	case a != nil && b == nil:
		return Removed
	case a != nil && !bytes.Equal(a, b):
		return Changed
	}
	return ""
}

// lookupMany returns the base's documents for keys (absent keys are left
// out): a search each for a few keys in a sorted export, one pass otherwise.
func lookupMany(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, keys [][]byte) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	b, err := newBaseReader(ctx, r, snap)
	if err != nil {
		return nil, err
	}
	if snap.Sorted && len(keys) <= maxLookups {
		for _, k := range keys {
			doc, ok, err := b.lookup(ctx, k)
			if err != nil {
				return nil, err
			}
			if ok {
				out[string(k)] = doc
			}
		}
		return out, nil
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[string(k)] = true
	}
	err = b.scanAll(ctx, func(k, line []byte) error {
		if want[string(k)] {
			out[string(k)] = bytes.Clone(line)
		}
		return nil
	})
	return out, err
}

// scanAll calls fn with every document of the base, in export order,
// through the parallel restore pipeline.
func (b *baseReader) scanAll(ctx context.Context, fn func(key, line []byte) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Restore(ctx, b.r, b.snap, pw, engine.RestoreOptions{})
		pw.CloseWithError(err)
		done <- err
	}()
	lineNo := 0
	err := eachLine(pr, func(line []byte) error {
		lineNo++
		k, err := KeyOf(line, b.field)
		if err != nil {
			return fmt.Errorf("snapshot %s line %d: %w", b.snap.ID.Short(), lineNo, err)
		}
		return fn(k, line)
	})
	pr.CloseWithError(errAbandoned)
	if rerr := <-done; rerr != nil && !errors.Is(rerr, errAbandoned) {
		return rerr
	}
	return err
}

// diffWhole restores both states and walks them side by side.
func diffWhole(ctx context.Context, r *repo.Repository, from, to *index.Plan, fn func(DiffEntry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	open := func(p *index.Plan) (*bufio.Reader, chan error) {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := RestoreAt(ctx, r, p, pw, engine.RestoreOptions{})
			pw.CloseWithError(err)
			done <- err
		}()
		return bufio.NewReaderSize(pr, 1<<20), done
	}
	ra, da := open(from)
	rb, db := open(to)
	fa, fb := fieldOf(from.Base), fieldOf(to.Base)
	next := func(br *bufio.Reader, field string) (key, line []byte, err error) {
		line, err = br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil, nil, io.EOF
		}
		if err != nil && err != io.EOF {
			return nil, nil, err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		key, err = KeyOf(line, field)
		return key, line, err
	}
	ka, la, ea := next(ra, fa)
	kb, lb, eb := next(rb, fb)
	var err error
	for err == nil {
		if ea != nil && ea != io.EOF {
			err = ea
			break
		}
		if eb != nil && eb != io.EOF {
			err = eb
			break
		}
		if ea == io.EOF && eb == io.EOF {
			break
		}
		c := 0
		switch {
		case ea == io.EOF:
			c = 1
		case eb == io.EOF:
			c = -1
		default:
			c = strings.Compare(string(ka), string(kb))
		}
		switch {
		case c < 0:
			err = fn(DiffEntry{Key: bytes.Clone(ka), Change: Removed})
			ka, la, ea = next(ra, fa)
		case c > 0:
			err = fn(DiffEntry{Key: bytes.Clone(kb), Change: Added})
			kb, lb, eb = next(rb, fb)
		default:
			if !bytes.Equal(la, lb) {
				err = fn(DiffEntry{Key: bytes.Clone(ka), Change: Changed})
			}
			ka, la, ea = next(ra, fa)
			kb, lb, eb = next(rb, fb)
		}
	}
	cancel()
	// Drain so the restores end; their errors matter only when ours is nil.
	go io.Copy(io.Discard, ra)
	go io.Copy(io.Discard, rb)
	errA, errB := <-da, <-db
	if err != nil {
		return err
	}
	if errA != nil {
		return errA
	}
	return errB
}

func fieldOf(s index.SnapshotRef) string {
	if s.KeyField == "" {
		return DefaultKeyField
	}
	return s.KeyField
}

// Selector chooses the documents of a partial restore: those whose key
// starts with Prefix, or those whose key is one of Keys. Exactly one is set.
type Selector struct {
	Prefix []byte
	Keys   [][]byte
}

func (s *Selector) match(k []byte) bool {
	if s.Keys == nil {
		return bytes.HasPrefix(k, s.Prefix)
	}
	_, ok := slices.BinarySearchFunc(s.Keys, k, bytes.Compare)
	return ok
}

// RestoreSelected writes the documents sel chooses, as they were at p's
// target, sorted by key: the events the plan applies to those keys merged
// into the base's lines for them. In a sorted export the base is read from
// the chunk where the prefix (or each key) starts, and no further than the
// last matching key; otherwise whole.
func RestoreSelected(ctx context.Context, r *repo.Repository, p *index.Plan, sel Selector, w io.Writer) (RestoreStats, error) {
	var st RestoreStats
	if (sel.Prefix == nil) == (sel.Keys == nil) {
		return st, errors.New("ndjson: a selector needs a prefix or keys, not both")
	}
	if sel.Keys != nil {
		sel.Keys = slices.Clone(sel.Keys)
		slices.SortFunc(sel.Keys, bytes.Compare)
		sel.Keys = slices.CompactFunc(sel.Keys, bytes.Equal)
	}
	b, err := newBaseReader(ctx, r, p.Base)
	if err != nil {
		return st, err
	}
	ch := NewChanges()
	st.Segments = len(p.Segments)
	err = eachEvent(ctx, r, p, func(e *repo.Event) error {
		st.EventsApplied++
		st.LastApplied = e.Seq
		if sel.match(e.Key) {
			ch.Apply(e)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.KeysChanged = ch.Len()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := b.selected(ctx, sel, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	if p.Base.Sorted {
		err = Merge(pr, b.field, ch, w)
	} else {
		err = MergeUnsorted(pr, b.field, ch, w)
	}
	pr.CloseWithError(errAbandoned)
	if serr := <-done; serr != nil && !errors.Is(serr, errAbandoned) {
		return st, serr
	}
	return st, err
}

// selected writes the base's lines that sel chooses, in export order.
func (b *baseReader) selected(ctx context.Context, sel Selector, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	emit := func(line []byte) error {
		bw.Write(line)
		return bw.WriteByte('\n')
	}
	var err error
	switch {
	case !b.snap.Sorted || sel.Keys != nil && len(sel.Keys) > maxLookups:
		err = b.scanAll(ctx, func(k, line []byte) error {
			if sel.match(k) {
				return emit(line)
			}
			return nil
		})
	case sel.Keys != nil:
		for _, k := range sel.Keys {
			doc, ok, lerr := b.lookup(ctx, k)
			if lerr != nil {
				return lerr
			}
			if ok {
				if err = emit(doc); err != nil {
					break
				}
			}
		}
	default:
		err = b.scan(ctx, sel.Prefix, func(k, line []byte) error {
			if bytes.HasPrefix(k, sel.Prefix) {
				return emit(line)
			}
			if bytes.Compare(k, sel.Prefix) > 0 {
				return errStop
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}
