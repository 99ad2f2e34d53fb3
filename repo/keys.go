package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AddKey wraps the master key (a rotated repository: its whole keyring,
// FORMAT.md §4.1) under a new password and stores the key file.
func (r *Repository) AddKey(ctx context.Context, password []byte, p KDFParams, host, user string) (string, error) {
	if len(password) == 0 {
		return "", errors.New("add key: empty password")
	}
	if p == (KDFParams{}) {
		p = DefaultKDF
	}
	kf, err := newKeyFile(r.ring, password, p, host, user)
	if err != nil {
		return "", err
	}
	b, err := jsonMarshal(kf)
	if err != nil {
		return "", err
	}
	name := KeyName(hashObject(b))
	if err := r.store.Put(ctx, name, b); err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	return name, nil
}

// KeyInfo describes one key file for listing.
type KeyInfo struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"` // the name without "keys/"
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	Current bool      `json:"current"` // the key that opened this session
}

// ListKeys lists the key files. Damaged ones (not a key file, or bytes that
// no longer match the name) are left out of the list and returned as a
// joined error wrapping ErrCorrupt beside the intact ones; a failure of the
// store returns only that error.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	var damaged []error
	err := r.store.List(ctx, KeysPrefix, func(oi ObjectInfo) error {
		b, err := r.store.Get(ctx, oi.Name)
		if err != nil {
			return err
		}
		kf, err := decodeKeyFile(oi.Name, b)
		if err == nil {
			err = verifyKeyFileName(oi.Name, b)
		}
		if err != nil {
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupportedVersion) {
				damaged = append(damaged, err)
				return nil
			}
			return err
		}
		out = append(out, KeyInfo{Name: oi.Name, ID: strings.TrimPrefix(oi.Name, KeysPrefix), Created: kf.Created, Host: kf.Host, User: kf.User, Current: oi.Name == r.keyName})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(damaged...)
}

// verifyKeyFileName checks a key file's bytes against its name, the BLAKE3
// of the file (FORMAT.md §1).
func verifyKeyFileName(name string, b []byte) error {
	id, err := ParseID(strings.TrimPrefix(name, KeysPrefix))
	if err != nil {
		return corrupt(name, -1, "not a key file name: %v", err)
	}
	return verifyContentID(name, id, b)
}

// RemoveKey deletes a key file, found by ID or unique ID prefix. It refuses
// the key in use, so a repository never loses its last way in.
func (r *Repository) RemoveKey(ctx context.Context, idPrefix string) (string, error) {
	keys, err := r.ListKeys(ctx)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return "", err // a damaged key file elsewhere does not stop removing an intact one
	}
	var match []KeyInfo
	for _, k := range keys {
		if idPrefix != "" && strings.HasPrefix(k.ID, idPrefix) {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 0:
		return "", fmt.Errorf("remove key: no key %q", idPrefix)
	case len(match) > 1:
		return "", fmt.Errorf("remove key: %q is ambiguous (%d keys)", idPrefix, len(match))
	case match[0].Current:
		return "", errors.New("remove key: refusing to remove the key in use; open with another password first, or use 'key passwd'")
	}
	return match[0].Name, r.store.Delete(ctx, match[0].Name)
}

// ChangePassword adds a key for the new password, then removes the key in use.
func (r *Repository) ChangePassword(ctx context.Context, newPassword []byte, p KDFParams, host, user string) (string, error) {
	old := r.keyName
	name, err := r.AddKey(ctx, newPassword, p, host, user)
	if err != nil {
		return "", err
	}
	r.keyName = name
	if err := r.store.Delete(ctx, old); err != nil {
		return name, fmt.Errorf("new key %s added, but removing the old key failed: %w", name, err)
	}
	return name, nil
}
