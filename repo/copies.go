package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Metadata copies (FORMAT.md §25). From format version 2 every object a
// restore needs that has no parity of its own (config, the store layout,
// key files, index files, snapshot manifests, labels, segment manifests) is
// stored twice: under its name N and under CopiesPrefix+N, with identical
// bytes. Any one of the two that is lost, truncated or altered is found by
// verifying it against its name (VerifyObject), read around, and rewritten
// from the other by check --repair (CheckCopies).

// CopiesPrefix is the prefix of the second copies of metadata objects:
// copies/<name> holds the same bytes as <name>.
const CopiesPrefix = "copies/"

// CopyName is the name of the second copy of the object name.
func CopyName(name string) string { return CopiesPrefix + name }

// HasCopy reports whether objects of the named kind are stored twice in a
// version-2 repository: every kind a restore needs that has no parity.
func HasCopy(name string) bool {
	switch KindOf(name) {
	case KindConfig, KindLayout, KindKey, KindIndex, KindSnapshot, KindLabel, KindSegment:
		return true
	}
	return false
}

// copiedPrefixes are the prefixes (and single names) whose objects have copies.
var copiedPrefixes = []string{ConfigName, LayoutName, KeysPrefix, IndexPrefix, SnapshotsPrefix, LabelsPrefix, LogsPrefix}

// KeepsCopies is implemented by stores that keep metadata copies on their
// own side (the index server's client: the server writes them). The
// repository MUST NOT add a copies layer over such a store.
type KeepsCopies interface {
	// KeepsCopies reports that the far side stores and heals the copies.
	KeepsCopies() bool
}

// copyStore is the Store decorator that writes, reads, lists and deletes
// both copies of metadata objects; every other name passes straight through.
//
// Contract (FORMAT.md §25): Put writes the copy, then the object, and takes
// the copy back when the object did not land; Delete removes the copy, then
// the object; Get returns the first of the object and its copy that
// verifies, and falls back only when the object is missing or fails
// verification (a store failure is returned as it is, since it says nothing
// about the bytes); List lists the union of both names, each once, in order.
type copyStore struct {
	Store
	verify Verifier
}

// WithCopies returns s with a second copy of every metadata object
// (FORMAT.md §25), verified with VerifyObject. A store that keeps copies
// itself (KeepsCopies) is returned as it is.
func WithCopies(s Store) Store {
	if k, ok := StoreAs[KeepsCopies](s); ok && k.KeepsCopies() {
		return s
	}
	c := &copyStore{Store: s, verify: VerifyObject}
	ret, _ := s.(Retainer)
	return Decorated(c, s, func(ctx context.Context, name string, until time.Time) error {
		if err := ret.RetainUntil(ctx, name, until); err != nil || !HasCopy(name) {
			return err
		}
		// A copy written before copies existed (an upgrade in progress) is
		// not an error: the object itself holds.
		if err := ret.RetainUntil(ctx, CopyName(name), until); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}

var (
	_ Store       = (*copyStore)(nil)
	_ BatchPutter = (*copyStore)(nil)
)

// PutBatch passes a batch of objects without copies (a pack's shards) to
// the inner store's batch, and stores any other batch one Put each, so
// every object that has a copy gets it.
func (c *copyStore) PutBatch(ctx context.Context, names []string, data [][]byte) error {
	if slices.ContainsFunc(names, HasCopy) {
		return putEach(ctx, c, names, data)
	}
	return PutBatch(ctx, c.Store, names, data)
}

// Unwrap returns the store without the copies layer.
func (c *copyStore) Unwrap() Store { return c.Store }

func (c *copyStore) Put(ctx context.Context, name string, data []byte) error {
	if !HasCopy(name) {
		return c.Store.Put(ctx, name, data)
	}
	// Whether the copy was there before: a rewrite of an object whose
	// first copy was lost must never take the survivor back below.
	_, serr := c.Store.Stat(ctx, CopyName(name))
	if serr != nil && !errors.Is(serr, ErrNotFound) {
		return serr
	}
	copyExisted := serr == nil
	if err := c.Store.Put(ctx, CopyName(name), data); err != nil {
		return err
	}
	if err := c.Store.Put(ctx, name, data); err != nil {
		// A copy alone would make the object exist for readers although its
		// writer saw it fail: take it back unless the object landed after
		// all (its reply was what failed) or the copy was there before.
		// Best effort.
		bg := context.WithoutCancel(ctx)
		if _, serr := c.Store.Stat(bg, name); errors.Is(serr, ErrNotFound) && !copyExisted {
			_ = c.Store.Delete(bg, CopyName(name))
		}
		return err
	}
	return nil
}

func (c *copyStore) Get(ctx context.Context, name string) ([]byte, error) {
	if !HasCopy(name) {
		return c.Store.Get(ctx, name)
	}
	b, err := c.Store.Get(ctx, name)
	if err == nil && c.verify(name, b) == nil {
		return b, nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	cb, cerr := c.Store.Get(ctx, CopyName(name))
	switch {
	case cerr == nil && c.verify(name, cb) == nil:
		return cb, nil
	case cerr != nil && !errors.Is(cerr, ErrNotFound):
		return nil, cerr
	case err == nil:
		return b, nil // both fail: the caller reports the object's own damage
	case cerr == nil:
		return cb, nil
	}
	return nil, err
}

func (c *copyStore) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if !HasCopy(name) {
		return c.Store.GetRange(ctx, name, offset, length)
	}
	b, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || offset+length > int64(len(b)) {
		return nil, fmt.Errorf("get range %s: %d bytes at %d of %d: %w", name, length, offset, len(b), io.ErrUnexpectedEOF)
	}
	return b[offset : offset+length], nil
}

func (c *copyStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	oi, err := c.Store.Stat(ctx, name)
	if !HasCopy(name) || !errors.Is(err, ErrNotFound) {
		return oi, err
	}
	oi, err = c.Store.Stat(ctx, CopyName(name))
	oi.Name = name
	return oi, err
}

func (c *copyStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	copied := false
	for _, p := range copiedPrefixes {
		if strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p) {
			copied = true
		}
	}
	if !copied {
		return c.Store.List(ctx, prefix, fn)
	}
	// Both listings are in order; merge them, each name once. Only the
	// copies are held in memory (metadata, not shards): the objects
	// themselves stream through. A name seen only as a copy is an object
	// whose first copy was lost.
	var copies []ObjectInfo
	err := c.Store.List(ctx, CopiesPrefix+prefix, func(oi ObjectInfo) error {
		oi.Name = oi.Name[len(CopiesPrefix):]
		if HasCopy(oi.Name) {
			copies = append(copies, oi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = c.Store.List(ctx, prefix, func(oi ObjectInfo) error {
		if strings.HasPrefix(oi.Name, CopiesPrefix) {
			return nil
		}
		for len(copies) > 0 && copies[0].Name < oi.Name {
			if err := fn(copies[0]); err != nil {
				return err
			}
			copies = copies[1:]
		}
		if len(copies) > 0 && copies[0].Name == oi.Name {
			copies = copies[1:]
		}
		return fn(oi)
	})
	if err != nil {
		return err
	}
	for _, oi := range copies {
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

func (c *copyStore) Delete(ctx context.Context, name string) error {
	if HasCopy(name) {
		// The copy first: an interruption leaves the object, never a copy
		// that would bring a deleted object back.
		if err := c.Store.Delete(ctx, CopyName(name)); err != nil {
			return err
		}
	}
	return c.Store.Delete(ctx, name)
}

// CopyFinding is a metadata object whose two copies are not both intact.
type CopyFinding struct {
	Name        string
	Object      error // nil when the object under Name verifies; wraps ErrNotFound when absent
	Copy        error // likewise for CopyName(Name)
	Differ      bool  // both verify but hold different bytes (labels, config: not content-addressed)
	Repaired    bool  // the damaged one was rewritten from the other
	RepairError error // the rewrite failed
}

// String describes the finding for check's report.
func (f CopyFinding) String() string {
	what := func(err error) string {
		if errors.Is(err, ErrNotFound) {
			return "missing"
		}
		return err.Error()
	}
	switch {
	case f.Differ && f.Name == ConfigName:
		// Both are written in turn by upgrade and key rotate: a kill
		// between the two writes leaves them differing, and a rerun ends it.
		return fmt.Sprintf("%s: its two copies differ and both verify: an interrupted 'strata upgrade' or 'strata key rotate' leaves this; run it again", f.Name)
	case f.Differ:
		return fmt.Sprintf("%s: its two copies differ and both verify", f.Name)
	case f.Object != nil && f.Copy != nil:
		return fmt.Sprintf("%s: both copies are damaged: object %s; copy %s", f.Name, what(f.Object), what(f.Copy))
	case f.Object != nil:
		return fmt.Sprintf("%s: %s; its copy %s is intact", f.Name, what(f.Object), CopyName(f.Name))
	}
	return fmt.Sprintf("%s: its copy %s is %s; the object is intact", f.Name, CopyName(f.Name), what(f.Copy))
}

// CheckCopies verifies both copies of every metadata object of a version-2
// repository (FORMAT.md §25) and, with repair, rewrites a missing or damaged
// one from the one that verifies. A label or config whose two copies both
// verify but differ is rewritten from the object only for labels (check
// then compares the label with its manifest); for the config and the store
// layout it is reported. It returns nothing for a version-1 repository (it
// has no copies). The error is only for failures of the store.
func (r *Repository) CheckCopies(ctx context.Context, repair bool) ([]CopyFinding, error) {
	c, ok := StoreAs[*copyStore](r.store)
	if r.cfg.Version < 2 || !ok {
		return nil, nil // version 1, or a store whose far side keeps the copies (an index server)
	}
	s := c.Store
	var names []string
	for _, p := range copiedPrefixes {
		for _, pre := range []string{p, CopiesPrefix + p} {
			err := s.List(ctx, pre, func(oi ObjectInfo) error {
				n := strings.TrimPrefix(oi.Name, CopiesPrefix)
				if _, err := ParseObject(n); err != nil || !HasCopy(n) {
					return nil // "configX", "logs/stray": not an object with a copy; check notes strays elsewhere
				}
				names = append(names, n)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	found := make([]CopyFinding, len(names))
	has := make([]bool, len(names))
	err := ForEach(ctx, s, len(names), func(i int) error {
		var err error
		found[i], has[i], err = r.checkCopy(ctx, s, names[i], repair)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []CopyFinding
	for i, f := range found {
		if has[i] {
			out = append(out, f)
		}
	}
	return out, nil
}

// checkCopy verifies one object and its copy; ok is false when both are
// intact and equal.
func (r *Repository) checkCopy(ctx context.Context, s Store, name string, repair bool) (f CopyFinding, ok bool, err error) {
	f.Name = name
	read := func(n string) ([]byte, error) {
		b, err := s.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		if err := VerifyObject(name, b); err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				err = corrupt(n, -1, "%v", err) // what the bytes fail is a finding, never a failure to run
			}
			return b, err
		}
		return b, nil
	}
	ob, oerr := read(name)
	cb, cerr := read(CopyName(name))
	for _, e := range []error{oerr, cerr} {
		if e != nil && !errors.Is(e, ErrNotFound) && !errors.Is(e, ErrCorrupt) && !errors.Is(e, ErrUnsupportedVersion) {
			return f, false, e
		}
	}
	f.Object, f.Copy = oerr, cerr
	if oerr == nil && cerr == nil {
		if bytes.Equal(ob, cb) {
			return f, false, nil
		}
		f.Differ = true
		if KindOf(name) != KindLabel || !repair {
			return f, true, nil
		}
		f.Copy = corrupt(CopyName(name), -1, "differs from %s", name)
	}
	if !repair || oerr != nil && cerr != nil {
		return f, true, nil
	}
	if oerr != nil {
		f.RepairError = s.Put(ctx, name, cb)
	} else {
		f.RepairError = s.Put(ctx, CopyName(name), ob)
	}
	f.Repaired = f.RepairError == nil
	return f, true, nil
}

// rawStore is the repository's store without the copies layer: check
// verifies and repairs each copy by its own name.
func (r *Repository) rawStore() Store {
	if c, ok := StoreAs[*copyStore](r.store); ok {
		return c.Store
	}
	return r.store
}

// UpgradeReport is what Upgrade did.
type UpgradeReport struct {
	From, To int      // format versions
	Copied   int      // copies written
	Skipped  []string // objects not copied because they fail verification (check reports them)
}

// Upgrade turns a version-1 repository into the current version (FORMAT.md
// §25): it writes the copy of every metadata object that verifies, then the
// new config's copy, then the new config. The config is the commit point:
// an interrupted upgrade leaves a version-1 repository (version-1 builds
// ignore copies/) that a second Upgrade completes. Objects that fail
// verification are skipped and listed; they are damage check reports
// either way. Run it while no other writer uses the repository, as prune.
// On a current repository it does nothing.
func (r *Repository) Upgrade(ctx context.Context) (*UpgradeReport, error) {
	rep := &UpgradeReport{From: r.cfg.Version, To: r.cfg.Version}
	if r.cfg.Version >= FormatVersion {
		return rep, nil
	}
	s := r.rawStore()
	var names []string
	for _, p := range copiedPrefixes {
		if p == ConfigName {
			continue
		}
		err := s.List(ctx, p, func(oi ObjectInfo) error {
			if HasCopy(oi.Name) && (p != LayoutName || oi.Name == LayoutName) {
				names = append(names, oi.Name)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("upgrade: %w", err)
		}
	}
	skipped := make([]bool, len(names))
	err := ForEach(ctx, s, len(names), func(i int) error {
		b, err := s.Get(ctx, names[i])
		if errors.Is(err, ErrNotFound) {
			return nil // removed meanwhile (forget)
		} else if err != nil {
			return err
		}
		if VerifyObject(names[i], b) != nil {
			skipped[i] = true
			return nil
		}
		return s.Put(ctx, CopyName(names[i]), b)
	})
	if err != nil {
		return rep, fmt.Errorf("upgrade: %w", err)
	}
	for i, n := range names {
		if skipped[i] {
			rep.Skipped = append(rep.Skipped, n)
		} else {
			rep.Copied++
		}
	}
	cfg := r.cfg
	cfg.Version = FormatVersion
	b, err := cfg.encode(r.keys)
	if err != nil {
		return rep, err
	}
	if err := s.Put(ctx, CopyName(ConfigName), b); err != nil {
		return rep, fmt.Errorf("upgrade: write the config's copy: %w", err)
	}
	if err := s.Put(ctx, ConfigName, b); err != nil {
		return rep, fmt.Errorf("upgrade: write the config: %w", err)
	}
	rep.Copied++
	r.cfg = cfg
	r.store = WithCopies(s)
	rep.To = cfg.Version
	return rep, nil
}
