package spec_test
import ("testing";"encoding/hex";"fmt";"github.com/zeebo/blake3";"github.com/strata-backup/strata/repo")
func TestX(t *testing.T){
 m,_:=hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
 var k [32]byte; blake3.DeriveKey("strata v1 2026-12-05 logical digest", m, k[:]); fmt.Println("key", hex.EncodeToString(k[:]))
 d:=repo.NewDigester(m)
 d.Add([]byte("a"), []byte(`{"_id":"a","n":1}`)); p1:=d.Proof(); fmt.Println("one", hex.EncodeToString(p1.Digest[:]))
 d.Add([]byte("b"), []byte(`{"_id":"b","n":2}`)); p:=d.Proof(); fmt.Println("two", p.Records, hex.EncodeToString(p.Digest[:]))
 h,_:=blake3.NewKeyed(k[:]); h.Write(append([]byte{1,'a'}, []byte(`{"_id":"a","n":1}`)...)); fmt.Println("h1", hex.EncodeToString(h.Sum(nil)))
}
