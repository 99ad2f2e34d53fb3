#!/usr/bin/env bash
# bench/thirty-days.sh: the 30-day cost (issue 15 item 6). DAYS daily exports
# of the project's own generator (`strata sample`, DOCS documents, its default
# change rate: 1% updated, 0.5% inserted, 0.5% deleted a day), each backed up
# by strata and by restic into one repository each, nothing forgotten. Prints
# one row a day (wall seconds of each backup, each repository's total bytes)
# and the totals after the last day.
#
#   bench/thirty-days.sh                       # 200,000 documents, 30 days
#   DOCS=50000 DAYS=10 bench/thirty-days.sh    # a quick run
#   STRATA=/tmp/strata bench/thirty-days.sh    # the binary to measure (default: built from this checkout)
#   STRATA_INIT_ARGS="--parity-shards 0"       # extra flags for strata init (default: 8+2 parity)
#
# Needs restic (Debian's package; installed with apt-get when missing). These
# machines are shared and noisy: compare the ratios within one run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DOCS=${DOCS:-200000}
DAYS=${DAYS:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-30d.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -z "${STRATA:-}" ]; then
  STRATA=$work/strata
  (cd "$here" && go build -o "$STRATA" ./cmd/strata)
fi
if ! command -v restic >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic) >/dev/null
fi
export RESTIC_PASSWORD=bench STRATA_PASSWORD=bench
bytes() { du -sb "$1" | cut -f1; }
# wall CMD...: runs CMD and prints its wall seconds
wall() {
  /usr/bin/time -f "%e" -o "$work/time" "$@"
  cat "$work/time"
}

"$STRATA" init --repo "$work/strata" ${STRATA_INIT_ARGS:-} >/dev/null
restic init -q -r "$work/restic" >/dev/null
start=1767225600 # the generator's default day 0, 2026-01-01T00:00:00Z

echo "$DOCS documents a day, $DAYS days; $(nproc) cores; $(restic version | cut -d' ' -f1-2)"
echo
echo "| day | export (MB) | strata backup (s) | restic backup (s) | strata total (MB) | restic total (MB) | strata / restic |"
echo "|---|---|---|---|---|---|---|"
st_sum=0 rs_sum=0
for ((d = 0; d < DAYS; d++)); do
  "$STRATA" sample --docs "$DOCS" --day "$d" >"$work/export.ndjson"
  size=$(stat -c %s "$work/export.ndjson")
  t=$((start + d * 86400))
  st=$(wall sh -c "'$STRATA' backup --repo '$work/strata' --stream bench --format ndjson --time $t '$work/export.ndjson' >/dev/null 2>&1")
  rs=$(wall sh -c "restic -q -r '$work/restic' backup --stdin --stdin-filename export.ndjson --time '$(date -u -d @$t '+%F %T')' <'$work/export.ndjson' >/dev/null")
  sb=$(bytes "$work/strata") rb=$(bytes "$work/restic")
  st_sum=$(echo "$st_sum + $st" | bc) rs_sum=$(echo "$rs_sum + $rs" | bc)
  printf '| %d | %.1f | %s | %s | %.1f | %.1f | %.1f%% |\n' "$d" "$(echo "$size / 1000000" | bc -l)" "$st" "$rs" \
    "$(echo "$sb / 1000000" | bc -l)" "$(echo "$rb / 1000000" | bc -l)" "$(echo "100 * $sb / $rb" | bc -l)"
done
# The last day restores byte for byte from both.
"$STRATA" restore --repo "$work/strata" --stream bench --to - >"$work/out"
cmp -s "$work/out" "$work/export.ndjson" || { echo "strata restore differs" >&2; exit 1; }
restic -q -r "$work/restic" dump latest export.ndjson >"$work/out"
cmp -s "$work/out" "$work/export.ndjson" || { echo "restic restore differs" >&2; exit 1; }
echo
printf 'after %d days: strata %.1f MB, restic %.1f MB: strata stores %.1f%% of restic; backup time a day: strata %.2f s, restic %.2f s (mean)\n' \
  "$DAYS" "$(echo "$sb / 1000000" | bc -l)" "$(echo "$rb / 1000000" | bc -l)" "$(echo "100 * $sb / $rb" | bc -l)" \
  "$(echo "$st_sum / $DAYS" | bc -l)" "$(echo "$rs_sum / $DAYS" | bc -l)"
