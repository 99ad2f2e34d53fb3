package mongodb

import (
	"bytes"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/repo"
)

// formatVector returns the lines of FORMAT.md's block `vector name`.
func formatVector(t *testing.T, name string) []string {
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
	return strings.Split(strings.TrimSpace(body), "\n")
}

// TestFormatVectors checks the worked examples of FORMAT.md §23.
func TestFormatVectors(t *testing.T) {
	var want bytes.Buffer
	for _, l := range formatVector(t, "mongodb-base") {
		want.WriteString(strings.TrimPrefix(l, "line: ") + "\n")
	}
	var b bytes.Buffer
	bw := NewBaseWriter(&b)
	bw.Collection(&Collection{NS: "shop.users", Options: emptyDoc, Indexes: []bson.Raw{ej(t, `{"v":2,"key":{"_id":1},"name":"_id_"}`)}})
	bw.Document(ej(t, `{"_id":1,"name":"ann"}`))
	bw.Oplog(parseRec(t, `{"op":"u","ns":"shop.users","o":{"$v":2,"diff":{"u":{"name":"bob"}}},"o2":{"_id":1},"ts":{"$timestamp":{"t":1767225600,"i":2}},"wall":{"$date":"2026-01-01T00:00:00.100Z"}}`))
	if _, err := bw.Close(Timestamp{1767225600, 1}, Timestamp{1767225600, 2}, false); err != nil {
		t.Fatal(err)
	}
	if b.String() != want.String() {
		t.Fatalf("base encoding:\n got %s\nwant %s", b.String(), want.String())
	}
	recs, tr, err := readAll(want.Bytes())
	if err != nil || len(recs) != 3 || tr.EndTS() != (Timestamp{1767225600, 2}) || recs[2].Oplog.Op != "u" {
		t.Fatalf("decode the example: %v %+v %+v", err, recs, tr)
	}

	v := map[string]string{}
	for _, l := range formatVector(t, "mongodb-event") {
		k, val, _ := strings.Cut(l, ": ")
		v[k] = val
	}
	e := parseRec(t, `{"op":"d","ns":"shop.users","o":{"_id":1},"ts":{"$timestamp":{"t":1767225600,"i":3}},"wall":{"$date":"2026-01-01T00:00:00.123Z"}}`)
	ev, err := OplogEvent(5, e.Time().UnixNano(), e, false)
	if err != nil {
		t.Fatal(err)
	}
	val, err := hex.DecodeString(v["value hex"])
	if err != nil {
		t.Fatal(err)
	}
	if v["position"] != strconv.FormatUint(ev.Seq, 10) || v["key"] != string(ev.Key) || v["time"] != strconv.FormatInt(ev.Time, 10) || !bytes.Equal(ev.Value, val) {
		t.Fatalf("event: %d %q %d %x; FORMAT.md says %v", ev.Seq, ev.Key, ev.Time, ev.Value, v)
	}
	got, _, err := DecodeOplogEvent(&repo.Event{Seq: 5, Op: repo.OpPut, Key: []byte(v["key"]), Value: val})
	if err != nil || got.TS != (Timestamp{1767225600, 3}) {
		t.Fatalf("decode the example: %v %+v", err, got)
	}
}
