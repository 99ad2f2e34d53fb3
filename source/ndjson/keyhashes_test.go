package ndjson

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestExportCheckerSpilledHashes: with a bound of a few hashes, an unsorted
// export's key hashes spill to runs, and Close names the same two lines as
// the hashes held whole would (the earliest line that repeats an earlier
// key, and the nearest line before it with that key); the temporary file
// is gone afterwards, whatever the verdict.
func TestExportCheckerSpilledHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 60 {
		n := 20 + rng.IntN(400)
		keys := make([]int, n)
		for i := range keys {
			keys[i] = rng.IntN(4 * n) // some repeat, somewhere
		}
		if trial%3 == 0 { // no repeats at all
			for i := range keys {
				keys[i] = i * 7 % n
			}
		}
		if trial%5 == 0 { // sorted for a long prefix, then one key out of order repeating an early one
			for i := range keys {
				keys[i] = i
			}
			keys[n-1] = rng.IntN(n / 2)
		}
		var export strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&export, "{\"_id\":%d}\n", k)
		}
		// The answer, from the keys themselves.
		var wantLine, wantFirst int
		seen := map[int]int{} // key → its last line so far
		for i, k := range keys {
			if prev, ok := seen[k]; ok && wantLine == 0 {
				wantLine, wantFirst = i+1, prev
			}
			seen[k] = i + 1
		}
		dir := t.TempDir()
		c := NewExportChecker("_id", false)
		c.hashes = newKeyHashes(dir, (1+rng.IntN(40))*keyHashSize)
		_, err := io.Copy(io.Discard, c.Reader(&smallReader{s: export.String(), n: 5}))
		switch {
		case wantLine == 0 && err != nil:
			t.Fatalf("trial %d: %v, want no error", trial, err)
		case wantLine != 0:
			want := fmt.Sprintf("line %d: its key repeats line %d ", wantLine, wantFirst)
			if wantFirst == wantLine-1 && err != nil && strings.Contains(err.Error(), fmt.Sprintf("line %d: key", wantLine)) {
				want = fmt.Sprintf("line %d: key", wantLine) // while sorted, refused as it came
			}
			if !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), want) {
				t.Fatalf("trial %d: %v, want %q", trial, err, want)
			}
		}
		if len(c.hashes.spill.runs) != 0 || c.hashes.spill.f != nil {
			t.Fatalf("trial %d: the checker still holds its runs after Close", trial)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("trial %d: %d temporary files left", trial, len(left))
		}
	}
}

// TestExportCheckerSpillsWhileSorted: a long sorted prefix spills its
// hashes (a later key out of order may repeat any of them), and the first
// key of the prefix is still found when the last line repeats it.
func TestExportCheckerSpillsWhileSorted(t *testing.T) {
	var export strings.Builder
	const n = 1000
	for i := range n {
		fmt.Fprintf(&export, "{\"_id\":\"k%05d\"}\n", i)
	}
	export.WriteString("{\"_id\":\"k00000\"}\n")
	c := NewExportChecker("_id", false)
	dir := t.TempDir()
	c.hashes = newKeyHashes(dir, 64*keyHashSize)
	if _, err := c.Write([]byte(export.String())); err != nil {
		t.Fatal(err)
	}
	if runs := len(c.hashes.spill.runs); runs < n/64 {
		t.Fatalf("%d runs spilled, want at least %d", runs, n/64)
	}
	// The runs' file has no name even before Close (a backup killed or
	// abandoned here leaves nothing behind), where the system allows it.
	if left, _ := os.ReadDir(dir); len(left) != 0 && runtime.GOOS != "windows" {
		t.Fatalf("%d files in the spill directory while the check runs", len(left))
	}
	err := c.Close()
	if want := fmt.Sprintf("line %d: its key repeats line 1 ", n+1); !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%v, want %q", err, want)
	}
}

// TestExportCheckerDamagedRun: a run cut short under the checker is an
// error of Close, not a verdict on the export.
func TestExportCheckerDamagedRun(t *testing.T) {
	c := NewExportChecker("_id", false)
	c.hashes = newKeyHashes(t.TempDir(), 4*keyHashSize)
	for i := range 10 {
		fmt.Fprintf(c, "{\"_id\":%d}\n", 10-i)
	}
	if err := c.hashes.spill.f.Truncate(c.hashes.spill.size - 5); err != nil {
		t.Fatal(err)
	}
	err := c.Close()
	if err == nil || errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), "spilled key hashes") {
		t.Fatalf("%v, want an error reading the spilled hashes", err)
	}
}

// FuzzKeyHashRun: a run of key hashes read back never panics the merge,
// and what the merge yields ascends strictly; anything else is an error.
func FuzzKeyHashRun(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 48))
	f.Add(append(bytes.Repeat([]byte{2}, 24), bytes.Repeat([]byte{1}, 24)...))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, run []byte) {
		m := &mergeRuns[keyHash]{src: []recordSource[keyHash]{
			&keyHashRun{r: bufio.NewReader(bytes.NewReader(run)), name: "fuzz"},
			&sliceSource[keyHash]{ch: []keyHash{{h1: 1 << 60, line: 3}}},
		}}
		var prev keyHash
		for i := 0; ; i++ {
			h, ok, err := m.next()
			if err != nil || !ok {
				return
			}
			if i > 0 && h.compare(prev) <= 0 {
				t.Fatalf("hashes out of order: %v after %v", h, prev)
			}
			prev = h
		}
	})
}
