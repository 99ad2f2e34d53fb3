package mongodb

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// FerretDB commits oplog entries out of timestamp order, and the capture
// reads only entries older than settle. An entry whose commit took longer
// (a writer waiting on SQLite's lock under load) would appear behind the
// capture's position and be passed over: a silent hole in the log. The
// late check counts, now and then, the oplog's entries over a window of
// timestamps the capture has read through, and compares with how many it
// read: more in the oplog means some arrived late, and the capture takes a
// gap and a new base instead of going on without them.

const (
	lateEvery  = time.Second     // how often the oplog is counted
	lateWindow = 2 * time.Minute // how far back a late entry is caught
)

type readMark struct {
	ts   Timestamp
	n    int64 // entries read after the window's start, through ts
	when time.Time
}

// lateCheck tracks what the capture has read since it started polling.
type lateCheck struct {
	marks []readMark // ascending; marks[0] is the window's start
	read  int64      // entries read since the start
	last  time.Time
}

func newLateCheck(from Timestamp) *lateCheck {
	return &lateCheck{marks: []readMark{{ts: from, when: time.Now()}}, last: time.Now()}
}

// check records that the capture has read n more entries, through from,
// and every lateEvery counts the oplog's entries after the window's start
// through from. It returns an errResync when the oplog holds more than
// were read.
func (l *lateCheck) check(ctx context.Context, cli *mongo.Client, from Timestamp, n int64) error {
	l.read += n
	now := time.Now()
	if n > 0 {
		l.marks = append(l.marks, readMark{ts: from, n: l.read, when: now})
	}
	if now.Sub(l.last) < lateEvery {
		return nil
	}
	l.last = now
	// Move the window's start up to the newest mark older than the window.
	i := 0
	for i+1 < len(l.marks) && now.Sub(l.marks[i+1].when) > lateWindow {
		i++
	}
	l.marks = l.marks[i:]
	start := l.marks[0]
	if !from.After(start.ts) {
		return nil
	}
	have, err := oplogColl(cli).CountDocuments(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: start.ts.bson()}, {Key: "$lte", Value: from.bson()}}}})
	if err != nil {
		return err
	}
	if read := l.read - start.n; have > read {
		return &errResync{fmt.Sprintf("%d oplog entries between %s and %s were committed after the capture had read past them (FerretDB commits out of timestamp order; %d read, %d there now): a gap, and a new base",
			have-read, start.ts, from, read, have)}
	}
	return nil
}
