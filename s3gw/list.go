package s3gw

import (
	"strings"
)

// ListOptions select a page of a bucket listing (ListObjects V1/V2).
type ListOptions struct {
	Prefix    string
	Delimiter string
	After     string // list keys (and common prefixes) strictly after this
	MaxKeys   int    // 0 means 1000
}

// ListResult is one page of a listing.
type ListResult struct {
	Objects        []ObjectInfo
	CommonPrefixes []string
	Truncated      bool
	Next           string // the last key or prefix returned, for the next page's After
}

// List lists the latest versions that are not delete markers, in key order,
// rolling keys that share a prefix up to the delimiter into common prefixes.
func (g *Gateway) List(bucket string, o ListOptions) (ListResult, error) {
	if o.MaxKeys <= 0 || o.MaxKeys > 1000 {
		o.MaxKeys = 1000
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	b := g.buckets[bucket]
	if b == nil {
		return ListResult{}, ErrNoSuchBucket
	}
	var res ListResult
	b.scan(max(o.After, o.Prefix), func(k string, vs []*version) (string, bool) {
		if k <= o.After {
			return "", true
		}
		if !strings.HasPrefix(k, o.Prefix) {
			return "", false
		}
		v := newest(vs)
		if v == nil || v.marker {
			return "", true
		}
		if len(res.Objects)+len(res.CommonPrefixes) >= o.MaxKeys {
			res.Truncated = true
			return "", false
		}
		if o.Delimiter != "" {
			if j := strings.Index(k[len(o.Prefix):], o.Delimiter); j >= 0 {
				cp := k[:len(o.Prefix)+j+len(o.Delimiter)]
				res.CommonPrefixes = append(res.CommonPrefixes, cp)
				res.Next = cp
				// Skip every key under this prefix.
				return prefixEnd(cp), true
			}
		}
		res.Objects = append(res.Objects, info(k, v, true))
		res.Next = k
		return "", true
	})
	return res, nil
}

// prefixEnd returns the smallest string greater than every string with
// prefix p ("" when there is none).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\xff\xff\xff\xff"
}

// VersionListOptions select a page of ListObjectVersions.
type VersionListOptions struct {
	Prefix, Delimiter string
	KeyMarker         string
	VersionIDMarker   string
	MaxKeys           int
}

// VersionListResult is one page of ListObjectVersions.
type VersionListResult struct {
	Versions        []ObjectInfo // newest first within a key
	CommonPrefixes  []string
	Truncated       bool
	NextKey, NextID string
}

// ListVersions lists every version and delete marker, keys in order and
// each key's versions newest first.
func (g *Gateway) ListVersions(bucket string, o VersionListOptions) (VersionListResult, error) {
	if o.MaxKeys <= 0 || o.MaxKeys > 1000 {
		o.MaxKeys = 1000
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	b := g.buckets[bucket]
	if b == nil {
		return VersionListResult{}, ErrNoSuchBucket
	}
	var res VersionListResult
	n := 0
	b.scan(max(o.KeyMarker, o.Prefix), func(k string, vs []*version) (string, bool) {
		if !strings.HasPrefix(k, o.Prefix) {
			return "", false
		}
		if k < o.KeyMarker || k == o.KeyMarker && o.VersionIDMarker == "" {
			return "", true
		}
		if o.Delimiter != "" {
			if j := strings.Index(k[len(o.Prefix):], o.Delimiter); j >= 0 {
				cp := k[:len(o.Prefix)+j+len(o.Delimiter)]
				if n >= o.MaxKeys {
					res.Truncated = true
					return "", false
				}
				res.CommonPrefixes = append(res.CommonPrefixes, cp)
				res.NextKey, res.NextID = cp, ""
				n++
				return prefixEnd(cp), true
			}
		}
		skipping := k == o.KeyMarker
		for j := len(vs) - 1; j >= 0; j-- {
			v := vs[j]
			if skipping {
				if v.id == o.VersionIDMarker {
					skipping = false
				}
				continue
			}
			if n >= o.MaxKeys {
				res.Truncated = true
				return "", false
			}
			res.Versions = append(res.Versions, info(k, v, j == len(vs)-1))
			res.NextKey, res.NextID = k, v.id
			n++
		}
		return "", true
	})
	return res, nil
}
