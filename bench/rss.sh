#!/usr/bin/env bash
# bench/rss.sh: does backup memory grow with the repository? Backs up day 1 of
# stream "a" (parent: day 0 of "a") into (1) a repository holding only day 0 of
# "a", and (2) one that also holds ten other streams of the same size, and
# prints the peak RSS of each day-1 backup. Target: (2) ≤ 1.2 × (1).
#
#   bench/rss.sh                  # DOCS=200000 per stream by default
#   DOCS=1200000 bench/rss.sh     # the full-size workload (11 × 1 GiB of input)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DOCS=${DOCS:-200000}
OTHERS=${OTHERS:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$here" && go build -o "$work/strata" ./cmd/strata)
(cd "$here/../shared/bench/gen" && go build -o "$work/gen" .)
"$work/gen" -docs "$DOCS" -day 0 >"$work/day0.ndjson"
"$work/gen" -docs "$DOCS" -day 1 >"$work/day1.ndjson"
export STRATA_PASSWORD=bench
S="$work/strata"

peak() { # peak RSS in KiB of a backup of $2 into repository $1 as stream $3
  /usr/bin/time -f %M -o "$work/rss" "$S" backup --repo "$1" --stream "$3" --format ndjson "$2" >/dev/null
  cat "$work/rss"
}
for variant in small large; do
  R="$work/$variant"
  "$S" init --repo "$R" >/dev/null
  "$S" backup --repo "$R" --stream a --format ndjson "$work/day0.ndjson" >/dev/null
  if [ "$variant" = large ]; then
    for i in $(seq 1 "$OTHERS"); do
      "$work/gen" -docs "$DOCS" -day 0 -seed $((100 + i)) >"$work/other.ndjson"
      "$S" backup --repo "$R" --stream "other/$i" --format ndjson "$work/other.ndjson" >/dev/null
    done
  fi
  rss=$(peak "$R" "$work/day1.ndjson" a)
  echo "$variant $rss $(du -sb "$R" | cut -f1)" >>"$work/out"
done
read -r _ small_rss small_bytes < <(grep '^small' "$work/out")
read -r _ large_rss large_bytes < <(grep '^large' "$work/out")
echo "| repository | stored bytes | day-1 backup peak RSS (MiB) |"
echo "|---|---|---|"
echo "| stream a only | $small_bytes | $((small_rss / 1024)) |"
echo "| + $OTHERS other streams | $large_bytes | $((large_rss / 1024)) |"
awk -v a="$small_rss" -v b="$large_rss" 'BEGIN { printf "growth: %.1f%% (target ≤ 20%%)\n", (b / a - 1) * 100 }'
