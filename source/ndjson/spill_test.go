package ndjson

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
)

// TestSpillingMerge: changes spilled to runs on disk merge into the same
// output as changes held in memory, for sorted and unsorted exports, with
// puts, deletes and keys rewritten across runs; the file goes on Close.
func TestSpillingMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	doc := func(k, v int) string { return fmt.Sprintf(`{"_id":"k%04d","v":%d}`, k, v) }
	var export []string
	for k := 0; k < 2000; k += 2 {
		export = append(export, doc(k, 0))
	}
	sortedExport := strings.Join(export, "\n") + "\n"
	shuffled := slices.Clone(export)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	unsortedExport := strings.Join(shuffled, "\n")

	for _, bound := range []int{1, 300, 5000, 1 << 30} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			dir := t.TempDir()
			mem, spill := NewChanges(), NewSpillingChanges(dir, bound)
			for i := range 3000 {
				k := rng.IntN(2100)
				e := repo.Event{Op: repo.OpPut, Key: fmt.Appendf(nil, "k%04d", k), Value: []byte(doc(k, i+1))}
				if rng.IntN(4) == 0 {
					e = repo.Event{Op: repo.OpDelete, Key: e.Key}
				}
				mem.Apply(&e)
				spill.Apply(&e)
			}
			if bound < 5000 && (spill.spill.f == nil || len(spill.spill.runs) < 2) {
				t.Fatalf("bound %d: no spill", bound)
			}
			var want, got bytes.Buffer
			if err := Merge(strings.NewReader(sortedExport), "_id", mem, &want); err != nil {
				t.Fatal(err)
			}
			n, err := mergeChanges(strings.NewReader(sortedExport), "_id", spill, &got)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("spilled merge differs:\n%.300s\nwant\n%.300s", got.String(), want.String())
			}
			if n != mem.Len() {
				t.Errorf("keys changed %d, want %d", n, mem.Len())
			}
			got.Reset()
			n, err = mergeUnsorted(strings.NewReader(unsortedExport), "_id", spill, &got)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() || n != mem.Len() {
				t.Fatalf("spilled unsorted merge differs (%d keys, want %d)", n, mem.Len())
			}
			if err := spill.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("%d files left after Close", len(left))
			}
		})
	}
}

// TestSpilledRunDamaged: a run changed under the merge is an error, never
// a wrong output.
func TestSpilledRunDamaged(t *testing.T) {
	ch := NewSpillingChanges(t.TempDir(), 1)
	defer ch.Close()
	for k := range 10 {
		ch.Apply(&repo.Event{Op: repo.OpPut, Key: fmt.Appendf(nil, "k%d", k), Value: []byte(`{"_id":"x"}`)})
	}
	if err := ch.spill.f.Truncate(ch.spill.size - 3); err != nil {
		t.Fatal(err)
	}
	if err := Merge(strings.NewReader(""), "_id", ch, &bytes.Buffer{}); err == nil {
		t.Fatal("a truncated run merged without error")
	}
}

// FuzzSpilledRun: a run file read back never panics the merge, and what it
// yields ascends strictly; anything else is an error.
func FuzzSpilledRun(f *testing.F) {
	f.Add([]byte("\x01a\x01\x02{}\x01b\x00"))
	f.Add([]byte("\x01b\x00\x01a\x00"))
	f.Add([]byte("\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, run []byte) {
		m := &mergeSource{src: []changeSource{
			&runSource{r: bufio.NewReader(bytes.NewReader(run)), name: "fuzz"},
			&heldSource{ch: []change{{key: "m", doc: []byte("{}")}}},
		}}
		var prev string
		for i := 0; ; i++ {
			c, ok, err := m.next()
			if err != nil || !ok {
				return
			}
			if i > 0 && c.key <= prev {
				t.Fatalf("keys out of order: %q after %q", c.key, prev)
			}
			prev = c.key
		}
	})
}
