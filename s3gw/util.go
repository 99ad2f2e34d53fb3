package s3gw

import (
	"encoding/json"
	"slices"
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

// locatorPending is how many new locations the locator holds in a map
// before it seals them into a compact layer: ~200 bytes each in the Go
// heap there, against the layers' 44 bytes outside it.
const locatorPending = 4096

// locator finds blobs in the index loaded at start and in those the
// gateway wrote since (engine.BlobLocator). A gateway stores blobs for as
// long as it runs, so their locations are kept as the index keeps them:
// compact and outside the Go heap. The newest few thousand wait in a map;
// then they are sealed into a layer, and the newest layer is merged into
// its predecessor whenever it has grown to half that one's size. Lookups
// therefore search O(log n) layers, and each location is copied O(log n)
// times over the gateway's life.
type locator struct {
	base  *index.BlobIndex // sealed; read-only
	addMu sync.Mutex       // one add at a time: its merges run outside mu
	mu    sync.RWMutex     // guards pending (its contents) and layers
	// pending is written only under both locks, so add may read it with
	// addMu alone while lookups read it.
	pending map[repo.ID]located
	layers  []*index.BlobIndex // oldest (largest) first
}

func newLocator(base *index.BlobIndex) *locator {
	return &locator{base: base, pending: map[repo.ID]located{}}
}

func (l *locator) Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool) {
	if e, p, ok := l.base.Lookup(id); ok {
		return e, p, true
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if x, ok := l.pending[id]; ok {
		return x.e, x.p, true
	}
	for i := len(l.layers) - 1; i >= 0; i-- {
		if e, p, ok := l.layers[i].Lookup(id); ok {
			return e, p, true
		}
	}
	return repo.IndexEntry{}, repo.PackInfo{}, false
}

// add publishes the locations of an index file the gateway stored.
func (l *locator) add(f *repo.IndexFile) {
	l.addMu.Lock()
	defer l.addMu.Unlock()
	packs := map[repo.ID]repo.PackInfo{}
	for _, p := range f.Packs {
		packs[p.ID] = p
	}
	l.mu.Lock()
	for _, e := range f.Entries {
		l.pending[e.ID] = located{e, packs[e.Pack]}
	}
	full := len(l.pending) >= locatorPending
	l.mu.Unlock()
	if !full {
		return
	}
	// Build the new layers while lookups go on against the old ones.
	sealed := &repo.IndexFile{}
	seen := map[repo.ID]bool{}
	for _, x := range l.pending {
		sealed.Entries = append(sealed.Entries, x.e)
		if !seen[x.p.ID] {
			seen[x.p.ID] = true
			sealed.Packs = append(sealed.Packs, x.p)
		}
	}
	layer := index.NewBlobIndex()
	layer.Add(sealed, nil)
	layer.Seal()
	layers := append(slices.Clone(l.layers), layer)
	for n := len(layers); n >= 2 && 2*layers[n-1].Len() >= layers[n-2].Len(); n = len(layers) {
		layers = append(layers[:n-2], index.Merge(layers[n-2], layers[n-1]))
	}
	l.mu.Lock()
	l.layers = layers
	l.pending = map[repo.ID]located{}
	l.mu.Unlock()
}

// knownSet is the set of blobs the gateway deduplicates new content
// against: those in the repository's index when it was last loaded, and
// those the gateway has stored since. Content stores run side by side and
// read it at once; each adds its blobs only when they are durable.
type knownSet struct {
	mu  sync.RWMutex
	set *index.IDSet
}

func newKnownSet(ix *index.BlobIndex) *knownSet { return &knownSet{set: idsOf(ix)} }

// idsOf is the set of the blobs ix locates, with room for more.
func idsOf(ix *index.BlobIndex) *index.IDSet {
	set := index.NewIDSet(ix.Len() + 1024)
	ix.Each(func(e repo.IndexEntry, _ repo.PackInfo) { set.Add(e.ID) })
	return set
}

func (s *knownSet) Has(id repo.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.set.Has(id)
}

// publish adds the blobs of an index file the gateway stored.
func (s *knownSet) publish(f *repo.IndexFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range f.Entries {
		s.set.Add(e.ID)
	}
}

// replace swaps in the blobs of an index rebuilt from the repository
// (refreshKnown).
func (s *knownSet) replace(ix *index.BlobIndex) {
	set := idsOf(ix)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = set
}

// overlaySet is the known set of one content store: blobs the gateway
// has published (base, read only here) plus those this store has taken
// (local), so a failed store leaves base untouched. Two stores running at
// once may both take a blob neither had published, and both store it:
// an index may list a blob twice, and neither ever skips a blob on the
// strength of the other's unfinished work.
type overlaySet struct {
	base  *knownSet
	local *index.IDSet
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
