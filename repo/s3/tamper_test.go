package s3_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/zeebo/blake3"

	"github.com/strata-backup/strata/internal/miniotest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/s3"
	"github.com/strata-backup/strata/repo/shard"
)

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// contentAddressed returns an object named prefix + hex(BLAKE3(data)), as
// index files and snapshots are.
func contentAddressed(prefix string, data []byte) string {
	sum := blake3.Sum256(data)
	return prefix + hex.EncodeToString(sum[:])
}

// realObjects returns shards of one pack and a few content-addressed
// objects, which repo.VerifyObject can check.
func realObjects(t *testing.T) map[string][]byte {
	t.Helper()
	objects := make(map[string][]byte)
	id, shards, err := shard.Encode(random(1, 300<<10), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, obj := range shards {
		objects[repo.ShardName(repo.ID(id), i)] = obj
	}
	for i := range 3 {
		data := random(uint64(10+i), 1000+i)
		objects[contentAddressed(repo.IndexPrefix, data)] = data
	}
	snap := random(20, 500)
	objects[contentAddressed(repo.SnapshotsPrefix, snap)] = snap
	return objects
}

func versionsOf(t *testing.T, c *minio.Client, bucket, key string) []minio.ObjectInfo {
	t.Helper()
	var vs []minio.ObjectInfo
	for obj := range c.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if obj.Key == key {
			vs = append(vs, obj)
		}
	}
	return vs
}

// TestRansomware plays an attacker holding the repository's credentials
// against a compliance-locked bucket: they cannot remove locked versions,
// so they hide objects behind delete markers and shadow them with junk. A
// store opened afterwards must still serve every object intact.
func TestRansomware(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	o.Retention = time.Hour
	o.Mode = s3.Compliance
	o.Verify = repo.VerifyObject
	s := open(t, o)
	objects := realObjects(t)
	var names []string
	for name, data := range objects {
		if err := s.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)

	attacker := miniotest.Client(t, o)
	junk := func(name string, seed uint64) {
		t.Helper()
		b := random(seed, len(objects[name])) // same size: nothing gives it away
		if _, err := attacker.PutObject(ctx, o.Bucket, name, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("attacker overwriting %s: %v", name, err)
		}
	}
	hide := func(name string) {
		t.Helper()
		if err := attacker.RemoveObject(ctx, o.Bucket, name, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("attacker hiding %s: %v", name, err)
		}
	}
	for i, name := range names {
		// Removing a locked version fails, bypass or not.
		for _, v := range versionsOf(t, attacker, o.Bucket, name) {
			err := attacker.RemoveObject(ctx, o.Bucket, name, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true})
			if err == nil {
				t.Fatalf("attacker removed locked version %s of %s", v.VersionID, name)
			}
			past := time.Now().Add(time.Minute)
			mode := minio.Governance
			if err := attacker.PutObjectRetention(ctx, o.Bucket, name, minio.PutObjectRetentionOptions{
				Mode: &mode, RetainUntilDate: &past, VersionID: v.VersionID, GovernanceBypass: true,
			}); err == nil {
				t.Fatalf("attacker shortened the compliance retention of %s", name)
			}
		}
		switch i % 4 {
		case 0:
			hide(name)
		case 1:
			junk(name, uint64(100+i))
		case 2:
			junk(name, uint64(100+i))
			hide(name)
		case 3:
			junk(name, uint64(100+i))
			junk(name, uint64(200+i))
		}
	}
	// What a naive reader of the latest versions sees now.
	for _, name := range names {
		if obj, err := attacker.GetObject(ctx, o.Bucket, name, minio.GetObjectOptions{}); err == nil {
			b, _ := readAll(obj)
			if bytes.Equal(b, objects[name]) {
				t.Fatalf("the attack left %s intact", name)
			}
		}
	}

	fresh := open(t, o)
	for _, name := range names {
		got, err := fresh.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%s) after the attack: %v", name, err)
		}
		if !bytes.Equal(got, objects[name]) {
			t.Fatalf("Get(%s) after the attack returned other bytes", name)
		}
		info, err := fresh.Stat(ctx, name)
		if err != nil || info.Size != int64(len(objects[name])) {
			t.Fatalf("Stat(%s) = %+v, %v; want size %d", name, info, err, len(objects[name]))
		}
		r, err := fresh.GetRange(ctx, name, 7, 100)
		if err != nil || !bytes.Equal(r, objects[name][7:107]) {
			t.Fatalf("GetRange(%s) after Get found the intact version: %d bytes, %v", name, len(r), err)
		}
	}
	var listed []string
	if err := fresh.List(ctx, "", func(info repo.ObjectInfo) error {
		listed = append(listed, info.Name)
		if info.Size != int64(len(objects[info.Name])) {
			t.Errorf("List reports %s with size %d, want %d", info.Name, info.Size, len(objects[info.Name]))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, names) {
		t.Fatalf("List after the attack = %q, want %q", listed, names)
	}
	if got := fresh.TamperedObjects(); !slices.Equal(got, names) {
		t.Fatalf("TamperedObjects = %q, want %q", got, names)
	}

	// A store that has not called Get yet reads ranges of hidden objects
	// from the intact version, verified.
	other := open(t, o)
	for i, name := range names {
		if i%4 != 0 && i%4 != 2 {
			continue
		}
		r, err := other.GetRange(ctx, name, 0, 64)
		if err != nil || !bytes.Equal(r, objects[name][:64]) {
			t.Fatalf("GetRange(%s) of a hidden object: %d bytes, %v", name, len(r), err)
		}
		info, err := other.Stat(ctx, name)
		if err != nil || info.Size != int64(len(objects[name])) {
			t.Fatalf("Stat(%s) of a hidden object = %+v, %v", name, info, err)
		}
	}

	// RetainUntil extends the intact version, not the junk on top.
	name := names[1] // overwritten once
	vs := versionsOf(t, attacker, o.Bucket, name)
	intact := vs[len(vs)-1].VersionID
	until := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	if err := open(t, o).RetainUntil(ctx, name, until); err != nil {
		t.Fatal(err)
	}
	if _, got := retention(t, attacker, o.Bucket, name, intact); !got.Equal(until) {
		t.Fatalf("retention of the intact version after RetainUntil = %v, want %v", got, until)
	}

	// Delete removes the junk and the markers, keeps what is locked, and
	// says so: the intact object is the latest again.
	for _, name := range names {
		if err := fresh.Delete(ctx, name); !errors.Is(err, repo.ErrRetained) {
			t.Fatalf("Delete(%s): %v, want one wrapping repo.ErrRetained", name, err)
		}
		obj, err := attacker.GetObject(ctx, o.Bucket, name, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := readAll(obj); err != nil || !bytes.Equal(b, objects[name]) {
			t.Fatalf("latest version of %s after Delete is not the intact one (%v)", name, err)
		}
	}
}

func readAll(obj *minio.Object) ([]byte, error) {
	defer obj.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(obj)
	return buf.Bytes(), err
}

// TestNoIntactVersion checks that junk is never served as data.
func TestNoIntactVersion(t *testing.T) {
	ctx := t.Context()
	for _, lock := range []bool{false, true} {
		o := miniotest.Bucket(t, lock)
		o.Verify = repo.VerifyObject
		s := open(t, o)
		name := contentAddressed(repo.IndexPrefix, []byte("the real bytes"))
		for _, junk := range []string{"junk one", "junk two"} {
			if err := s.Put(ctx, name, []byte(junk)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := s.Get(ctx, name)
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("lock %v: Get of an object with no intact version = %q, %v; want an error wrapping repo.ErrCorrupt", lock, b, err)
		}
		if lock {
			// Hidden as well: still corrupt, not missing.
			if err := miniotest.Client(t, o).RemoveObject(ctx, o.Bucket, name, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, name); !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("Get of a hidden object with no intact version: %v, want one wrapping repo.ErrCorrupt", err)
			}
		}
		if got := s.TamperedObjects(); len(got) != 0 {
			t.Fatalf("TamperedObjects = %q, want none: nothing intact was served", got)
		}
	}
}

// TestHiddenWithoutVerify checks that without Verify a delete marker still
// does not hide an object.
func TestHiddenWithoutVerify(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	s := open(t, o)
	for _, data := range []string{"v1", "v2"} {
		if err := s.Put(ctx, "config", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := miniotest.Client(t, o).RemoveObject(ctx, o.Bucket, "config", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := open(t, o)
	if b, err := fresh.GetRange(ctx, "config", 1, 1); err != nil || string(b) != "2" {
		t.Fatalf("GetRange of a hidden object = %q, %v; want the newest real version's", b, err)
	}
	if b, err := fresh.Get(ctx, "config"); err != nil || string(b) != "v2" {
		t.Fatalf("Get of a hidden object = %q, %v; want the newest real version", b, err)
	}
	if got := fresh.TamperedObjects(); !slices.Equal(got, []string{"config"}) {
		t.Fatalf("TamperedObjects = %q", got)
	}
	// The repository writing the object again makes it the latest.
	if err := fresh.Put(ctx, "config", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if b, err := fresh.GetRange(ctx, "config", 0, 2); err != nil || string(b) != "v3" {
		t.Fatalf("GetRange after a new Put = %q, %v", b, err)
	}
}

// TestHiddenJunk has junk of another size under a delete marker: Stat and
// GetRange of a store that has not called Get must still find the intact
// version, by verifying.
func TestHiddenJunk(t *testing.T) {
	ctx := t.Context()
	o := miniotest.Bucket(t, true)
	o.Verify = repo.VerifyObject
	data := random(30, 5000)
	name := contentAddressed(repo.IndexPrefix, data)
	if err := open(t, o).Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	attacker := miniotest.Client(t, o)
	if _, err := attacker.PutObject(ctx, o.Bucket, name, bytes.NewReader([]byte("junk")), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := attacker.RemoveObject(ctx, o.Bucket, name, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s := open(t, o)
	if info, err := s.Stat(ctx, name); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
	}
	if got := s.TamperedObjects(); !slices.Equal(got, []string{name}) {
		t.Fatalf("TamperedObjects = %q", got)
	}
	s = open(t, o)
	if b, err := s.GetRange(ctx, name, 4000, 1000); err != nil || !bytes.Equal(b, data[4000:]) {
		t.Fatalf("GetRange = %d bytes, %v", len(b), err)
	}
	if b, err := s.GetRange(ctx, name, 4001, 1000); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("GetRange past the intact version's end = %d bytes, %v", len(b), err)
	}
}
