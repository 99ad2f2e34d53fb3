package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/location"
	"github.com/strata-backup/strata/repo/multi"
)

// openOne opens one store location through the backend registered for its
// scheme (repo/location), decorated as every store of that backend is. With
// create, a missing bucket or directory is created (with Object Lock when
// lock); l, when set, gives the retention every write gets.
func (env *environment) openOne(ctx context.Context, loc string, create, lock bool, l *repo.Layout) (repo.Store, error) {
	o := location.Options{Create: create, Lock: lock, Verify: repo.VerifyObject, Env: env.getenv, Secret: env.optionalSecret}
	if l != nil && l.RetentionPeriod() > 0 {
		o.Retention, o.Mode = l.RetentionPeriod(), l.Mode
	}
	s, err := location.Open(ctx, loc, o)
	var le *location.Error
	if errors.As(err, &le) {
		return nil, usageError{err.Error()}
	}
	return s, err
}

// optionalSecret reads a secret from varName or the file fileVar names,
// and is empty (no prompt) when neither is set.
func (env *environment) optionalSecret(varName, fileVar string) (string, error) {
	if env.getenv(varName) == "" && env.getenv(fileVar) == "" {
		return "", nil
	}
	b, err := env.secret(varName, fileVar, varName, false)
	return string(b), err
}

// openStore opens the store a repository location names, and when its
// layout object lists several stores, all of them as one. A store that
// cannot be opened leaves the others readable (degraded, read-only), so a
// restore works through the loss of a store.
func (env *environment) openStore(ctx context.Context, location string) (repo.Store, error) {
	if isRemote(location) {
		// The server's own layout is the server's business.
		return env.openOne(ctx, location, false, false, nil)
	}
	first, err := env.openOne(ctx, location, false, false, nil)
	if err != nil {
		return nil, err
	}
	b, err := first.Get(ctx, repo.LayoutName)
	if errors.Is(err, repo.ErrNotFound) {
		return first, nil
	} else if err != nil {
		return nil, fmt.Errorf("open %s: read the store layout: %w", location, err)
	}
	l, err := repo.DecodeLayout(b)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	if len(l.Stores) == 1 {
		return env.openOne(ctx, location, false, false, l)
	}
	stores := make([]repo.Store, len(l.Stores))
	var down []string
	for i, u := range l.Stores {
		s, err := env.openOne(ctx, u, false, false, l)
		if err != nil {
			fmt.Fprintf(env.stderr, "warning: store %d (%s) is unavailable: %v\n", i+1, u, err)
			s, down = unavailable{err}, append(down, u)
		}
		stores[i] = s
	}
	if len(down) == len(stores) {
		return nil, fmt.Errorf("open %s: no store of the repository is available", location)
	}
	m, err := multi.New(stores, multi.Options{Names: l.Stores, Verify: repo.VerifyObject, Degraded: len(down) > 0})
	if err != nil {
		return nil, err
	}
	if len(down) > 0 {
		fmt.Fprintf(env.stderr, "warning: reading through the other stores; writes are refused until %s is back\n", strings.Join(down, ", "))
	}
	return m, nil
}

// unavailable stands for a store that could not be opened.
type unavailable struct{ err error }

func (u unavailable) Put(context.Context, string, []byte) error   { return u.err }
func (u unavailable) Get(context.Context, string) ([]byte, error) { return nil, u.err }
func (u unavailable) Delete(context.Context, string) error        { return u.err }
func (u unavailable) Stat(context.Context, string) (repo.ObjectInfo, error) {
	return repo.ObjectInfo{}, u.err
}
func (u unavailable) GetRange(context.Context, string, int64, int64) ([]byte, error) {
	return nil, u.err
}
func (u unavailable) List(context.Context, string, func(repo.ObjectInfo) error) error { return u.err }

// createStores opens (creating buckets and directories) every store of a
// new repository and writes the layout object to each when there is more
// than one store or retention is set.
func (env *environment) createStores(ctx context.Context, locations []string, l *repo.Layout, k, m int, allowLoss bool) (repo.Store, error) {
	if len(locations) > 1 && !allowLoss {
		if err := multi.CheckPlacement(k, m, len(locations)); err != nil {
			return nil, usagef("%v (or accept it with --allow-store-loss)", err)
		}
	}
	lock := l.RetentionPeriod() > 0
	stores := make([]repo.Store, len(locations))
	for i, u := range locations {
		s, err := env.openOne(ctx, u, true, lock, l)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", u, err)
		}
		if _, err := s.Stat(ctx, repo.ConfigName); err == nil {
			return nil, fmt.Errorf("store %s: %w", u, repo.ErrExists)
		}
		stores[i] = s
	}
	var s repo.Store = stores[0]
	if len(stores) > 1 {
		var err error
		if s, err = multi.New(stores, multi.Options{Names: locations, Verify: repo.VerifyObject}); err != nil {
			return nil, err
		}
	}
	if len(stores) > 1 || lock {
		l.Stores = locations
		b, err := l.Encode()
		if err != nil {
			return nil, err
		}
		if err := s.Put(ctx, repo.LayoutName, b); err != nil {
			return nil, fmt.Errorf("write the store layout: %w", err)
		}
	}
	return s, nil
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Type names the value in pflag's usage text.
func (m *multiFlag) Type() string { return "URL" }
