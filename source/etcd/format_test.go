package etcd

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// formatVector returns the key: value lines of FORMAT.md's block `vector name`.
func formatVector(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```vector "+name+"\n")
	if !ok {
		t.Fatalf("FORMAT.md has no vector %q", name)
	}
	body, _, _ := strings.Cut(rest, "```")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		m[k] = v
	}
	return m
}

// TestFormatVectors checks the worked examples of FORMAT.md §21.
func TestFormatVectors(t *testing.T) {
	want, err := hex.DecodeString(formatVector(t, "etcd-snapshot")["hex"])
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := NewSnapshotWriter(&b, 7, 0xcdef)
	w.Add(&KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 5, Version: 3})
	w.Add(&KeyValue{Key: []byte("b"), Value: []byte("xy"), CreateRevision: 7, ModRevision: 7, Version: 1, Lease: 300})
	w.Close()
	if got := b.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("snapshot encoding:\n got %x\nwant %x", got, want)
	}
	if _, kvs, err := decodeSnapshot(want); err != nil || len(kvs) != 2 || kvs[1].Lease != 300 {
		t.Fatalf("decode the example: %v %+v", err, kvs)
	}

	v := formatVector(t, "etcd-revision")
	val, err := hex.DecodeString(v["value hex"])
	if err != nil {
		t.Fatal(err)
	}
	e, err := RevisionEvent(&Revision{Revision: 8, Changes: []Change{
		{Op: ChangePut, Key: []byte("a"), Value: []byte("2"), CreateRevision: 2, Version: 4},
		{Op: ChangeDelete, Key: []byte("b")},
	}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v["position"] != "8" || e.Seq != 8 || string(e.Key) != v["key"] || !bytes.Equal(e.Value, val) {
		t.Fatalf("revision event: %d %q %x; FORMAT.md says %v", e.Seq, e.Key, e.Value, v)
	}
	if _, err := DecodeRevisionEvent(&repo.Event{Seq: 8, Op: repo.OpPut, Key: []byte(v["key"]), Value: val}); err != nil {
		t.Fatal(err)
	}
}
