#!/usr/bin/env bash
# S3 gateway throughput and memory against the CLI on the same file: the
# time of `strata backup` and `strata restore` of an NDJSON export beside the
# time of `aws s3 cp` up and down through `strata s3 serve` (each into its own
# fresh local repository without parity), and the gateway's peak RSS. Needs
# the aws CLI. The data comes from `strata sample`.
# Usage: bench/s3gw-speed.sh [DOCS]   (default 1200000 documents, about 1 GiB)
# STRATA=/path/to/strata runs that binary instead of building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-1200000}
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
S=${STRATA:-$work/strata}
[ -n "${STRATA:-}" ] || go build -o "$S" ./cmd/strata
"$S" sample --docs "$docs" > "$work/export.ndjson"
export STRATA_PASSWORD=bench
secs() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }

"$S" init --repo "$work/cli" --parity-shards 0 >/dev/null
backup=$(secs "$S" backup --repo "$work/cli" --stream bench --format ndjson "$work/export.ndjson")
restore=$(secs "$S" restore --repo "$work/cli" --stream bench --to "$work/cli.out")

export STRATA_REPO=$work/gw
"$S" init --parity-shards 0 >/dev/null
"$S" s3 user add --users "$work/users" --name bench > "$work/keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$S" s3 serve --listen 127.0.0.1:$port --users "$work/users" 2>"$work/serve.log" & echo $! > "$work/pid"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=$(sed -n 1p "$work/keys") AWS_SECRET_ACCESS_KEY=$(sed -n 2p "$work/keys") AWS_DEFAULT_REGION=us-east-1
unset AWS_CA_BUNDLE AWS_PROFILE
aws=(aws --endpoint-url "http://127.0.0.1:$port")
"${aws[@]}" s3 mb s3://bench >/dev/null
put=$(secs "${aws[@]}" s3 cp --only-show-errors "$work/export.ndjson" s3://bench/export.ndjson)
get=$(secs "${aws[@]}" s3 cp --only-show-errors s3://bench/export.ndjson "$work/gw.out")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$work/pid")/status")
cmp "$work/export.ndjson" "$work/gw.out"
cmp "$work/export.ndjson" "$work/cli.out"
size=$(stat -c %s "$work/export.ndjson")
awk -v s="$size" -v b="$backup" -v r="$restore" -v p="$put" -v g="$get" -v m="$rss" 'BEGIN {
  printf "file: %d bytes\n", s
  printf "strata backup %.1f s, aws s3 cp up %.1f s: the gateway at %.0f%% of the CLI\n", b, p, 100*b/p
  printf "strata restore %.1f s, aws s3 cp down %.1f s: the gateway at %.0f%% of the CLI\n", r, g, 100*r/g
  printf "gateway peak RSS %.0f MiB\n", m/1024 }'
