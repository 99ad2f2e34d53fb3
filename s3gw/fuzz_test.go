package s3gw

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo"
)

// Fuzz targets for what the gateway decodes itself: event records (from
// the repository), the users file, and request fields versitygw passes on.

func FuzzObjectRecord(f *testing.F) {
	f.Add([]byte(`{"version":"null","size":6,"etag":"b1946ac92492d2347c6235b4d2611184","parts":[{"size":6,"tree":{"height":0,"root":["6bedea762795f763738bed698a889a3ad3575b73eb7510ecf00abdd2eab4f436"]}}]}`))
	f.Add([]byte(`{"version":"00000001","delete_marker":true}`))
	f.Add([]byte(`{"version":"null","remove":true,"parts":[{"size":1}]}`))
	f.Add([]byte(`{"version":"v","size":-1,"parts":[{"size":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeObjectRecord(b)
		if err != nil {
			return
		}
		var sum int64
		for _, p := range o.Parts {
			if p.Size < 0 || p.Tree.Height < 0 || p.Tree.Height > repo.MaxTreeHeight {
				t.Fatalf("accepted a bad part: %+v", p)
			}
			sum += p.Size
		}
		if sum != o.Size || o.Version == "" || (o.DeleteMarker || o.Remove) && len(o.Parts) > 0 {
			t.Fatalf("accepted an inconsistent record: %+v", o)
		}
		back, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeObjectRecord(back); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		// Applying it to a bucket never panics.
		bs := newBucketState("fuzz", 0, BucketRecord{})
		if err := bs.apply(&repo.Event{Seq: 1, Op: repo.OpPut, Key: []byte("k"), Value: b}); err != nil {
			t.Fatal(err)
		}
		n := 0
		bs.scan("", func(string, []*version) (string, bool) { n++; return "", true })
		if n != bs.keys.Len() {
			t.Fatalf("the key order holds %d keys, the table %d", n, bs.keys.Len())
		}
	})
}

func FuzzBucketRecord(f *testing.F) {
	f.Add([]byte(`{"versioning":"Enabled","owner":"STRKB3CI5YF6MD7RS4H7"}`))
	f.Add([]byte(`{"object_lock":"eyJFbmFibGVkIjp0cnVlLCJEZWZhdWx0UmV0ZW50aW9uIjp7Ik1vZGUiOiJHT1ZFUk5BTkNFIiwiRGF5cyI6MX19"}`))
	f.Add([]byte(`{"versioning":"Sometimes"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeBucketRecord(b)
		if err != nil {
			return
		}
		if r.Versioning != "" && r.Versioning != "Enabled" && r.Versioning != "Suspended" {
			t.Fatalf("accepted versioning %q", r.Versioning)
		}
		defaultRetention(r.ObjectLock, time.Unix(1767225600, 0))
	})
}

func FuzzUsersFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"users":[{"name":"a","access_key":"STRA","sealed_secret":"AAAA","buckets":"*"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"users":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "users.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		u, err := LoadUsers(path, nil)
		if err != nil {
			return
		}
		for _, x := range u.List() {
			x.mayAccess("bucket")
		}
		u.byAccess("STRA")
	})
}

func FuzzCopySource(f *testing.F) {
	f.Add("/bkt/dir/key.txt")
	f.Add("bkt/a%2Fb?versionId=0000000000000001")
	f.Add("bkt/%zz")
	f.Add("../etc/passwd")
	f.Fuzz(func(t *testing.T, s string) {
		b, k, _, err := parseCopySource(s)
		if err != nil {
			return
		}
		if ValidBucketName(b) != nil || ValidKey(k) != nil || strings.IndexByte(k, 0) >= 0 {
			t.Fatalf("accepted bucket %q key %q", b, k)
		}
	})
}

// FuzzBase decodes arbitrary bases: never a panic, and what decodes
// re-encodes to a base that decodes to the same bytes again, with the
// trees BaseTrees finds.
func FuzzBase(f *testing.F) {
	f.Add([]byte("{\"base\":1,\"bucket\":\"docs\",\"position\":2,\"time\":5,\"created\":1,\"record\":{}}\n" +
		"{\"key\":\"a\",\"time\":2,\"seq\":2,\"record\":{\"version\":\"null\",\"size\":1,\"parts\":[{\"size\":1,\"tree\":{\"height\":0,\"root\":[\"6bedea762795f763738bed698a889a3ad3575b73eb7510ecf00abdd2eab4f436\"]}}]}}\n"))
	f.Add([]byte("{\"base\":1,\"bucket\":\"docs\",\"position\":9,\"time\":5,\"created\":1,\"record\":{\"versioning\":\"Enabled\"}}\n" +
		"{\"key\":\"a\",\"time\":2,\"seq\":2,\"record\":{\"version\":\"0000000000000002\",\"delete_marker\":true}}\n"))
	f.Add([]byte("{\"base\":1,\"bucket\":\"docs\",\"position\":4,\"time\":5,\"created\":1,\"record\":{}}\n" +
		"{\"upload\":\"0123456789abcdef0123456789abcdef\",\"key\":\"big\",\"started\":3}\n" +
		"{\"upload\":\"0123456789abcdef0123456789abcdef\",\"part\":1,\"size\":1,\"etag\":\"0123456789abcdef0123456789abcdef\",\"tree\":{\"height\":0,\"root\":[]}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		canon, err := CanonicalBase(bytes.NewReader(b), "docs")
		_ = BaseTrees(bytes.NewReader(b), func(repo.Tree) error { return nil })
		if err != nil {
			return
		}
		again, err := CanonicalBase(bytes.NewReader(canon), "docs")
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("a canonical base does not come back: %v\n%s\n%s", err, canon, again)
		}
		if err := BaseTrees(bytes.NewReader(canon), func(repo.Tree) error { return nil }); err != nil {
			t.Fatalf("BaseTrees refuses a base that decodes: %v", err)
		}
	})
}
