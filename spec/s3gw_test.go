package spec

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/s3gw"
)

// TestS3ObjectEventVector re-encodes FORMAT.md 22.2's event from its
// fields, and decodes its records back to the same bytes.
func TestS3ObjectEventVector(t *testing.T) {
	v := vector(t, "s3-object-event")
	seq, _ := strconv.ParseUint(v["seq"], 10, 64)
	ts, _ := strconv.ParseInt(v["time"], 10, 64)
	e := repo.Event{Op: repo.OpPut, Seq: seq, Time: ts, Key: []byte(v["key"]), Value: []byte(v["value"])}
	if got := hex.EncodeToString(repo.AppendEvent(nil, &e)); got != v["record hex"] {
		t.Errorf("record %s, FORMAT.md says %s", got, v["record hex"])
	}
	for _, field := range []string{"value", "delete value"} {
		o, err := s3gw.DecodeObjectRecord([]byte(v[field]))
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		back, _ := json.Marshal(o)
		if string(back) != v[field] {
			t.Errorf("%s re-encodes to %s", field, back)
		}
	}
	o, _ := s3gw.DecodeObjectRecord([]byte(v["value"]))
	if o.Size != 6 || o.ETag != "b1946ac92492d2347c6235b4d2611184" || len(o.Parts) != 1 || o.Meta["color"] != "blue" {
		t.Errorf("decoded %+v", o)
	}
	b, err := s3gw.DecodeBucketRecord([]byte(v["bucket value"]))
	if err != nil || b.Versioning != "Enabled" {
		t.Fatalf("bucket record: %+v %v", b, err)
	}
	if back, _ := json.Marshal(b); string(back) != v["bucket value"] {
		t.Errorf("bucket value re-encodes to %s", back)
	}
}

// TestS3UsersKeyVector checks the S3 users key of FORMAT.md 2.
func TestS3UsersKeyVector(t *testing.T) {
	v := vector(t, "key-derivation")
	var out [32]byte
	blake3.DeriveKey(repo.CtxS3Users, unhex(t, v["master"]), out[:])
	if got := hex.EncodeToString(out[:]); got != v["S3 users key"] {
		t.Errorf("S3 users key: FORMAT.md says %s, BLAKE3 derive_key gives %s", v["S3 users key"], got)
	}
}

// TestS3BaseVector decodes FORMAT.md 22.5's base, re-encodes it to the same
// bytes, and finds in it 22.2's event value and tree.
func TestS3BaseVector(t *testing.T) {
	v := vector(t, "s3-base")
	export := strings.ReplaceAll(v["export"], `\n`, "\n")
	got, err := s3gw.CanonicalBase(strings.NewReader(export), v["bucket"])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != export {
		t.Errorf("the base re-encodes to\n%s", got)
	}
	ev := vector(t, "s3-object-event")
	if !strings.Contains(export, `"record":`+ev["value"]+"}\n") {
		t.Error("the base's version line does not hold 22.2's event value")
	}
	var trees []repo.Tree
	if err := s3gw.BaseTrees(strings.NewReader(export), func(tr repo.Tree) error { trees = append(trees, tr); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(trees) != 1 || trees[0].Root[0].String() != "6bedea762795f763738bed698a889a3ad3575b73eb7510ecf00abdd2eab4f436" {
		t.Errorf("trees %+v", trees)
	}
	if _, err := s3gw.CanonicalBase(strings.NewReader(export), "other"); err == nil {
		t.Error("a base of docs decoded as another bucket's")
	}
}
