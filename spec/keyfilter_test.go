package spec

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestKeyFilterVector rebuilds FORMAT.md §15.1's filter from its keys and
// checks the keys it rules out.
func TestKeyFilterVector(t *testing.T) {
	v := vector(t, "key-filter")
	keys := strings.Fields(v["keys"])
	f := repo.NewKeyFilter(len(keys))
	for _, k := range keys {
		f.Add([]byte(k))
	}
	if got := strconv.FormatUint(f.Bits, 10); got != v["bits"] {
		t.Errorf("bits %s, vector says %s", got, v["bits"])
	}
	if got := strconv.Itoa(f.Hashes); got != v["hashes"] {
		t.Errorf("hashes %s, vector says %s", got, v["hashes"])
	}
	if got := hex.EncodeToString(f.Data); got != v["data hex"] {
		t.Errorf("data %s, vector says %s", got, v["data hex"])
	}
	for _, k := range keys {
		if !f.MayContain([]byte(k)) {
			t.Errorf("%s ruled out", k)
		}
	}
	for _, k := range strings.Fields(v["absent"]) {
		if f.MayContain([]byte(k)) {
			t.Errorf("%s not ruled out", k)
		}
	}
}
