package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// TestServerKeepsCopies: through the server a client writes each object
// once, and the server stores its second copy (FORMAT.md §25); a damaged
// or deleted first copy is read around for the client; clients cannot name
// copies; check through the server reports nothing it cannot repair.
func TestServerKeepsCopies(t *testing.T) {
	f := newFixture(t)
	r := f.open("ops")
	data := bytes.Repeat([]byte("copies through the server\n"), 2000)
	at := f.clock.Now().Add(-time.Minute)
	id, err := f.backup(r, "shop/a", at, 0, data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{repo.SnapshotName(id), repo.LabelName(id)} {
		a, err1 := f.st.Get(ctx, name)
		b, err2 := f.st.Get(ctx, repo.CopyName(name))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: object %v, copy %v, equal %v", name, err1, err2, bytes.Equal(a, b))
		}
	}
	// The first copies of the manifest and of the label are lost.
	if err := f.st.Delete(ctx, repo.SnapshotName(id)); err != nil {
		t.Fatal(err)
	}
	b, _ := f.st.Get(ctx, repo.LabelName(id))
	b[len(b)/2] ^= 0x40
	f.st.Put(ctx, repo.LabelName(id), b)
	f.restart()
	r = f.open("admin")
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cat.Latest("shop/a")
	if err != nil || snap.ID != id {
		t.Fatalf("latest: %v %v", snap.ID, err)
	}
	var out bytes.Buffer
	if _, err := engine.Restore(ctx, r, snap, &out, engine.RestoreOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("restore through the server with lost first copies: %v", err)
	}
	if code, _ := f.raw("admin", http.MethodGet, "/v1/objects/"+repo.CopyName(repo.SnapshotName(id)), nil, nil); code != http.StatusBadRequest {
		t.Fatalf("a client named a copy: %d", code)
	}
}
