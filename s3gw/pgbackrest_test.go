package s3gw

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/internal/testenv"
)

// pgBackRest with a real PostgreSQL 15 on the gateway over TLS (test
// certificate, repo1-storage-verify-tls=n): full backup, WAL archiving, an
// incremental backup, and a restore --type=time to an instant between two
// transactions that must hold exactly the rows committed before it.
func TestPgBackRest(t *testing.T) {
	pgbr := testenv.Binary(t, "STRATA_PGBACKREST", "pgbackrest", "apt-get install pgbackrest")
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	initdb := os.Getenv("STRATA_INITDB")
	if initdb == "" && len(bins) > 0 {
		initdb = bins[len(bins)-1]
	}
	if initdb == "" {
		testenv.Binary(t, "STRATA_INITDB", "initdb", "apt-get install postgresql")
	}
	bin := filepath.Dir(initdb)

	// PostgreSQL refuses to run as root: run it and pgBackRest as postgres.
	var asUser []string
	base := t.TempDir()
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root without a postgres user: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		asUser = []string{"runuser", "-u", "postgres", "--"}
		for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
	}
	mk := func(name string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			os.Chown(d, uid, gid)
		}
		return d
	}
	pg, logs, lock, spool := mk("pg"), mk("log"), mk("lock"), mk("spool")
	run := func(name string, args ...string) string {
		t.Helper()
		argv := append(append(append([]string{}, asUser...), name), args...)
		cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LANG=C"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestCert(t, cert, key)
	s := startServerWith(t, newTestRepo(t), Options{}, ServerOptions{TLSCert: cert, TLSKey: key})
	if err := s.g.CreateBucket(t.Context(), "pgbackrest", "", nil); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(s.addr, ":")
	conf := filepath.Join(base, "pgbackrest.conf")
	data := filepath.Join(pg, "data")
	freePort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pgPort := strconv.Itoa(freePort)
	os.WriteFile(conf, fmt.Appendf(nil, `[global]
repo1-type=s3
repo1-s3-bucket=pgbackrest
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=%s
repo1-s3-region=us-east-1
repo1-s3-key=%s
repo1-s3-key-secret=%s
repo1-s3-uri-style=path
repo1-storage-verify-tls=n
repo1-path=/repo
compress-type=none
log-path=%s
lock-path=%s
spool-path=%s
log-level-console=warn

[main]
pg1-path=%s
pg1-port=%s
pg1-socket-path=%s
`, port, s.access, s.secret, logs, lock, spool, data, pgPort, pg), 0o644)
	pb := func(args ...string) string {
		return run(pgbr, append([]string{"--config=" + conf, "--stanza=main"}, args...)...)
	}
	psql := func(sql string) string {
		return run(filepath.Join(bin, "psql"), "-h", pg, "-p", pgPort, "-qAt", "-d", "postgres", "-c", sql)
	}
	pgctl := func(args ...string) {
		run(filepath.Join(bin, "pg_ctl"), append([]string{"-D", data, "-l", filepath.Join(pg, "server.log"), "-w"}, args...)...)
	}

	run(initdb, "-D", data, "-A", "trust")
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = ''\nwal_level = replica\narchive_mode = on\n"+
		"archive_command = '%s --config=%s --stanza=main archive-push %%p'\n", pgPort, pg, pgbr, conf)
	f.Close()
	pgctl("start")
	t.Cleanup(func() {
		argv := append(append([]string{}, asUser...), filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop")
		exec.Command(argv[0], argv[1:]...).Run()
	})

	pb("stanza-create")
	psql("create table t (id int primary key)")
	psql("insert into t select generate_series(1, 1000)")
	pb("--type=full", "backup")
	psql("insert into t select generate_series(1001, 2000)")
	time.Sleep(1100 * time.Millisecond)
	target := psql("select clock_timestamp()")
	time.Sleep(1100 * time.Millisecond)
	psql("insert into t select generate_series(2001, 3000)")
	psql("select pg_switch_wal()")
	pb("--type=incr", "backup")
	if info := pb("info"); !strings.Contains(info, "incr backup") || !strings.Contains(info, "status: ok") {
		t.Fatalf("pgbackrest info:\n%s", info)
	}

	pgctl("stop")
	if err := os.Rename(data, data+".orig"); err != nil {
		t.Fatal(err)
	}
	pb("--type=time", "--target="+target, "--target-action=promote", "restore")
	pgctl("start")
	var got string
	for range 50 { // recovery replays the archived WAL, then promotes
		got = psql("select count(*), min(id), max(id) from t")
		if got == "2000|1|2000" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != "2000|1|2000" {
		t.Fatalf("restored cluster at %s holds %s (count|min|max), want 2000|1|2000", target, got)
	}
}
