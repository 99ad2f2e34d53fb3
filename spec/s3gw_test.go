package spec

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
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
