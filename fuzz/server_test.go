package fuzz

import (
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// The index server's request decoders: object names and list prefixes
// (authorization rests on their classification) and uploaded labels.

func FuzzObjectName(f *testing.F) {
	id := strings.Repeat("ab", 32)
	for _, s := range []string{"config", "stores", "keys/" + id, "data/ab/" + id + ".3", "index/" + id, "snapshots/" + id,
		"labels/" + id, "logs/shop/users/@00000000000000000001-00000000000000000002.0000000000000000001-0000000000000000002." + id,
		"prune/marks-1.json", "audit/0000000000000000001.jsonl", "checkpoints/shop/users/@" + id, "checkpoints/../@" + id, "../config", "logs/../keys/x", "data/zz/" + id + ".1", "index/" + strings.ToUpper(id)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		o, err := wire.ParseObject(name)
		if err != nil {
			return
		}
		// Everything accepted is a name inside the repository's namespace:
		// no traversal, no empty segment, and segment names carry a valid stream.
		// ("..abab" is a valid stream name segment: only a whole "." or ".."
		// segment climbs.)
		if slices.Contains(strings.Split(name, "/"), "..") || slices.Contains(strings.Split(name, "/"), ".") ||
			strings.Contains(name, "//") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("accepted %q as %v", name, o.Class)
		}
		if o.Class == wire.ClassSegment {
			if repo.ValidStream(o.Segment.Stream) != nil || o.Segment.Name() != name {
				t.Fatalf("segment %q parsed to stream %q, name %q", name, o.Segment.Stream, o.Segment.Name())
			}
		}
		if o.Class == wire.ClassCheckpoint {
			if _, id, err := repo.ParseCheckpointName(name); err != nil || repo.ValidStream(o.Stream) != nil || repo.CheckpointName(o.Stream, id) != name {
				t.Fatalf("checkpoint %q parsed to stream %q", name, o.Stream)
			}
		}
		if (o.Class == wire.ClassSnapshot || o.Class == wire.ClassLabel) && !strings.HasSuffix(name, o.ID.String()) {
			t.Fatalf("%q parsed to ID %s", name, o.ID)
		}
	})
}

func FuzzListPrefix(f *testing.F) {
	for _, s := range []string{"", "keys/", "data/", "index/", "snapshots/", "labels/", "logs/", "logs/shop/users/@", "logs/../x/@", "prune/marks-", "audit/", "logs/a//b/@", "checkpoints/", "checkpoints/shop/users/@", "checkpoints/a/../@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		pr, err := wire.ParsePrefix(p)
		if err != nil {
			return
		}
		want := repo.StreamLogPrefix(pr.Stream)
		if pr.Class == wire.ClassCheckpoint {
			want = repo.StreamCheckpointPrefix(pr.Stream)
		}
		if pr.Stream != "" && (repo.ValidStream(pr.Stream) != nil || want != p) {
			t.Fatalf("prefix %q gave stream %q", p, pr.Stream)
		}
	})
}

func FuzzLabel(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"shop/users","time":"2026-11-01T12:00:00Z","position":7,"format":"ndjson","size":10,"new_blobs":1,"stored_bytes":5}`))
	f.Add([]byte(`{"version":1,"stream":"../x","time":"2026-11-01T12:00:00Z","format":"raw","size":1,"new_blobs":0,"stored_bytes":0,"received":"2026-11-01T12:00:01Z","by":"ci"}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := repo.DecodeLabel("labels/fuzz", b)
		if err != nil {
			return
		}
		if repo.ValidStream(l.Stream) != nil || l.Size < 0 || l.Time.IsZero() {
			t.Fatalf("accepted a bad label: %+v", l)
		}
		enc, err := l.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := repo.DecodeLabel("labels/fuzz", enc)
		if err != nil || again.Stream != l.Stream || !again.Time.Equal(l.Time) || again.Size != l.Size {
			t.Fatalf("label does not round-trip: %v", err)
		}
	})
}

func FuzzLease(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"shop/users","generation":3,"epoch":2,"holder":{"id":"0123456789abcdef0123456789abcdef","host":"db1","pid":42},"since":"2026-11-01T12:00:00Z","renewed":"2026-11-01T12:00:20Z","interval_ms":10000,"missed":3}`))
	f.Add([]byte(`{"version":1,"stream":"shop/users","generation":3,"epoch":4,"holder":{"id":"x","host":"","pid":-1},"since":"2026-11-01T12:00:00Z","renewed":"2026-11-01T12:00:00Z","interval_ms":0,"missed":0,"released":true}`))
	f.Add([]byte(`{"version":2}`))
	const name = "leases/shop/users/@00000000000000000003"
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := repo.DecodeLease(name, b)
		if err != nil {
			return
		}
		if l.Stream != "shop/users" || l.Generation != 3 || l.Epoch == 0 || l.Epoch > l.Generation ||
			l.Interval() <= 0 || l.Interval() > repo.MaxLeaseInterval || l.Missed < 1 || l.Missed > repo.MaxLeaseMissed {
			t.Fatalf("accepted a bad lease: %+v", l)
		}
		enc, err := l.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := repo.DecodeLease(name, enc)
		if err != nil || *again != *l && !(again.Since.Equal(l.Since) && again.Renewed.Equal(l.Renewed)) {
			t.Fatalf("lease does not round-trip: %v", err)
		}
	})
}
