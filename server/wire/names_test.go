package wire

import (
	"testing"

	"github.com/strata-backup/strata/repo"
)

// Objects the server keeps or never takes from a client are refused by
// name, and so are their listings.
func TestParseObjectRefusesServerSideKinds(t *testing.T) {
	id := repo.ID{0xab}
	for _, name := range []string{repo.CopyName(repo.IndexName(id)), repo.RekeyPrefix + id.String()} {
		if _, err := ParseObject(name); err == nil {
			t.Errorf("ParseObject(%q) accepted", name)
		}
	}
	if _, err := ParsePrefix(repo.RekeyPrefix); err == nil {
		t.Errorf("ParsePrefix(%q) accepted", repo.RekeyPrefix)
	}
	if o, err := ParseObject(repo.IndexName(id)); err != nil || o.Class != ClassIndex {
		t.Errorf("index name: %+v %v", o, err)
	}
}
