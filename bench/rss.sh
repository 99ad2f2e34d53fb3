#!/usr/bin/env bash
# bench/rss.sh: does memory grow with the repository? Backs up day 1 of
# stream "a" (parent: day 0 of "a") into (1) a repository holding only day 0 of
# "a", and (2) one that also holds ten other streams of the same size, and
# prints the peak RSS of each day-1 backup and/or of a restore of that day-1
# snapshot. Target: (2) ≤ 1.2 × (1).
#
#   bench/rss.sh                  # DOCS=200000 per stream by default, backup
#   MODE=restore bench/rss.sh     # the restore of day 1 instead (MODE=both: both)
#   DOCS=1200000 bench/rss.sh     # the full-size workload (11 × 1 GiB of input)
#   GENDIR=/path/to/shared/bench/gen  # the generator, when not at ../shared/bench/gen
#
# A restore's peak is reported twice: the whole process (/usr/bin/time), whose
# floor is argon2id's 64 MiB arena plus the binary while the key is derived,
# and the peak after the key (sampled from /proc every 10 ms once the arena is
# returned), which is what the restore itself holds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DOCS=${DOCS:-200000}
OTHERS=${OTHERS:-10}
MODE=${MODE:-backup}
case $MODE in backup | restore | both) ;; *) echo "MODE must be backup, restore or both" >&2; exit 2 ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$here" && go build -o "$work/strata" ./cmd/strata)
(cd "${GENDIR:-$here/../shared/bench/gen}" && go build -o "$work/gen" .)
"$work/gen" -docs "$DOCS" -day 0 >"$work/day0.ndjson"
"$work/gen" -docs "$DOCS" -day 1 >"$work/day1.ndjson"
export STRATA_PASSWORD=bench
S="$work/strata"

peak() { # peak RSS in KiB of a backup of $2 into repository $1 as stream $3
  /usr/bin/time -f %M -o "$work/rss" "$S" backup --repo "$1" --stream "$3" --format ndjson "$2" >/dev/null
  cat "$work/rss"
}
# restore_peak REPO STREAM: "whole after-key" peaks in KiB of a restore of
# the stream's latest snapshot, whose output must equal day 1.
restore_peak() {
  /usr/bin/time -f %M -o "$work/rss" "$S" restore --repo "$1" --stream "$2" --to - >"$work/out" &
  local pid=$! max=0 after=0 dropped=0 rss child=
  for _ in $(seq 200); do # /usr/bin/time's child: strata itself
    child=$(pgrep -P $pid -n || true)
    [ -n "$child" ] && break
    sleep 0.005
  done
  while kill -0 "$child" 2>/dev/null; do
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$child/status" 2>/dev/null || true)
    [ -z "$rss" ] && break
    ((rss > max)) && max=$rss
    # argon2id's arena handed back: RSS falls below half its peak.
    ((dropped == 0 && max > 60000 && rss * 2 < max)) && dropped=1
    ((dropped == 1 && rss > after)) && after=$rss
    sleep 0.01
  done
  wait $pid
  cmp -s "$work/out" "$work/day1.ndjson" || { echo "restore differs from day 1" >&2; exit 1; }
  echo "$(cat "$work/rss") $after"
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
  read -r whole after < <(if [ "$MODE" != backup ]; then restore_peak "$R" a; else echo "0 0"; fi)
  echo "$variant $rss $(du -sb "$R" | cut -f1) $whole $after" >>"$work/out.txt"
done
read -r _ small_rss small_bytes small_whole small_after < <(grep '^small' "$work/out.txt")
read -r _ large_rss large_bytes large_whole large_after < <(grep '^large' "$work/out.txt")
growth() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", (b / a - 1) * 100 }'; }
if [ "$MODE" != restore ]; then
  echo "| repository | stored bytes | day-1 backup peak RSS (MiB) |"
  echo "|---|---|---|"
  echo "| stream a only | $small_bytes | $((small_rss / 1024)) |"
  echo "| + $OTHERS other streams | $large_bytes | $((large_rss / 1024)) |"
  echo "backup growth: $(growth "$small_rss" "$large_rss") (target ≤ 20%)"
fi
if [ "$MODE" != backup ]; then
  echo "| repository | stored bytes | day-1 restore peak RSS, whole process (MiB) | after key derivation (MiB) |"
  echo "|---|---|---|---|"
  echo "| stream a only | $small_bytes | $((small_whole / 1024)) | $((small_after / 1024)) |"
  echo "| + $OTHERS other streams | $large_bytes | $((large_whole / 1024)) | $((large_after / 1024)) |"
  echo "restore growth: whole $(growth "$small_whole" "$large_whole"), after the key $(growth "$small_after" "$large_after") (target ≤ 20%)"
fi
