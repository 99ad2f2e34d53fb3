#!/usr/bin/env bash
# bench/server.sh: backup and restore of the shared 1.2M-document day-0 export
# through the index server (strata serve on loopback) against the same
# commands on a local repository, on one machine. Each round backs up into
# fresh repositories (one local, one behind a fresh server), then restores
# both and checks them byte for byte; rounds alternate which side goes first.
# Prints every time and the remote/local throughput ratios.
#
#   bash bench/server.sh                 # 1.2M documents, about 1 GiB
#   DOCS=100000 ROUNDS=1 bash bench/server.sh   # a quick run
#
# Client and server share the machine's cores: the remote figure includes
# the server's work (checking every upload against its name, writing it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DOCS=${DOCS:-1200000}
ROUNDS=${ROUNDS:-2}
W=$(mktemp -d "${TMPDIR:-/tmp}/strata-serverbench.XXXXXX")
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

(cd "$here" && go build -o "$W/strata" ./cmd/strata)
(cd "$here/../shared/bench/gen" && go build -o "$W/gen" .)
S=$W/strata
"$W/gen" -docs "$DOCS" -day 0 >"$W/day0.ndjson"
size=$(stat -c %s "$W/day0.ndjson")
export STRATA_PASSWORD=bench
unset STRATA_REPO STRATA_TOKEN STRATA_TOKEN_FILE
export STRATA_TOKEN
STRATA_TOKEN=$("$S" token create --tokens "$W/tokens" --name bench --scope 'backup:*,restore:*,read' 2>/dev/null)

# start_server DIR: serves DIR on a free loopback port; sets url and srv_pid.
start_server() {
  : >"$W/serve.log"
  "$S" serve --repo "$1" --listen 127.0.0.1:0 --tokens "$W/tokens" 2>"$W/serve.log" &
  srv_pid=$!
  local addr=
  for _ in $(seq 200); do
    addr=$(grep -o '"msg":"serving","addr":"[^"]*"' "$W/serve.log" 2>/dev/null | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)
    [ -n "$addr" ] && break
    kill -0 "$srv_pid" 2>/dev/null || { cat "$W/serve.log" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "server did not start" >&2; cat "$W/serve.log" >&2; exit 1; }
  url=http://$addr
}
stop_server() {
  kill "$srv_pid" && wait "$srv_pid" || true
  srv_pid=
}

# timed LABEL CMD...: runs CMD (its output to cmd.out and cmd.err), prints and records its wall seconds and peak RSS.
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$W/time" "$@" >"$W/cmd.out" 2>"$W/cmd.err" || { cat "$W/cmd.err" >&2; exit 1; }
  read -r wall rss user sys <"$W/time"
  printf '%-16s %7.2f s  %7.1f MB/s  %4d MiB peak RSS  %6.2f s client CPU\n' "$label" "$wall" "$(echo "$size / $wall / 1000000" | bc -l)" $((rss / 1024)) "$(echo "$user + $sys" | bc -l)"
  echo "$label $wall" >>"$W/results"
}

echo "export: $DOCS documents, $size bytes; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  rm -rf "$W/local" "$W/remote"
  "$S" init --repo "$W/local" >/dev/null
  "$S" init --repo "$W/remote" >/dev/null
  start_server "$W/remote"
  backup_local() { timed "backup local" "$S" backup --repo "$W/local" --stream bench/db --format ndjson "$W/day0.ndjson"; }
  backup_remote() { timed "backup remote" "$S" backup --repo "$url" --stream bench/db --format ndjson "$W/day0.ndjson"; }
  restore_local() { timed "restore local" "$S" restore --repo "$W/local" --stream bench/db --to "$W/out"; cmp "$W/out" "$W/day0.ndjson"; rm -f "$W/out"; }
  restore_remote() { timed "restore remote" "$S" restore --repo "$url" --stream bench/db --to "$W/out"; cmp "$W/out" "$W/day0.ndjson"; rm -f "$W/out"; }
  if [ $((round % 2)) = 1 ]; then
    backup_local; backup_remote; restore_local; restore_remote
  else
    backup_remote; backup_local; restore_remote; restore_local
  fi
  read -r -a st <"/proc/$srv_pid/stat"
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  server CPU over the round: $(echo "(${st[13]} + ${st[14]}) / $(getconf CLK_TCK)" | bc -l | xargs printf '%.2f') s user+system"
  echo "  stored: local $(du -sb "$W/local" | cut -f1) bytes, remote $(du -sb "$W/remote" | cut -f1) bytes; server log $(wc -l <"$W/serve.log") lines"
  stop_server
done

# Throughput ratio remote/local = local seconds / remote seconds, per round and overall.
awk '
  { t[$1" "$2] += $3; n[$1" "$2]++; r[$1" "$2, n[$1" "$2]] = $3 }
  END {
    for (i = 1; i <= n["backup local"]; i++)
      printf "round %d: backup remote/local throughput %.2f, restore %.2f\n", i,
        r["backup local", i] / r["backup remote", i], r["restore local", i] / r["restore remote", i]
    printf "all rounds: backup remote/local throughput %.2f (target >= 0.80), restore %.2f\n",
      t["backup local"] / t["backup remote"], t["restore local"] / t["restore remote"]
  }' "$W/results"
