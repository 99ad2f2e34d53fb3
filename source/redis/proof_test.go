package redis

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/internal/redistest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
	"github.com/strata-backup/strata/source"
)

const proofStream = "cache/proof"

func proofRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serverOpts(s *redistest.Server) Options { return Options{Addr: s.Addr, Name: "redis://" + s.Addr} }

// fillAllTypes writes every data type in the encodings Redis 7 saves:
// small (listpack, intset) and large (hashtable, skiplist, several
// quicklist and stream nodes), integer and LZF-compressed strings, two
// databases, and keys with an expiry, which no proof counts.
func fillAllTypes(t *testing.T, c *redistest.Client) (persistent int) {
	t.Helper()
	long := strings.Repeat("compressible ", 20)
	c.Must("SET", "s:plain", "v")
	c.Must("SET", "s:int", "12345")
	c.Must("SET", "s:neg", "-7")
	c.Must("SET", "s:lzf", long)
	c.Must("SET", "s:bin", "\x00\xff\r\n")
	c.Must("SET", "s:big", strings.Repeat("0123456789abcdef", 2500)) // past a pipelined read
	c.Must("RPUSH", "l:small", "a", "1", "b", "-300000", "c")
	for i := range 300 {
		c.Must("RPUSH", "l:big", fmt.Sprintf("%s%d", long, i))
	}
	c.Must("RPUSH", "l:plain", strings.Repeat("x", 10000)) // a plain quicklist node
	c.Must("SADD", "set:int", "3", "1", "2", "-70000", "5000000000")
	c.Must("SADD", "set:small", "b", "a", "c")
	for i := range 200 {
		c.Must("SADD", "set:big", fmt.Sprintf("m%d", i))
	}
	c.Must("ZADD", "z:small", "1.5", "b", "-2", "a", "inf", "c", "3", "d")
	for i := range 200 {
		c.Must("ZADD", "z:big", fmt.Sprintf("%d.25", i), fmt.Sprintf("m%d", i))
	}
	c.Must("HSET", "h:small", "f2", "v2", "f1", "1", "n", "-5")
	for i := range 200 {
		c.Must("HSET", "h:big", fmt.Sprintf("f%d", i), long)
	}
	for i := range 250 {
		c.Must("XADD", "x:s", "*", "a", fmt.Sprint(i), "b", "same")
	}
	c.Must("XADD", "x:s", "*", "other", "fields", "n", "3")
	c.Must("XADD", "x:s", "99999999999999-5", "last", "1")
	c.Must("XDEL", "x:s", "99999999999999-5")
	c.Must("XGROUP", "CREATE", "x:s", "g", "0")
	c.Must("XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "x:s", ">")
	c.Must("XADD", "x:empty", "1-1", "a", "b")
	c.Must("XDEL", "x:empty", "1-1")
	c.Must("SET", "vol", "gone soon", "EX", "1000")
	c.Must("HSET", "vol:h", "a", "b")
	c.Must("PEXPIRE", "vol:h", "100000")
	c.Must("SELECT", 3)
	c.Must("SET", "s:plain", "other db")
	c.Must("SELECT", 0)
	return 19 // 18 in db 0, 1 in db 3
}

// TestRedisProofAllTypes: the proof a backup records from the RDB equals
// the proof of the live server read back key by key, for every type and
// encoding; a restore reads its target back and matches it; a target
// changed before the read-back fails with ErrProofMismatch.
func TestRedisProofAllTypes(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	c := src.Client(t)
	want := fillAllTypes(t, c)
	r := proofRepo(t)
	res, err := Backup(t.Context(), r, serverOpts(src), BackupOptions{Stream: proofStream, Wait: time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	proof, ok := res.Snapshot.Proof()
	if !ok {
		t.Fatal("the snapshot of every type records no proof")
	}
	if proof.Records != uint64(want) {
		t.Fatalf("the proof counts %d records, want %d", proof.Records, want)
	}
	conn, err := Dial(t.Context(), serverOpts(src))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	live := r.NewDigester()
	if err := TargetProof(t.Context(), conn, live); err != nil {
		t.Fatal(err)
	}
	if err := proof.Check("the live server", live.Proof()); err != nil {
		t.Fatalf("the RDB's proof and the server's read back differ: %v", err)
	}

	cat, err := index.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cat.Latest(proofStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := source.SnapshotProof(t.Context(), r, snap); err != nil {
		t.Fatalf("SnapshotProof: %v", err)
	}
	p, err := cat.Plan(proofStream, index.Target{Time: snap.Time})
	if err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t, redistest.Options{})
	st, err := Restore(t.Context(), r, p, serverOpts(dst), RestoreOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if st.Verified == "" || st.Proof != proof {
		t.Fatalf("restore verified %q with %v, want the snapshot's %v", st.Verified, st.Proof, proof)
	}

	// The same restore, with the target changed between the load and the
	// read-back: each kind of change is caught.
	for _, tamper := range [][]any{
		{"SET", "s:plain", "w"},
		{"LSET", "l:big", "7", "x"},
		{"SREM", "set:int", "2"},
		{"ZADD", "z:big", "0.5", "m3"},
		{"HSET", "h:small", "f1", "2"},
		{"XADD", "x:s", "*", "a", "b"},
		{"SET", "new", "1"},
		{"PERSIST", "vol"},
	} {
		beforeVerify = func() { dst.Client(t).Must(tamper...) }
		_, err := Restore(t.Context(), r, p, serverOpts(dst), RestoreOptions{Force: true, Timeout: 20 * time.Second})
		beforeVerify = nil
		if !errors.Is(err, repo.ErrProofMismatch) {
			t.Errorf("a target changed by %v before the read-back: %v, want ErrProofMismatch", tamper, err)
		}
	}
	// Changing only a TTL is not a change of the proven state.
	beforeVerify = func() { dst.Client(t).Must("EXPIRE", "vol", "5000") }
	defer func() { beforeVerify = nil }()
	if _, err := Restore(t.Context(), r, p, serverOpts(dst), RestoreOptions{Force: true, Timeout: 20 * time.Second}); err != nil {
		t.Errorf("a changed TTL failed the restore: %v", err)
	}
}

// TestRedisProofWrongManifest: a snapshot whose recorded proof is wrong
// fails its restore and its SnapshotProof with ErrProofMismatch.
func TestRedisProofWrongManifest(t *testing.T) {
	src := redistest.Start(t, redistest.Options{})
	c := src.Client(t)
	c.Must("SET", "a", "1")
	c.Must("HSET", "h", "f", "v")
	r := proofRepo(t)
	res, err := Backup(t.Context(), r, serverOpts(src), BackupOptions{Stream: proofStream, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bad := *res.Snapshot
	pf, _ := bad.Proof()
	pf.Digest[0] ^= 1
	bad.SetProof(pf)
	id, err := r.SaveSnapshot(t.Context(), &bad)
	if err != nil {
		t.Fatal(err)
	}
	ref := index.SnapshotRef{ID: id, Snapshot: &bad}
	if err := source.SnapshotProof(t.Context(), r, ref); !errors.Is(err, repo.ErrProofMismatch) {
		t.Errorf("SnapshotProof of a wrong manifest: %v, want ErrProofMismatch", err)
	}
	p := &index.Plan{Stream: proofStream, Target: index.Target{Time: bad.Time}, Base: ref}
	dst := redistest.Start(t, redistest.Options{})
	if _, err := Restore(t.Context(), r, p, serverOpts(dst), RestoreOptions{Timeout: 20 * time.Second}); !errors.Is(err, repo.ErrProofMismatch) {
		t.Errorf("restore of a wrong manifest: %v, want ErrProofMismatch", err)
	}
}

// TestDecodeListpackInts checks the listpack integer encodings against
// hand-made entries (Redis listpack.c).
func TestDecodeListpackInts(t *testing.T) {
	entries := [][]byte{
		{0x05},                   // 7-bit uint 5
		{0xdf, 0xff},             // 13-bit -1
		{0xf1, 0x00, 0x80},       // int16 -32768
		{0xf2, 0xff, 0xff, 0x7f}, // int24 8388607
		{0xf3, 0x00, 0x00, 0x00, 0x80},
		{0xf4, 1, 0, 0, 0, 0, 0, 0, 0},
		{0x82, 'h', 'i'},
	}
	var body []byte
	for _, e := range entries {
		body = append(body, e...)
		body = append(body, byte(len(e)))
	}
	lp := append([]byte{0, 0, 0, 0, byte(len(entries)), 0}, body...)
	lp = append(lp, 0xff)
	lp[0] = byte(len(lp))
	got, err := decodeListpack(lp)
	if err != nil {
		t.Fatal(err)
	}
	want := "5 -1 -32768 8388607 -2147483648 1 hi"
	if s := string(bytes.Join(got, []byte(" "))); s != want {
		t.Fatalf("got %q, want %q", s, want)
	}
}

// FuzzDecodeRDB: the decoder never panics on any input, and whatever it
// accepts it accepts the same way twice.
func FuzzDecodeRDB(f *testing.F) {
	f.Add([]byte("REDIS0011\xfa\x03ver\x057.2.0\xfe\x00\xfb\x01\x00\x00\x01a\x01b\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("REDIS0010\xfe\x00\x10\x01h\x0c\x0c\x00\x00\x00\x02\x00\x81a\x02\x01\x01\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("REDIS0010\x00\x01k\xc3\x04\x06\x01ab\xe0\x00\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n1, n2 int
		err1 := DecodeRDB(bytes.NewReader(b), func(*RDBKey) error { n1++; return nil })
		err2 := DecodeRDB(bytes.NewReader(b), func(*RDBKey) error { n2++; return nil })
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("two decodes differ: %v/%d, %v/%d", err1, n1, err2, n2)
		}
		if err1 != nil && !errors.Is(err1, ErrRDB) && !errors.Is(err1, ErrRDBUnsupported) {
			t.Fatalf("an error wrapping neither ErrRDB nor ErrRDBUnsupported: %v", err1)
		}
	})
}

// TestDecodeRDBSeed: the fuzz corpus's RDB, saved by redis-server 7.0
// with one small key of every type, decodes to every key but the volatile
// one, with the values redis-cli wrote.
func TestDecodeRDBSeed(t *testing.T) {
	b, err := os.ReadFile("testdata/fuzz/FuzzDecodeRDB/redis7-all-types")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = DecodeRDB(strings.NewReader(raw), func(k *RDBKey) error {
		if !k.Volatile {
			got[string(k.Name)] = fmt.Sprintf("%x", k.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"s":  "0176",
		"n":  "013432",
		"lz": "01" + fmt.Sprintf("%x", strings.Repeat("abcabcabc", 10)),
		"l":  "0203016101310162",
		"si": "0303013101320133",
		"ss": "030201610162",
		"z":  "04020161" + "3ff8000000000000" + "0162" + "4000000000000000", // a 1.5, b 2
		"h":  "05020166017601670131",                                        // f v, g 1
		"x":  "0602" + "01010101610162" + "0200020171017201730174",          // 1-1 a b, 2-0 q r s t
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %s: canonical value %s, want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("decoded %d persistent keys, want %d: %v", len(got), len(want), got)
	}
}

// redisVector reads a worked example of FORMAT.md.
func redisVector(t *testing.T, name string) map[string]string {
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
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		m[k] = v
	}
	return m
}

// TestRedisRecordVector checks the worked example of FORMAT.md §20: the
// canonical records of a small RDB and their proof under the master key
// of §2.
func TestRedisRecordVector(t *testing.T) {
	v := redisVector(t, "redis-record")
	rdb, err := hex.DecodeString(v["rdb hex"])
	if err != nil {
		t.Fatal(err)
	}
	master, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	d := repo.NewDigester(master)
	i := 0
	err = DecodeRDB(bytes.NewReader(rdb), func(k *RDBKey) error {
		i++
		if got, want := hex.EncodeToString(k.RecordKey()), v[fmt.Sprintf("record %d key hex", i)]; got != want {
			t.Errorf("record %d key %s, FORMAT.md says %s", i, got, want)
		}
		if got, want := hex.EncodeToString(k.Value), v[fmt.Sprintf("record %d value hex", i)]; got != want {
			t.Errorf("record %d value %s, FORMAT.md says %s", i, got, want)
		}
		d.Add(k.RecordKey(), k.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := d.Proof()
	if got := fmt.Sprint(p.Records); got != v["records"] || hex.EncodeToString(p.Digest[:]) != v["digest"] {
		t.Errorf("proof %d %x, FORMAT.md says %s %s", p.Records, p.Digest, v["records"], v["digest"])
	}
}
