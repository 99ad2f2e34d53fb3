package s3gw

import (
	"encoding/xml"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

func sortStrings(s []string) { slices.SortFunc(s, strings.Compare) }

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

// lockConfig is the part of an ObjectLockConfiguration the gateway reads.
type lockConfig struct {
	Enabled string `xml:"ObjectLockEnabled"`
	Rule    *struct {
		Default struct {
			Mode  string `xml:"Mode"`
			Days  int    `xml:"Days"`
			Years int    `xml:"Years"`
		} `xml:"DefaultRetention"`
	} `xml:"Rule"`
}

// defaultRetention is the retention a bucket's default rule gives a new
// version, or nil.
func defaultRetention(cfg []byte, now time.Time) *Retention {
	var c lockConfig
	if xml.Unmarshal(cfg, &c) != nil || c.Rule == nil {
		return nil
	}
	d := c.Rule.Default
	if d.Mode == "" || d.Days <= 0 && d.Years <= 0 {
		return nil
	}
	return &Retention{Mode: d.Mode, Until: now.AddDate(d.Years, 0, d.Days).UnixNano()}
}
