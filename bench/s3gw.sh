#!/usr/bin/env bash
# Dedup through the S3 gateway: two consecutive days of the shared NDJSON
# export pushed with `aws s3 cp`; prints the bytes the repository grew by for
# each day. Needs the aws CLI and ../shared beside this repository.
# Usage: [SHARED=DIR] bench/s3gw.sh [DOCS]   (default 200000 documents)
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-200000}
shared=$(cd "${SHARED:-../shared}" && pwd)
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/strata" ./cmd/strata
(cd "$shared/bench/gen" && go build -o "$work/gen" .)
"$work/gen" -docs "$docs" -day 0 > "$work/day0.ndjson"
"$work/gen" -docs "$docs" -day 1 > "$work/day1.ndjson"
export STRATA_REPO=$work/repo STRATA_PASSWORD=bench
"$work/strata" init --parity-shards 0 >/dev/null
"$work/strata" s3 user add --users "$work/users" --name bench > "$work/keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/strata" s3 serve --listen 127.0.0.1:$port --users "$work/users" 2>"$work/serve.log" & echo $! > "$work/pid"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=$(sed -n 1p "$work/keys") AWS_SECRET_ACCESS_KEY=$(sed -n 2p "$work/keys") AWS_DEFAULT_REGION=us-east-1
unset AWS_CA_BUNDLE AWS_PROFILE
aws=(aws --endpoint-url "http://127.0.0.1:$port")
"${aws[@]}" s3 mb s3://exports >/dev/null
size() { du -sb "$work/repo" | cut -f1; }
s0=$(size)
"${aws[@]}" s3 cp --only-show-errors "$work/day0.ndjson" s3://exports/users/day0.ndjson
s1=$(size)
"${aws[@]}" s3 cp --only-show-errors "$work/day1.ndjson" s3://exports/users/day1.ndjson
s2=$(size)
d0=$(stat -c %s "$work/day0.ndjson"); d1=$(stat -c %s "$work/day1.ndjson")
"${aws[@]}" s3 cp --only-show-errors s3://exports/users/day1.ndjson "$work/back.ndjson"
cmp "$work/day1.ndjson" "$work/back.ndjson"
awk -v d0="$d0" -v d1="$d1" -v a=$((s1-s0)) -v b=$((s2-s1)) 'BEGIN {
  printf "day 0: %d bytes pushed, repository grew %d bytes (%.1f%%)\n", d0, a, 100*a/d0
  printf "day 1: %d bytes pushed, repository grew %d bytes (%.1f%%)\n", d1, b, 100*b/d1 }'
