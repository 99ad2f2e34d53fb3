package ndjson_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/source/ndjson"
)

// TestGetLongAndPaddedRecords: documents longer than the largest chunk
// (64 KiB) are cut mid-record, some lines start with whitespace (so a cut
// can leave a tail that is itself a valid document), and the export is
// sorted or not: every key and prefix still comes back byte for byte.
func TestGetLongAndPaddedRecords(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	var lines []string
	for i := range 400 {
		pad := ""
		if rng.IntN(4) == 0 {
			pad = strings.Repeat(" ", 1+rng.IntN(3000))
		}
		body := strings.Repeat("x", rng.IntN(900))
		if rng.IntN(12) == 0 {
			body = strings.Repeat("y", 65536+rng.IntN(150000))
		}
		lines = append(lines, fmt.Sprintf(`%s{"_id":"k%05d","b":"%s"}`, pad, i*3, body))
	}
	for _, sorted := range []bool{true, false} {
		t.Run(fmt.Sprint("sorted=", sorted), func(t *testing.T) {
			r := newRepo(t)
			order := append([]string(nil), lines...)
			if !sorted {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			}
			backupAt(t, r, "s", []byte(strings.Join(order, "\n")+"\n"), 1767225600e9, 0)
			cat, err := index.LoadCatalog(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if s := cat.Stream("s")[0]; s.Sorted != sorted {
				t.Fatalf("snapshot sorted = %v", s.Sorted)
			}
			p, err := cat.Plan("s", index.Target{Time: cat.Stream("s")[0].Time})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(lines)*3+2; i += 1 + rng.IntN(3) {
				key := fmt.Sprintf("k%05d", i)
				got, err := ndjson.Get(ctx, r, p, []byte(key))
				if err != nil {
					t.Fatalf("get %s: %v", key, err)
				}
				want, ok := "", i%3 == 0 && i/3 < len(lines)
				if ok {
					want = lines[i/3]
				}
				if got.Found != ok || string(got.Doc) != want {
					t.Fatalf("get %s: found %v, %d bytes %.30q; want %v, %d bytes %.30q", key, got.Found, len(got.Doc), got.Doc, ok, len(want), want)
				}
			}
			for _, prefix := range []string{"k000", "k001", "k0102", "k9"} {
				var want bytes.Buffer
				for _, l := range lines {
					k, _ := ndjson.KeyOf([]byte(l), "_id")
					if strings.HasPrefix(string(k), prefix) {
						want.WriteString(l + "\n")
					}
				}
				var out bytes.Buffer
				if _, err := ndjson.RestoreSelected(ctx, r, p, ndjson.Selector{Prefix: []byte(prefix)}, &out); err != nil {
					t.Fatal(err)
				}
				if out.String() != want.String() {
					t.Fatalf("prefix %s: %d bytes, want %d", prefix, out.Len(), want.Len())
				}
			}
		})
	}
}
