package mongodb

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-backup/strata/internal/mongotest"
)

// TestLateOplogEntry: an oplog entry that appears behind the capture's
// position (FerretDB committed it after the capture had read past its
// timestamp) is not passed over silently: the capture takes a gap and a
// new base.
func TestLateOplogEntry(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "app")
	ctx := t.Context()
	r := newRepo(t)
	c := src.Client.Database("app").Collection("items")
	for i := range 5 {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	waitBase(t, logs)
	for i := 5; i < 10; i++ {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	waitCaptured(t, r, cli, logs)
	last, wall, err := LastTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	// An entry timestamped just before the newest one read, committed now.
	lateTS := Timestamp{last.T, last.I - 1}
	if last.I == 0 {
		lateTS = Timestamp{last.T - 1, 1 << 30}
	}
	_, err = oplogColl(src.Client).InsertOne(ctx, bson.D{{Key: "ts", Value: lateTS.bson()}, {Key: "op", Value: "i"}, {Key: "ns", Value: "app.items"},
		{Key: "o", Value: bson.D{{Key: "_id", Value: "late"}}}, {Key: "wall", Value: bson.NewDateTimeFromTime(wall.Add(-time.Millisecond))}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "committed after the capture had read past them"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the late entry was not noticed in 30 s\n%s", logs)
		}
	}
	for deadline := time.Now().Add(60 * time.Second); strings.Count(logs.String(), "new base snapshot") < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no new base after the late entry in 60 s\n%s", logs)
		}
	}
	// The log goes on after the new base, past the position it skipped.
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Fatal(err)
	}
	waitCaptured(t, r, cli, logs)
	if st := stop(); st.Bases < 2 || st.Gaps < 1 {
		t.Fatalf("capture: %d bases, %d gaps after a late entry\n%s", st.Bases, st.Gaps, logs)
	}
}
