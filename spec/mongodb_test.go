package spec

import (
	"encoding/hex"
	"strconv"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/source/mongodb"
)

// TestMongoDBProofVector checks the worked proof of FORMAT.md §23.5: the
// canonical record of {_id: 1, name: "bob"} in shop.users and its digest.
// The same document with its fields in another order is the same record.
func TestMongoDBProofVector(t *testing.T) {
	v := vector(t, "mongodb-proof")
	master := unhex(t, vector(t, "key-derivation")["master"])
	for _, d := range []bson.D{
		{{Key: "_id", Value: int32(1)}, {Key: "name", Value: "bob"}},
		{{Key: "name", Value: "bob"}, {Key: "_id", Value: int32(1)}},
	} {
		doc, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		k, val, err := mongodb.CanonicalRecord("shop.users", doc)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(k) != v["key hex"] || hex.EncodeToString(val) != v["value hex"] {
			t.Fatalf("record of %v: key %x value %x; FORMAT.md says %s, %s", d, k, val, v["key hex"], v["value hex"])
		}
		dg := repo.NewDigester(master)
		dg.Add(k, val)
		p := dg.Proof()
		if hex.EncodeToString(p.Digest[:]) != v["digest"] || strconv.FormatUint(p.Records, 10) != v["records"] {
			t.Fatalf("proof %d %x; FORMAT.md says %s %s", p.Records, p.Digest, v["records"], v["digest"])
		}
	}
}
