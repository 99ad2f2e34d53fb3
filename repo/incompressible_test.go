package repo

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestIncompressible(t *testing.T) {
	random := make([]byte, 256<<10)
	rand.Read(random)
	id := make([]byte, 32)
	rand.Read(id)
	cases := []struct {
		name string
		data []byte
		want bool
	}{
		{"random 256 KiB", random, true},
		{"random 4 KiB", random[:4096], true},
		{"random, too short to judge", random[:4095], false},
		{"ndjson", []byte(strings.Repeat(`{"_id":"user-0000000042","name":"Ada Quill","city":"Lisbon","plan":"pro"}`+"\n", 4000)), false},
		{"one list blob ID repeated (a tree of identical chunks)", bytes.Repeat(id, 8192), false},
		{"zeros", make([]byte, 1<<20), false},
	}
	for _, tc := range cases {
		if got := Incompressible(tc.data); got != tc.want {
			t.Errorf("%s: Incompressible = %v, want %v", tc.name, got, tc.want)
		}
	}
}
