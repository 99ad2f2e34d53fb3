package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// Store is the server's object API as a repo.Store. Writes are append-only
// on the server: Put of a name that exists succeeds only when the server
// reports the stored bytes identical (a replay), and Delete needs the admin
// scope.
type Store struct{ c *Client }

// Store returns the client's object store.
func (c *Client) Store() *Store { return &Store{c: c} }

// Client returns the client the store talks through.
func (s *Store) Client() *Client { return s.c }

var (
	_ repo.Store   = (*Store)(nil)
	_ repo.Creator = (*Store)(nil)
)

// KeepsCopies reports that the server stores the second copy of every
// metadata object (FORMAT.md §25): a repository opened through the client
// does not write copies itself.
func (s *Store) KeepsCopies() bool { return true }

func objectPath(name string) string {
	// Names are checked by the server; escape each segment all the same.
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/objects/" + strings.Join(parts, "/")
}

func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	resp, err := s.c.call(ctx, http.MethodPut, objectPath(name), nil, data, http.Header{"Content-Type": {wire.MediaObject}}, false)
	var e *Error
	if errors.As(err, &e) && e.Code == wire.CodeExists && e.Identical {
		return nil // an earlier attempt landed
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Create uploads an object the server must not have yet: every upload is
// create-only (PROTOCOL.md §4), and for leases the server creates through
// its store's exclusive create, so two clients, or two servers on one
// store, never both succeed. 409 exists is repo.ErrObjectExists, unless
// the stored object is identical to data (an earlier attempt of this
// upload landed), which is success.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	resp, err := s.c.call(ctx, http.MethodPut, objectPath(name), nil, data, http.Header{"Content-Type": {wire.MediaObject}}, false)
	var e *Error
	if errors.As(err, &e) && e.Code == wire.CodeExists {
		if e.Identical {
			return nil
		}
		return fmt.Errorf("create %s: %w", name, repo.ErrObjectExists)
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// readBody reads a response body of exactly its Content-Length.
func readBody(resp *http.Response, op string) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength < 0 || resp.ContentLength > wire.MaxObjectBody {
		return nil, fmt.Errorf("%s: response of length %d", op, resp.ContentLength)
	}
	b := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return nil, fmt.Errorf("%s: response cut short: %w", op, err)
	}
	return b, nil
}

func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	// A segment manifest PlanFor fetched ahead (prefetch.go).
	if strings.HasPrefix(name, repo.LogsPrefix) {
		if b, ok := s.c.prefetched.take(ctx, name); ok {
			return b, nil
		}
	}
	resp, err := s.c.call(ctx, http.MethodGet, objectPath(name), nil, nil, nil, false)
	if err != nil {
		return nil, err
	}
	return readBody(resp, "GET "+name)
}

func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if offset < 0 || length <= 0 {
		return nil, fmt.Errorf("GET %s: range %d+%d: %w", name, offset, length, io.ErrUnexpectedEOF)
	}
	hdr := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)}}
	resp, err := s.c.call(ctx, http.MethodGet, objectPath(name), nil, nil, hdr, false)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusRequestedRangeNotSatisfiable {
		return nil, fmt.Errorf("%w: %w", io.ErrUnexpectedEOF, err)
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: the server ignored the range (status %d)", name, resp.StatusCode)
	}
	b, err := readBody(resp, "GET "+name)
	if err == nil && int64(len(b)) != length {
		return nil, fmt.Errorf("GET %s: %d bytes for a range of %d: %w", name, len(b), length, io.ErrUnexpectedEOF)
	}
	return b, err
}

func (s *Store) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	resp, err := s.c.call(ctx, http.MethodHead, objectPath(name), nil, nil, nil, false)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	resp.Body.Close()
	return repo.ObjectInfo{Name: name, Size: resp.ContentLength}, nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	resp, err := s.c.call(ctx, http.MethodGet, "/v1/objects", url.Values{"prefix": {prefix}}, nil, nil, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	n := 0
	for {
		var line wire.ListLine
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("list %q: the listing ended early after %d objects: %w", prefix, n, err)
		}
		if line.End {
			if line.Count != n {
				return fmt.Errorf("list %q: got %d objects, the server counted %d", prefix, n, line.Count)
			}
			return nil
		}
		n++
		if err := fn(repo.ObjectInfo{Name: line.Name, Size: line.Size}); err != nil {
			return err
		}
	}
}

func (s *Store) Delete(ctx context.Context, name string) error {
	resp, err := s.c.call(ctx, http.MethodDelete, objectPath(name), nil, nil, nil, false)
	var e *Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusNotFound:
		return nil
	case errors.As(err, &e) && e.Status == http.StatusConflict && e.Code == wire.CodeConflict && strings.Contains(e.Message, "retention"):
		return fmt.Errorf("%w: %w", repo.ErrRetained, err)
	case err != nil:
		return err
	}
	resp.Body.Close()
	return nil
}

// Catalog builds the catalog of one stream ("" for every stream the token
// may read) from the server: snapshots from its listing, each manifest
// fetched and opened with the key and checked against its label, and the
// stream's log segments by name.
func (c *Client) Catalog(ctx context.Context, r *repo.Repository, stream string) (*index.Catalog, error) {
	snaps, err := c.Snapshots(ctx, stream)
	if err != nil {
		return nil, err
	}
	cat := &index.Catalog{Logs: map[string]*index.Log{}, Untrusted: true}
	// Manifests are fetched and opened in parallel, as index.LoadCatalog
	// does: one request each.
	refs := make([]index.SnapshotRef, len(snaps))
	var errs []error
	errs = append(errs, repo.ForEach(ctx, r.Store(), len(snaps), func(i int) error {
		var err error
		refs[i], err = c.openSnapshot(ctx, r, snaps[i])
		switch {
		case errors.Is(err, ErrForbidden) && stream == "":
			return nil // another stream's snapshot this token may not read
		case err != nil:
			id, _ := repo.ParseID(snaps[i].ID)
			me := &index.ManifestError{ID: id, Err: err}
			if l := snaps[i].Label; l != nil {
				me.Stream = l.Stream
			}
			return me
		}
		return nil
	}))
	for _, ref := range refs {
		if ref.Snapshot != nil {
			cat.Snapshots = append(cat.Snapshots, ref)
		}
	}
	// "Latest" is the newest by the manifests' own times, whatever order
	// the server listed them in.
	index.SortSnapshots(cat.Snapshots)
	if stream != "" {
		logs, err := index.ListLogs(ctx, c.Store(), stream)
		if err != nil && !errors.Is(err, ErrForbidden) {
			errs = append(errs, err)
		}
		for k, v := range logs {
			cat.Logs[k] = v
		}
	}
	return cat, errors.Join(errs...)
}

// openSnapshot fetches and opens a manifest and checks it against the
// label the server planned with: a server (or a client with a backup scope)
// that lied about a snapshot's stream or time is caught here, before a byte
// is restored.
func (c *Client) openSnapshot(ctx context.Context, r *repo.Repository, s wire.Snapshot) (index.SnapshotRef, error) {
	id, err := repo.ParseID(s.ID)
	if err != nil || s.Label == nil {
		return index.SnapshotRef{}, fmt.Errorf("the server listed a bad snapshot %q", s.ID)
	}
	snap, err := r.LoadSnapshot(ctx, id)
	if err != nil {
		return index.SnapshotRef{}, err
	}
	if err := s.Label.Agrees(snap); err != nil {
		return index.SnapshotRef{}, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	return index.SnapshotRef{ID: id, Snapshot: snap}, nil
}
