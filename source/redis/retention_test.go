package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/s3"
	"github.com/strata-backup/strata/source/redis"
)

// TestCaptureBaseExtendsParentRetention: on a bucket with Object Lock and a
// store layout that sets retention, the base snapshot a capture writes
// extends the retention of its parent's packs (FORMAT.md §17), since it
// deduplicates against them: the engine's snapshot write does it, not the
// CLI.
func TestCaptureBaseExtendsParentRetention(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	o.Retention, o.Mode = time.Hour, s3.Governance // governance, so cleanup can remove the versions
	o.Verify = repo.VerifyObject
	st, err := s3.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, st, []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	l := &repo.Layout{Stores: []string{o.String()}, Retention: time.Hour.String(), Mode: s3.Governance}
	b, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, repo.LayoutName, b); err != nil {
		t.Fatal(err)
	}

	src := redistest.Start(t, redistest.Options{Diskless: true})
	c := src.Client(t)
	for i := range 300 {
		c.Must("SET", fmt.Sprintf("key:%03d", i), strings.Repeat("v", 200))
	}
	parent, err := redis.Backup(ctx, r, opts(src), redis.BackupOptions{Stream: stream, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Every shard stored so far belongs to the parent.
	mc := miniotest.Client(t, o)
	before := map[string]time.Time{}
	err = st.List(ctx, repo.DataPrefix, func(oi repo.ObjectInfo) error {
		_, until, err := mc.GetObjectRetention(ctx, o.Bucket, oi.Name, "")
		if err != nil || until == nil {
			return fmt.Errorf("retention of %s: %v", oi.Name, err)
		}
		before[oi.Name] = *until
		return nil
	})
	if err != nil || len(before) == 0 {
		t.Fatalf("the parent's shards: %d, %v", len(before), err)
	}
	time.Sleep(1500 * time.Millisecond) // retain-until has a resolution of a second

	cp := startCapture(t, r, opts(src))
	waitOnline(t, c)
	c.Must("SET", "after", "the base")
	c.WaitReplicas(20 * time.Second)
	if cst := cp.stop(t); cst.Bases != 1 {
		t.Fatalf("capture stats %+v, want one base", cst)
	}
	cat, err := index.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	base, err := cat.Latest(stream)
	if err != nil || base.ID == parent.ID || base.Snapshot.Parent == nil || *base.Snapshot.Parent != parent.ID {
		t.Fatalf("the capture's base %v (err %v) does not name the backup %s as its parent", base.ID.Short(), err, parent.ID.Short())
	}
	for name, was := range before {
		_, until, err := mc.GetObjectRetention(ctx, o.Bucket, name, "")
		if err != nil || until == nil {
			t.Fatalf("retention of %s: %v", name, err)
		}
		if !until.After(was) {
			t.Fatalf("the parent's shard %s is retained until %v, as before the capture's base (%v): not extended", name, *until, was)
		}
	}
}
