#!/usr/bin/env bash
# scripts/ferretdb.sh: the MongoDB wire-protocol server of the source/mongodb
# tests (internal/mongotest): FerretDB v1 embedded with its SQLite backend,
# built from the module proxy as the small program in internal/ferretdb (a
# module of its own, so Strata's go.mod never holds FerretDB's dependencies).
#
#   scripts/ferretdb.sh build    build it into the cache, once
#   scripts/ferretdb.sh path     print the binary's path (after build)
#
# The cache is ${STRATA_CACHE:-$HOME/.cache/strata}/ferretdb-<version>/;
# internal/mongotest looks there (or at STRATA_FERRETDB_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

FERRETDB_VERSION=v1.24.2
CACHE_DIR=${STRATA_CACHE:-$HOME/.cache/strata}/ferretdb-$FERRETDB_VERSION
BIN=$CACHE_DIR/strata-ferretdb

die() {
  echo "ferretdb.sh: $*" >&2
  exit 1
}

build() {
  [ -x "$BIN" ] && return 0
  command -v go >/dev/null || die "go is not installed; it is needed once to build FerretDB"
  grep -q "github.com/FerretDB/FerretDB $FERRETDB_VERSION" internal/ferretdb/go.mod ||
    die "internal/ferretdb/go.mod does not pin FerretDB $FERRETDB_VERSION"
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.build.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [ ! -x "$BIN" ]; then
    echo "ferretdb.sh: building FerretDB $FERRETDB_VERSION into $CACHE_DIR (a few minutes, once)" >&2
    local partial=$CACHE_DIR/.partial.$$
    if ! (cd internal/ferretdb && go build -trimpath -o "$partial" .) >&2; then
      rm -f "$partial"
      die "building FerretDB failed"
    fi
    mv "$partial" "$BIN" # a rename: nobody runs a half-written binary
  fi
  exec 9>&-
}

case ${1:-} in
build) build ;;
path) echo "$BIN" ;;
*) die "usage: scripts/ferretdb.sh build | path" ;;
esac
