package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/mongotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source"
)

type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) add(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func connect(t *testing.T, s *mongotest.Server, db string) (*mongo.Client, Config) {
	t.Helper()
	cfg := Config{URI: s.URI, Database: db}
	cli, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Disconnect(context.Background()) })
	return cli, cfg
}

// runCapture runs Capture until the returned stop is called.
func runCapture(t *testing.T, cli *mongo.Client, cfg Config, r *repo.Repository, logs *syncLog) (stop func() CaptureStats) {
	ctx, cancel := context.WithCancel(t.Context())
	var st CaptureStats
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err = Capture(ctx, cli, cfg, r, CaptureOptions{Stream: "s", Interval: 100 * time.Millisecond, Logf: logs.add})
	}()
	return func() CaptureStats {
		cancel()
		<-done
		if err != nil {
			t.Fatalf("capture: %v\n%s", err, logs)
		}
		return st
	}
}

// waitBase waits until the capture has stored a new base, so what is
// written next reaches the log (a write the base's dump already holds
// never does, and a test waiting for it in the log would wait forever).
func waitBase(t *testing.T, logs fmt.Stringer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(logs.String(), "new base snapshot"); {
		if time.Now().After(deadline) {
			t.Fatalf("no new base within 60 s\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCaptured waits until the stream's log holds the source's newest
// oplog entry, and returns the catalog.
func waitCaptured(t *testing.T, r *repo.Repository, src *mongo.Client, logs fmt.Stringer) *index.Catalog {
	t.Helper()
	want, _, err := LastTimestamp(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	var got Timestamp
	for deadline := time.Now().Add(120 * time.Second); ; {
		cat, err := index.LoadCatalog(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if head, ok := cat.Log("s").Newest(); ok {
			if got, err = lastEntry(t.Context(), r, head); err != nil {
				t.Fatal(err)
			}
			if !want.After(got) {
				return cat
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oplog entry %s not stored within 120 s (the log ends at %s)\n%s", want, got, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// state is every document of every collection of a database, by
// collection, in _id order, as raw BSON: comparing it compares every
// field, its type, its value and the fields' order.
type state map[string][]bson.Raw

func dumpState(t *testing.T, cli *mongo.Client, db string) state {
	t.Helper()
	names, err := cli.Database(db).ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	st := state{}
	for _, n := range names {
		if strings.HasPrefix(n, "system.") {
			continue
		}
		docs, _, err := retryInterrupted(func() ([]bson.Raw, int, error) {
			cur, err := cli.Database(db).Collection(n).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return nil, 0, err
			}
			defer cur.Close(t.Context())
			var docs []bson.Raw
			for cur.Next(t.Context()) {
				docs = append(docs, bytes.Clone(cur.Current))
			}
			return docs, 0, cur.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) > 0 {
			st[n] = docs
		}
	}
	return st
}

// retryInterrupted retries a read FerretDB's SQLite backend interrupted: its
// awaitData wait interrupts queries running beside it.
func retryInterrupted[A, B any](f func() (A, B, error)) (A, B, error) {
	for i := 0; ; i++ {
		a, b, err := f()
		if err == nil || i == 5 || !strings.Contains(err.Error(), "interrupted") {
			return a, b, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameState(t *testing.T, what string, got, want state) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: collection %s restored, not in the source", what, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g, w := got[n], want[n]
		if len(g) != len(w) {
			t.Errorf("%s: %s: %d documents, want %d", what, n, len(g), len(w))
			continue
		}
		for i := range w {
			if !bytes.Equal(g[i], w[i]) {
				t.Errorf("%s: %s document %d:\n got %s\nwant %s", what, n, i, short(g[i]), short(w[i]))
				break
			}
		}
	}
}

func short(d bson.Raw) string {
	s := d.String()
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func restoreInto(t *testing.T, cat *index.Catalog, r *repo.Repository, tgt *mongotest.Server, target index.Target, o RestoreOptions) RestoreStats {
	t.Helper()
	p, err := cat.Plan("s", target)
	if err != nil {
		t.Fatal(err)
	}
	cli, cfg := connect(t, tgt, o.Database)
	st, err := Restore(t.Context(), cli, cfg, r, p, o)
	if err != nil {
		t.Fatalf("restore at %s: %v", target, err)
	}
	// Every restore reads the target back and compares it with the state
	// computed from the repository (FORMAT.md §23.5).
	if !st.Checked || st.Proof.Records == 0 && st.Documents > 0 {
		t.Fatalf("restore at %s: the target was not verified: %+v", target, st)
	}
	return st
}

func user(i int) bson.D {
	return bson.D{
		{Key: "_id", Value: bson.NewObjectIDFromTimestamp(time.Unix(1767225600+int64(i), 0))},
		{Key: "n", Value: int32(i)},
		{Key: "big", Value: int64(i) << 40},
		{Key: "f", Value: float64(i) + 0.25},
		{Key: "name", Value: fmt.Sprintf("user %d", i)},
		{Key: "born", Value: bson.NewDateTimeFromTime(time.Date(1990, 1, 1+i, 0, 0, 0, 0, time.UTC))},
		// FerretDB v1 stores no Decimal128 (it drops the connection);
		// decimals round-trip in TestBaseRoundTrip.
		{Key: "key", Value: bson.Binary{Subtype: 0x04, Data: bytes.Repeat([]byte{byte(i)}, 16)}},
		{Key: "ok", Value: i%2 == 0},
		{Key: "nothing", Value: nil},
		{Key: "addr", Value: bson.D{{Key: "city", Value: "c" + fmt.Sprint(i%7)}, {Key: "geo", Value: bson.D{{Key: "lat", Value: 1.5}, {Key: "lon", Value: -2.5}}}}},
		{Key: "tags", Value: bson.A{"a", int32(i), bson.D{{Key: "k", Value: "v"}}}},
	}
}

// TestRestoreAtInstants: a seeded workload (inserts, $set, $inc, $push,
// $unset, replacements that drop fields, deletes, many collections, nested
// documents, ObjectId, dates, decimals, binary, a large document) is
// captured; the database restored at each of 12 instants equals, document
// by document and byte by byte, what the server held then. A collection
// restore restores one collection alone.
func TestRestoreAtInstants(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "shop")
	db := src.Client.Database("shop")
	ctx := t.Context()
	r := newRepo(t)

	// Seed before the capture starts, so the base holds documents and an index.
	var seed []any
	for i := 0; i < 40; i++ {
		seed = append(seed, user(i))
	}
	if _, err := db.Collection("users").InsertMany(ctx, seed); err != nil {
		t.Fatalf("%v\n%s", err, src.Logs())
	}
	if _, err := db.Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "name", Value: 1}}, Options: options.Index().SetName("by_name").SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)

	type instant struct {
		name string
		at   time.Time
		want state
	}
	var instants []instant
	mark := func(name string) {
		_, at, err := retryInterrupted(func() (Timestamp, time.Time, error) { return LastTimestamp(ctx, cli) })
		if err != nil {
			t.Fatal(err)
		}
		instants = append(instants, instant{name, at, dumpState(t, src.Client, "shop")})
		time.Sleep(5 * time.Millisecond) // the next phase's entries are in a later millisecond
	}
	users := db.Collection("users")
	id := func(i int) bson.D { return bson.D{{Key: "_id", Value: user(i)[0].Value}} }
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var more []any
	for i := 40; i < 60; i++ {
		more = append(more, user(i))
	}
	_, err := users.InsertMany(ctx, more)
	step(err)
	mark("insert")
	for i := 0; i < 10; i++ {
		_, err = users.UpdateOne(ctx, id(i), bson.D{{Key: "$set", Value: bson.D{{Key: "addr.city", Value: "moved"}, {Key: "addr.zip", Value: int32(1000 + i)}}}})
		step(err)
	}
	mark("$set nested")
	_, err = users.UpdateMany(ctx, bson.D{{Key: "ok", Value: true}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(100)}, {Key: "f", Value: 0.5}}}})
	step(err)
	mark("$inc")
	for i := 5; i < 15; i++ {
		_, err = users.UpdateOne(ctx, id(i), bson.D{{Key: "$push", Value: bson.D{{Key: "tags", Value: bson.D{{Key: "pushed", Value: int64(i)}}}}}})
		step(err)
	}
	mark("$push")
	_, err = users.UpdateMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$lt", Value: int32(30)}}}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "nothing", Value: ""}, {Key: "addr.geo", Value: ""}}}})
	step(err)
	mark("$unset")
	_, err = users.ReplaceOne(ctx, id(20), bson.D{{Key: "_id", Value: user(20)[0].Value}, {Key: "replaced", Value: true}})
	step(err)
	mark("replace dropping fields")
	_, err = users.DeleteMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: int32(50)}, {Key: "$lt", Value: int32(55)}}}})
	step(err)
	_, err = users.DeleteOne(ctx, id(1))
	step(err)
	mark("deletes")
	for c := 0; c < 12; c++ {
		coll := db.Collection(fmt.Sprintf("c%02d", c))
		for i := 0; i < 5; i++ {
			_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("k%d", i)}, {Key: "c", Value: int32(c)}, {Key: "when", Value: bson.NewDateTimeFromTime(time.Unix(int64(c*100+i), 0))}})
			step(err)
		}
	}
	mark("many collections")
	big := bson.D{{Key: "_id", Value: int64(7)}, {Key: "blob", Value: bson.Binary{Data: bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16)}}, {Key: "s", Value: strings.Repeat("x", 256<<10)}}
	_, err = db.Collection("large").InsertOne(ctx, big)
	step(err)
	mark("large document")
	_, err = db.Collection("large").UpdateOne(ctx, bson.D{{Key: "_id", Value: int64(7)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "s", Value: "short now"}}}})
	step(err)
	_, err = db.Collection("c03").DeleteMany(ctx, bson.D{})
	step(err)
	mark("large updated, a collection emptied")
	for i := 0; i < 30; i++ {
		_, err = users.UpdateOne(ctx, id(30+i%10), bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(1)}}}, {Key: "$set", Value: bson.D{{Key: "at", Value: bson.NewDateTimeFromTime(time.Unix(int64(i), 0))}}}})
		step(err)
	}
	mark("repeated updates")
	_, err = users.InsertOne(ctx, user(61))
	step(err)
	mark("insert after updates")

	cat := waitCaptured(t, r, cli, logs)
	st := stop()
	if st.Bases != 1 || st.Gaps != 0 {
		t.Fatalf("capture: %d bases, %d gaps; want 1 and 0\n%s", st.Bases, st.Gaps, logs)
	}
	if len(instants) < 10 {
		t.Fatalf("only %d instants", len(instants))
	}
	// The base records a proof, which its content gives again.
	base := cat.Stream("s")[0]
	if _, ok := base.Proof(); !ok {
		t.Fatalf("base %s records no proof", base.ID.Short())
	}
	step(source.SnapshotProof(ctx, r, base))
	for i, in := range instants {
		target := "shop_" + fmt.Sprint(i)
		st := restoreInto(t, cat, r, tgt, index.Target{Time: in.at}, RestoreOptions{Database: target})
		sameState(t, fmt.Sprintf("instant %d (%s)", i, in.name), dumpState(t, tgt.Client, target), in.want)
		// The prover of drill and check computes the same state without
		// a server.
		p, err := cat.Plan("s", index.Target{Time: in.at})
		step(err)
		sp, err := source.ProveState(ctx, r, p)
		step(err)
		if sp.Proof != st.Proof {
			t.Errorf("instant %d: the prover computed %v, the restore read back %v", i, sp.Proof, st.Proof)
		}
	}
	// A target written to during the restore fails its verification.
	beforeVerify = func() {
		tgt.Client.Database("tampered").Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "stray"}})
	}
	p, err := cat.Plan("s", index.Target{Time: instants[3].at})
	step(err)
	tcli, tcfg := connect(t, tgt, "tampered")
	_, err = Restore(ctx, tcli, tcfg, r, p, RestoreOptions{Database: "tampered"})
	beforeVerify = nil
	if !errors.Is(err, repo.ErrProofMismatch) {
		t.Fatalf("restore into a target written to meanwhile: %v, want ErrProofMismatch", err)
	}
	// A second base of the quiet source at the log's last position: the
	// first base plus the log replays to exactly its proof.
	head, _ := cat.Log("s").Newest()
	pos := head.Last
	res, err := Backup(ctx, cli, cfg, r, BackupOptions{Stream: "s", Position: &pos})
	step(err)
	if res.Unproven != nil {
		t.Fatalf("second base unproven: %v", res.Unproven)
	}
	cat2, err := index.LoadCatalog(ctx, r)
	step(err)
	snaps := cat2.Stream("s")
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	sp, err := source.ReplayProof(ctx, r, cat2, snaps[0], snaps[1])
	if err != nil || sp.Events == 0 {
		t.Fatalf("replay proof of the base and the log to the second base: %v (%d events)", err, sp.Events)
	}
	// The index of the base is recreated.
	var specs []bson.M
	cur, err := tgt.Client.Database("shop_0").Collection("users").Indexes().List(ctx)
	step(err)
	step(cur.All(ctx, &specs))
	found := false
	for _, s := range specs {
		if s["name"] == "by_name" && s["unique"] == true {
			found = true
		}
	}
	if !found {
		t.Errorf("index by_name not restored: %v", specs)
	}

	// A collection restore writes that collection alone, into a target
	// whose other collections it leaves as they are.
	last := instants[len(instants)-1]
	_, err = tgt.Client.Database("coll").Collection("other").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
	step(err)
	restoreInto(t, cat, r, tgt, index.Target{Time: last.at}, RestoreOptions{Database: "coll", Collections: []string{"users"}})
	got := dumpState(t, tgt.Client, "coll")
	if len(got["other"]) != 1 {
		t.Errorf("the collection restore touched another collection: %v", got["other"])
	}
	delete(got, "other")
	sameState(t, "collection restore", got, state{"users": last.want["users"]})

	// A target holding the collection is refused without --force, and
	// overwritten with it.
	p, err = cat.Plan("s", index.Target{Time: last.at})
	step(err)
	tcli, tcfg = connect(t, tgt, "coll")
	if _, err := Restore(ctx, tcli, tcfg, r, p, RestoreOptions{Database: "coll", Collections: []string{"users"}}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("restore into a non-empty target: %v, want ErrTargetNotEmpty", err)
	}
	_, err = tgt.Client.Database("coll").Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "stray"}})
	step(err)
	if _, err := Restore(ctx, tcli, tcfg, r, p, RestoreOptions{Database: "coll", Collections: []string{"users"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	got = dumpState(t, tgt.Client, "coll")
	delete(got, "other")
	sameState(t, "forced collection restore", got, state{"users": last.want["users"]})
}

// TestOplogRollover: while no capture runs the oplog rolls over past the
// stream's resume point; the restarted capture records a gap and takes a
// new base, restores inside the gap are refused, and restores after it
// are exact.
func TestOplogRollover(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{OplogDocs: 40})
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "app")
	ctx := t.Context()
	r := newRepo(t)
	c := src.Client.Database("app").Collection("items")
	write := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 5)
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	waitBase(t, logs)
	write(5, 10)
	waitCaptured(t, r, cli, logs)
	st := stop()
	_, before, err := LastTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	write(15, 50) // during the pause
	// An instant the rolled-over oplog loses: after the log's end and before
	// the new base, which holds the state after the last of these writes.
	inGapTS, inGap, err := LastTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	write(65, 50)
	if err := src.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := FirstTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if first.IsZero() || !first.After(st.Last) {
		t.Fatalf("the oplog was not trimmed past %s (it starts at %s)", st.Last, first)
	}
	time.Sleep(5 * time.Millisecond)
	logs2 := &syncLog{}
	stop = runCapture(t, cli, cfg, r, logs2)
	waitBase(t, logs2)
	write(115, 10)
	cat := waitCaptured(t, r, cli, logs2)
	st2 := stop()
	if st2.Bases != 1 || st2.Gaps != 1 || !strings.Contains(logs2.String(), "rolled over") {
		t.Fatalf("after the rollover: %d bases, %d gaps\n%s", st2.Bases, st2.Gaps, logs2)
	}
	_, after, err := LastTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpState(t, src.Client, "app")
	if _, err := cat.Plan("s", index.Target{Time: inGap}); !errors.Is(err, index.ErrNotRestorable) {
		t.Fatalf("restore inside the gap: %v, want ErrNotRestorable", err)
	}
	// The same by oplog timestamp: the last entry before the gap (the
	// newest the first capture read) maps to its position; anything after
	// it and before the new base's end is refused, since an entry the gap
	// lost may be at or before it.
	cov := cat.Coverage("s")
	if len(cov.Gaps) != 1 {
		t.Fatalf("coverage gaps %+v", cov.Gaps)
	}
	if p, err := PositionAt(ctx, r, cat, "s", st.Last); err != nil || p != cov.Gaps[0].FromPos-1 {
		t.Fatalf("PositionAt the last entry before the gap: %d, %v; want %d", p, err, cov.Gaps[0].FromPos-1)
	}
	for _, ts := range []Timestamp{{T: st.Last.T, I: st.Last.I + 1}, inGapTS} {
		if p, err := PositionAt(ctx, r, cat, "s", ts); !errors.Is(err, index.ErrNotRestorable) || !strings.Contains(err.Error(), "gap") {
			t.Fatalf("PositionAt(%s) in the gap: %d, %v; want ErrNotRestorable naming the gap", ts, p, err)
		}
	}
	restoreInto(t, cat, r, tgt, index.Target{Time: after}, RestoreOptions{Database: "after"})
	sameState(t, "after the gap", dumpState(t, tgt.Client, "after"), want)
	restoreInto(t, cat, r, tgt, index.Target{Time: before}, RestoreOptions{Database: "before"})
	if got := dumpState(t, tgt.Client, "before"); len(got["items"]) != 15 {
		t.Fatalf("before the gap: %d items, want 15", len(got["items"]))
	}
}

// TestUnreachableAndAuth: a server that is not there, and refused
// credentials, fail at Connect with their sentinels.
func TestUnreachableAndAuth(t *testing.T) {
	src := mongotest.Start(t, mongotest.Options{})
	dead := mongotest.Start(t, mongotest.Options{})
	dead.Stop()
	_, err := Connect(t.Context(), Config{URI: dead.URI, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unreachable server: %v", err)
	}
	_, err = Connect(t.Context(), Config{URI: src.URI, Username: "backup", Password: "wrong", Timeout: 5 * time.Second})
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("refused credentials: %v", err)
	}
}

// TestApplyRecorded applies oplog entries recorded in MongoDB's own format,
// which FerretDB cannot produce ($v:2 diffs, applyOps, commands), to the
// embedded server, and checks the state they leave.
func TestApplyRecorded(t *testing.T) {
	tgt := mongotest.Start(t, mongotest.Options{})
	ctx := t.Context()
	st := &RestoreStats{}
	a := &applier{ctx: ctx, cli: tgt.Client, sc: &scope{colls: map[string]bool{}}, batch: 100, st: st, pending: map[string][]mongo.WriteModel{}}
	recs := []string{
		`{"op":"c","ns":"shop.$cmd","o":{"create":"tmp"},` + tsField + `}`,
		`{"op":"i","ns":"shop.tmp","o":{"_id":1,"name":"ann","old":true,"addr":{"city":"Bergen"},"tags":["a","b","c"],"items":[{"q":1},{"q":2}]},` + tsField + `}`,
		`{"op":"i","ns":"shop.tmp","o":{"_id":2,"name":"cat"},` + tsField + `}`,
		`{"op":"u","ns":"shop.tmp","o":{"$v":2,"diff":{"d":{"old":false},"u":{"name":"bob"},"i":{"added":5},"saddr":{"u":{"city":"Oslo"}},"stags":{"a":true,"u3":"d"}}},"o2":{"_id":1},` + tsField + `}`,
		`{"op":"u","ns":"shop.tmp","o":{"$v":2,"diff":{"stags":{"a":true,"l":2,"u1":"z"},"sitems":{"a":true,"s1":{"i":{"r":true}}}}},"o2":{"_id":1},` + tsField + `}`,
		`{"op":"c","ns":"admin.$cmd","o":{"applyOps":[{"op":"u","ns":"shop.tmp","o":{"$v":1,"$set":{"n":1},"$unset":{"added":true}},"o2":{"_id":1}},{"op":"d","ns":"shop.tmp","o":{"_id":2}},{"op":"i","ns":"shop.tmp","o":{"_id":3,"x":1}}]},` + tsField + `}`,
		`{"op":"u","ns":"shop.tmp","o":{"_id":3,"y":2},"o2":{"_id":3},` + tsField + `}`,
		`{"op":"c","ns":"shop.$cmd","o":{"createIndexes":"tmp","v":2,"key":{"name":1},"name":"name_1"},` + tsField + `}`,
		`{"op":"c","ns":"shop.$cmd","o":{"renameCollection":"shop.tmp","to":"shop.final","stayTemp":false},` + tsField + `}`,
		`{"op":"c","ns":"shop.$cmd","o":{"create":"gone"},` + tsField + `}`,
		`{"op":"i","ns":"shop.gone","o":{"_id":1},` + tsField + `}`,
		`{"op":"c","ns":"shop.$cmd","o":{"drop":"gone"},` + tsField + `}`,
	}
	for _, rec := range recs {
		ops, err := parseRec(t, rec).Ops(OpsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.apply(ops); err != nil {
			t.Fatalf("%s: %v", rec, err)
		}
	}
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	// The same entries applied in memory by the prover give the proof of
	// what the server holds.
	sp := newStateProver(repo.NewDigester(make([]byte, 32)))
	var all [][]Op
	for _, rec := range recs {
		ops, _ := parseRec(t, rec).Ops(OpsOptions{})
		if err := sp.touch(ops); err != nil {
			t.Fatal(err)
		}
		all = append(all, ops)
	}
	sp.endTouch()
	for _, ops := range all {
		if err := sp.apply(ops, true); err != nil {
			t.Fatal(err)
		}
	}
	wantProof, err := sp.proof(nil)
	if err != nil {
		t.Fatal(err)
	}
	back := repo.NewDigester(make([]byte, 32))
	if err := readBack(ctx, tgt.Client, Config{}, &scope{colls: map[string]bool{}}, "shop", back); err != nil {
		t.Fatal(err)
	}
	if back.Proof() != wantProof || wantProof.Records != 2 {
		t.Fatalf("the server holds %v, the prover computed %v", back.Proof(), wantProof)
	}
	got := dumpState(t, tgt.Client, "shop")
	want := `final: {"_id":1,"name":"bob","addr":{"city":"Oslo"},"tags":["a","z"],"items":[{"q":1},{"q":2,"r":true}],"n":1} {"_id":3,"y":2}`
	var parts []string
	for _, n := range []string{"final", "gone", "tmp"} {
		if docs, ok := got[n]; ok {
			s := n + ":"
			for _, d := range docs {
				s += " " + toJSON(d)
			}
			parts = append(parts, s)
		}
	}
	if g := strings.Join(parts, "; "); g != want {
		t.Fatalf("\n got %s\nwant %s", g, want)
	}
	var specs []bson.M
	cur, err := tgt.Client.Database("shop").Collection("final").Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &specs); err != nil || len(specs) != 2 {
		t.Fatalf("indexes after the rename: %v %v", err, specs)
	}
}

// TestLargeDocument: a document of 15 MiB goes through a base and, updated,
// through the log (its oplog entry is the whole document), and comes back
// byte for byte.
func TestLargeDocument(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 60 MiB through FerretDB's SQLite backend")
	}
	src := mongotest.Start(t, mongotest.Options{OplogBytes: 256 << 20})
	tgt := mongotest.Start(t, mongotest.Options{})
	cli, cfg := connect(t, src, "big")
	ctx := t.Context()
	r := newRepo(t)
	c := src.Client.Database("big").Collection("docs")
	payload := make([]byte, 15<<20)
	for i := range payload {
		payload[i] = byte(i * 7 >> 3)
	}
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "large"}, {Key: "data", Value: bson.Binary{Data: payload}}, {Key: "v", Value: int32(1)}}); err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	stop := runCapture(t, cli, cfg, r, logs)
	waitBase(t, logs)
	if _, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "large"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	cat := waitCaptured(t, r, cli, logs)
	if st := stop(); st.Bases != 1 || st.Appended != 1 || st.Gaps != 0 {
		t.Fatalf("capture: %+v\n%s", st, logs)
	}
	_, at, err := LastTimestamp(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	restoreInto(t, cat, r, tgt, index.Target{Time: at}, RestoreOptions{})
	sameState(t, "large document", dumpState(t, tgt.Client, "big"), dumpState(t, src.Client, "big"))
}
