package s3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/repo"
)

// goodVersion returns the ID of the intact version Get found for name, or "".
func (s *Store) goodVersion(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.good[name]
}

// remember records vid as name's intact version, served in place of the
// latest: name was tampered with.
func (s *Store) remember(name, vid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.good[name] = vid
	s.tampered[name] = true
}

// forget drops name's intact version if it is still vid: it has gone.
func (s *Store) forget(name, vid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.good[name] == vid {
		delete(s.good, name)
	}
}

// TamperedObjects returns the names, sorted, each once, that this Store
// served from an older version because the latest was a delete marker or
// failed Options.Verify.
func (s *Store) TamperedObjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.tampered)
}

// versions returns the versions of exactly key, delete markers included,
// newest first.
func (s *Store) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var vs []minio.ObjectInfo
	for obj := range s.client.ListObjectsIter(ctx, s.o.Bucket, minio.ListObjectsOptions{
		Prefix:       key,
		Recursive:    true,
		WithVersions: true,
	}) {
		if obj.Err != nil {
			return nil, convert(obj.Err)
		}
		if obj.Key != key {
			break // keys longer than key sort after it
		}
		vs = append(vs, obj)
	}
	return vs, nil
}

// recover serves name from the newest older version that passes
// Options.Verify (any real version without Verify), after the latest, with
// ID skip, failed with cause: a delete marker or missing (wrapping
// repo.ErrNotFound), too large, or rejected by Verify. It remembers the
// version it serves.
func (s *Store) recover(ctx context.Context, name, key, skip string, cause error) ([]byte, error) {
	vs, err := s.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	tried := 0
	var last error
	for _, v := range vs {
		if v.IsDeleteMarker || v.VersionID == "" || v.VersionID == skip {
			continue
		}
		b, _, err := s.read(ctx, key, v.VersionID, 0, -1)
		switch {
		case isNotFound(err): // removed meanwhile
			continue
		case errors.Is(err, errTooLarge):
			tried++
			last = err
			continue
		case err != nil:
			return nil, err
		}
		tried++
		if err := s.verify(name, b); err != nil {
			last = err
			continue
		}
		s.remember(name, v.VersionID)
		return b, nil
	}
	switch {
	case isNotFound(cause) && tried == 0:
		return nil, cause
	case isNotFound(cause):
		return nil, fmt.Errorf("the latest version is a delete marker and none of %d older versions is intact: %w", tried, last)
	case tried == 0:
		return nil, fmt.Errorf("%w (and there is no older version)", cause)
	}
	return nil, fmt.Errorf("%w (and none of %d older versions is intact)", cause, tried)
}

// intactVersion returns name's newest intact version by listing its
// versions: the only real one, or the newest real one without Verify, else
// the newest that passes Verify, which it downloads to check. When that is
// not the latest version, it remembers it (package documentation,
// "Tamper"). No real version wraps repo.ErrNotFound.
func (s *Store) intactVersion(ctx context.Context, name, key string) (minio.ObjectInfo, error) {
	vs, err := s.versions(ctx, key)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	var real []minio.ObjectInfo
	for _, v := range vs {
		if !v.IsDeleteMarker {
			real = append(real, v)
		}
	}
	switch {
	case len(real) == 0:
		return minio.ObjectInfo{}, permanent(fmt.Errorf("%w (no version)", repo.ErrNotFound))
	case len(real) == 1 || s.o.Verify == nil:
		if vs[0].IsDeleteMarker {
			s.remember(name, real[0].VersionID)
		}
		return real[0], nil
	}
	// Several versions: the latest may be junk shadowing an intact one.
	var last error
	for i, v := range real {
		b, _, err := s.read(ctx, key, v.VersionID, 0, -1)
		switch {
		case isNotFound(err), errors.Is(err, errTooLarge):
			last = err
			continue
		case err != nil:
			return minio.ObjectInfo{}, err
		}
		if err := s.verify(name, b); err != nil {
			last = err
			continue
		}
		if i > 0 || vs[0].IsDeleteMarker {
			s.remember(name, v.VersionID)
		}
		return v, nil
	}
	return minio.ObjectInfo{}, fmt.Errorf("none of %d versions is intact: %w", len(real), last)
}

// Delete removes every version of the object, delete markers included, so
// that nothing stays hidden behind a marker. A version under retention or
// legal hold stays, and Delete then returns an error wrapping
// repo.ErrRetained that says until when; the other versions are removed.
// Deleting a missing object returns nil.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.delete(ctx, name); err != nil {
		return fmt.Errorf("s3 store: delete %s: %w", name, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if !s.versioned {
		err := s.client.RemoveObject(ctx, s.o.Bucket, key, minio.RemoveObjectOptions{})
		if err := convert(err); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.good, name)
	s.mu.Unlock()
	var (
		retained int
		until    time.Time
		held     bool
	)
	for _, v := range vs {
		err := s.client.RemoveObject(ctx, s.o.Bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil {
			continue
		}
		cerr := convert(err)
		if isNotFound(cerr) {
			continue
		}
		if st := minio.ToErrorResponse(err).StatusCode; st < 400 || st >= 500 {
			return cerr
		}
		// S3 refuses locked versions with AccessDenied, MinIO with
		// InvalidRequest: find out whether a lock is why.
		u, h, rerr := s.lockedUntil(ctx, key, v.VersionID)
		if rerr != nil {
			return errors.Join(cerr, rerr)
		}
		if !h && u.IsZero() {
			return cerr
		}
		retained++
		held = held || h
		if u.After(until) {
			until = u
		}
	}
	switch {
	case retained == 0:
		return nil
	case held:
		return permanent(fmt.Errorf("%d version(s) under legal hold: %w", retained, repo.ErrRetained))
	}
	return permanent(fmt.Errorf("%d version(s) retained until %s: %w", retained, until.Format(time.RFC3339), repo.ErrRetained))
}

// lockedUntil returns the retention date of a version if it lies ahead,
// and whether a legal hold is on it.
func (s *Store) lockedUntil(ctx context.Context, key, vid string) (time.Time, bool, error) {
	_, until, err := s.client.GetObjectRetention(ctx, s.o.Bucket, key, vid)
	switch {
	case err == nil && until != nil && until.After(time.Now()):
		return *until, false, nil
	case err != nil && code(err) != codeNoRetention:
		return time.Time{}, false, convert(err)
	}
	status, err := s.client.GetObjectLegalHold(ctx, s.o.Bucket, key, minio.GetObjectLegalHoldOptions{VersionID: vid})
	if err != nil {
		if code(err) == codeNoRetention {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, convert(err)
	}
	return time.Time{}, status != nil && *status == minio.LegalHoldEnabled, nil
}

// RetainUntil extends the Object Lock retention of name's newest intact
// version (the one Get serves) to until, in the mode it has or else
// Options.Mode. It never shortens a retention: if the version is retained
// until until or later already, it does nothing. A missing object wraps
// repo.ErrNotFound; a bucket without Object Lock wraps ErrNoObjectLock.
func (s *Store) RetainUntil(ctx context.Context, name string, until time.Time) error {
	if err := s.retainUntil(ctx, name, until); err != nil {
		return fmt.Errorf("s3 store: retain %s until %s: %w", name, until.Format(time.RFC3339), err)
	}
	return nil
}

func (s *Store) retainUntil(ctx context.Context, name string, until time.Time) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	vid := s.goodVersion(name)
	if vid == "" {
		v, err := s.intactVersion(ctx, name, key)
		if err != nil {
			return err
		}
		vid = v.VersionID
	}
	until = ceilSecond(until)
	mode, cur, err := s.client.GetObjectRetention(ctx, s.o.Bucket, key, vid)
	switch {
	case err == nil:
	case code(err) == codeNoRetention:
	case code(err) == codeNoLockConfig || code(err) == codeInvalidRequest:
		return permanent(fmt.Errorf("bucket %s %w", s.o.Bucket, ErrNoObjectLock))
	default:
		if err := convert(err); isNotFound(err) {
			s.forget(name, vid)
			return err
		}
		return convert(err)
	}
	if cur != nil && !cur.Before(until) {
		return nil
	}
	m := minio.RetentionMode(s.o.mode())
	if mode != nil && mode.IsValid() {
		m = *mode // COMPLIANCE cannot become GOVERNANCE, and GOVERNANCE stays as chosen
	}
	err = s.client.PutObjectRetention(ctx, s.o.Bucket, key, minio.PutObjectRetentionOptions{
		Mode:            &m,
		RetainUntilDate: &until,
		VersionID:       vid,
	})
	return convert(err)
}
