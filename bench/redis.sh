#!/usr/bin/env bash
# Redis capture and restore throughput (issue 6). Starts two redis-servers
# on loopback in a temporary directory, captures a redis-benchmark SET load
# with `strata log --source`, reports how far the capture lagged, then
# restores the whole log into the second server and reports commands/s.
#
#   bench/redis.sh [REQUESTS] [PIPELINE]     (default 500000 16)
set -euo pipefail
N=${1:-500000}
P=${2:-16}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/strata" ./cmd/strata
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SRC=$(port); DST=$(port)
for p in "$SRC" "$DST"; do
  mkdir -p "$tmp/$p"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$tmp/$p" --save '' --appendonly no \
    --repl-diskless-sync-delay 0 --enable-debug-command yes --logfile "$tmp/$p/log" &
  pids+=($!)
done
sleep 0.5
export STRATA_PASSWORD=bench STRATA_REPO="$tmp/repo"
"$tmp/strata" init >/dev/null
"$tmp/strata" log --source "redis://127.0.0.1:$SRC" --stream bench --segment-interval 2s 2>"$tmp/log.err" &
cap=$!; pids+=($cap)
until redis-cli -p "$SRC" info replication | grep -q 'state=online'; do sleep 0.05; done

# Sample the capture's lag (master offset minus the capture's acked offset) while the load runs.
( maxlag=0
  while sleep 0.1; do
    info=$(redis-cli -p "$SRC" info replication | tr -d '\r')
    mo=$(sed -n 's/^master_repl_offset://p' <<<"$info")
    so=$(sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p' <<<"$info")
    [ -n "$so" ] && lag=$((mo - so)) && [ "$lag" -gt "$maxlag" ] && maxlag=$lag && echo "$maxlag" >"$tmp/maxlag"
  done ) &
sampler=$!; pids+=($sampler)
start=$(date +%s.%N)
redis-benchmark -p "$SRC" -t set -n "$N" -P "$P" -r 100000 -q | tr '\r' '\n' | grep -v '^$' | tail -1
end=$(date +%s.%N)
want=$(redis-cli -p "$SRC" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
until [ "$(redis-cli -p "$SRC" info replication | tr -d '\r' | sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p')" -ge "$want" ]; do sleep 0.01; done
caught=$(date +%s.%N)
kill "$sampler"
echo "load: $N SETs in $(echo "$end - $start" | bc) s; capture caught up $(echo "$caught - $end" | bc) s after the load ended; max lag sampled $(cat "$tmp/maxlag" 2>/dev/null || echo 0) bytes"
kill -TERM "$cap"; wait "$cap" || true
tail -1 "$tmp/log.err"
last=$("$tmp/strata" coverage --stream bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["windows"][-1]["to_position"])')
t0=$(date +%s.%N)
"$tmp/strata" restore --stream bench --at-position "$last" --target "redis://127.0.0.1:$DST" 2>&1 | tail -1
t1=$(date +%s.%N)
echo "restore: $last commands in $(echo "$t1 - $t0" | bc) s wall (process start to target promoted): $(echo "$last / ($t1 - $t0)" | bc) commands/s"
echo "dbsize source $(redis-cli -p "$SRC" dbsize) target $(redis-cli -p "$DST" dbsize); digests $(redis-cli -p "$SRC" debug digest) $(redis-cli -p "$DST" debug digest)"
