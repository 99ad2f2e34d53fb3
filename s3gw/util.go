package s3gw

import (
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	vauth "github.com/versity/versitygw/auth"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

func validUTF8(s string) bool { return utf8.ValidString(s) }

// located is a blob location learned after the base index was loaded.
type located struct {
	e repo.IndexEntry
	p repo.PackInfo
}

// locator finds blobs in the index loaded at start and in those the
// gateway wrote since (engine.BlobLocator).
type locator struct {
	base  *index.BlobIndex // sealed; read-only
	mu    sync.RWMutex
	extra map[repo.ID]located
}

func (l *locator) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	if e, p, ok := l.base.Lookup(id); ok {
		return e, p, true
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	x, ok := l.extra[id]
	return x.e, x.p, ok
}

func (l *locator) add(f *repo.IndexFile) {
	packs := map[repo.ID]repo.PackInfo{}
	for _, p := range f.Packs {
		packs[p.ID] = p
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range f.Entries {
		l.extra[e.ID] = located{e, packs[e.Pack]}
	}
}

// overlaySet is the known set of one content store: blobs the repository
// holds (base, read only) plus those this store has taken (local), so a
// failed store leaves base untouched.
type overlaySet struct {
	base, local *index.IDSet
}

func (s *overlaySet) Add(id repo.ID) bool {
	if s.base.Has(id) {
		return false
	}
	return s.local.Add(id)
}

// defaultRetention is the retention a bucket's default rule gives a new
// version, or nil. cfg is versitygw's JSON form of the bucket's
// ObjectLockConfiguration (auth.BucketLockConfig).
func defaultRetention(cfg []byte, now time.Time) *Retention {
	var c vauth.BucketLockConfig
	if json.Unmarshal(cfg, &c) != nil || !c.Enabled || c.DefaultRetention == nil {
		return nil
	}
	d := c.DefaultRetention
	var days, years int
	if d.Days != nil {
		days = int(*d.Days)
	}
	if d.Years != nil {
		years = int(*d.Years)
	}
	if d.Mode == "" || days <= 0 && years <= 0 {
		return nil
	}
	return &Retention{Mode: string(d.Mode), Until: now.AddDate(years, 0, days).UnixNano()}
}
