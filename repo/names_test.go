package repo

import (
	"strings"
	"testing"
)

func TestParseObjectKinds(t *testing.T) {
	id := ID{0xab, 0x01}
	seg := SegmentKey{Stream: "shop/users", First: 1, Last: 2, FirstTime: 3, LastTime: 4, ID: id}
	for _, tc := range []struct {
		name string
		kind Kind
	}{
		{ConfigName, KindConfig}, {LayoutName, KindLayout}, {KeyName(id), KindKey}, {ShardName(id, 12), KindData},
		{IndexName(id), KindIndex}, {SnapshotName(id), KindSnapshot}, {LabelName(id), KindLabel}, {seg.Name(), KindSegment},
		{PruneMarksName(42), KindPruneMarks}, {AuditName(7), KindAudit}, {RekeyPrefix + id.String(), KindRekey},
	} {
		o, err := ParseObject(tc.name)
		if err != nil || o.Kind != tc.kind {
			t.Fatalf("ParseObject(%q) = kind %v, %v; want %v", tc.name, o.Kind, err, tc.kind)
		}
		if KindOf(tc.name) != tc.kind {
			t.Fatalf("KindOf(%q) = %v, want %v", tc.name, KindOf(tc.name), tc.kind)
		}
		if tc.kind != KindConfig && tc.kind != KindLayout && tc.kind != KindPruneMarks && tc.kind != KindAudit && o.ID != id {
			t.Fatalf("ParseObject(%q).ID = %s, want %s", tc.name, o.ID, id)
		}
	}
	if o, _ := ParseObject(ShardName(id, 12)); o.Shard != 12 {
		t.Fatalf("shard index %d, want 12", o.Shard)
	}
	if o, _ := ParseObject(PruneMarksName(42)); o.Stamp != 42 {
		t.Fatalf("prune marks stamp %d, want 42", o.Stamp)
	}
	if o, _ := ParseObject(AuditName(7)); o.Stamp != 7 {
		t.Fatalf("audit stamp %d, want 7", o.Stamp)
	}
	for _, bad := range []string{"", "configx", "config/", "stores/", "keys/", "index/" + strings.ToUpper(id.String()),
		"data/zz/" + id.String() + ".1", "prune/marks-.json", "prune/marks-1x.json", "audit/99999999999999999999.jsonl",
		"labels/../keys/x", "other/x", "rekey/x", strings.Repeat("a", MaxNameLen+1)} {
		if _, err := ParseObject(bad); err == nil {
			t.Fatalf("ParseObject(%q) accepted", bad)
		}
	}
	if KindOfPrefix(IndexPrefix) != KindIndex || KindOfPrefix(ConfigName) != 0 || KindOfPrefix("logs/x/@") != 0 {
		t.Fatal("KindOfPrefix")
	}
}
