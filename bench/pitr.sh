#!/usr/bin/env bash
# bench/pitr.sh: change-log ingest speed, and restore --at one day after a snapshot
# against a plain restore of that snapshot, on the shared 1.2M-document export.
# STRATA and GEN name the binaries (build: go build -o /tmp/strata ./cmd/strata;
# (cd ../shared/bench/gen && go build -o /tmp/gen .)). Also prints ingest of 5 days of events.
set -euo pipefail
S=${STRATA:-/tmp/strata}; G=${GEN:-/tmp/gen}; W=${WORK:-/tmp/pitrbench}
rm -rf $W && mkdir -p $W && export STRATA_PASSWORD=pw STRATA_REPO=$W/repo
$S init >/dev/null
$G -docs 1200000 -day 0 > $W/day0
$G -docs 1200000 -day 1 -changes > $W/ev1
$G -docs 1200000 -day 1 > $W/day1
$S backup --stream db --format ndjson --time 1767225600 --position 0 $W/day0 >/dev/null 2>&1
/usr/bin/time -f "log: %e s, %M KiB" $S log --stream db --stdin < $W/ev1
rm -f $W/day0
for i in 1 2; do
/usr/bin/time -f "plain restore: %e s, %M KiB" $S restore --stream db --to $W/out-plain
/usr/bin/time -f "restore --at (one day later): %e s, %M KiB" $S restore --stream db --at $(tail -1 $W/ev1 | grep -o "\"ts\":[0-9]*" | cut -d: -f2) --to $W/out-at
done
cmp $W/out-at $W/day1 && echo "restore --at equals gen day 1"
for d in 1 2 3 4 5; do $G -docs 1200000 -day $d -changes; done > $W/ev5
rm -rf $W/repo2 && STRATA_REPO=$W/repo2 $S init >/dev/null
echo "ingest of $(wc -l < $W/ev5) events, $(stat -c %s $W/ev5) bytes:"
/usr/bin/time -f "log (5 days of events): %e s, %M KiB" env STRATA_REPO=$W/repo2 $S log --stream db --stdin < $W/ev5
