#!/usr/bin/env bash
# scripts/minio.sh: a real MinIO on loopback for the S3 tests (repo/s3,
# internal/miniotest).
#
#   scripts/minio.sh build             install the pinned MinIO into the cache, once
#   eval "$(scripts/minio.sh start)"   start one; prints the STRATA_TEST_* export lines
#   scripts/minio.sh stop              stop the one the STRATA_TEST_MINIO_* variables name
#   scripts/minio.sh run CMD...        build, start, run CMD with the variables, stop;
#                                      exits with CMD's status
#
# The cache is ${STRATA_CACHE:-$HOME/.cache/strata}/minio-<commit>/. Each start
# makes a fresh data directory and fresh random root credentials; MinIO's log
# goes to minio.log in that directory.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_COMMIT=${MINIO_VERSION##*-}
CACHE_DIR=${STRATA_CACHE:-$HOME/.cache/strata}/minio-$MINIO_COMMIT
BIN=$CACHE_DIR/minio
DIR_TEMPLATE=strata-minio.XXXXXXXX

die() {
  echo "minio.sh: $*" >&2
  exit 1
}

build() {
  [ -x "$BIN" ] && return 0
  command -v go >/dev/null || die "go is not installed; it is needed once to build MinIO"
  mkdir -p "$CACHE_DIR"
  # Several test runs may start at once: one builds, the others wait for it.
  exec 9>"$CACHE_DIR/.build.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [ ! -x "$BIN" ]; then
    echo "minio.sh: building MinIO $MINIO_VERSION into $CACHE_DIR (several minutes, once)" >&2
    local tmp partial
    tmp=$(mktemp -d)
    partial=$CACHE_DIR/.partial.$$
    # Outside the module, so our go.mod and go.sum stay untouched.
    if ! (cd "$tmp" && GOBIN=$partial GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION") >&2; then
      rm -rf "$tmp" "$partial"
      die "building MinIO failed"
    fi
    mv "$partial/minio" "$BIN" # a rename: nobody runs a half-written binary
    rm -rf "$tmp" "$partial"
  fi
  exec 9>&-
}

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# port_free reports whether nothing listens on the loopback port.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "found no free loopback port"
}

# probe reports whether MinIO on port $1 answers GET /minio/health/$2 with 200.
probe() {
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /minio/health/%s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
  IFS= read -r -t 2 status <&3 || status=
  exec 3>&- 3<&-
  [[ $status == "HTTP/1."?" 200"* ]]
}

# live reports whether MinIO answers its liveness probe and has finished
# starting: "live" answers before buckets and IAM are ready, "cluster" after.
live() { probe "$1" live && probe "$1" cluster; }

start() {
  [ -x "$BIN" ] || die "MinIO is not built: run scripts/minio.sh build"
  local dir port console user pass pid
  dir=$(mktemp -d "${TMPDIR:-/tmp}/$DIR_TEMPLATE")
  user=u$(rand_hex 9)
  pass=$(rand_hex 20)
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    console=$(free_port)
    MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=on \
      nohup "$BIN" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
      "$dir/data" >>"$dir/minio.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 300); do
      if live "$port" 2>/dev/null; then
        printf 'export STRATA_TEST_S3=%q\n' "s3+http://127.0.0.1:$port"
        printf 'export STRATA_TEST_S3_ACCESS_KEY=%q\n' "$user"
        printf 'export STRATA_TEST_S3_SECRET_KEY=%q\n' "$pass"
        printf 'export STRATA_TEST_MINIO_PID=%q\n' "$pid"
        printf 'export STRATA_TEST_MINIO_DIR=%q\n' "$dir"
        printf 'export STRATA_TEST_MINIO_BIN=%q\n' "$BIN"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break # exited: most likely the port was taken meanwhile
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "minio.sh: MinIO did not start; the end of $dir/minio.log:" >&2
  tail -n 20 "$dir/minio.log" >&2 || true
  exit 1
}

stop() {
  local pid=${STRATA_TEST_MINIO_PID:-} dir=${STRATA_TEST_MINIO_DIR:-}
  [ -n "$pid$dir" ] || die "STRATA_TEST_MINIO_PID and STRATA_TEST_MINIO_DIR are unset: nothing to stop"
  # Only our MinIO: the process must still be minio serving from our directory.
  if [ -n "$pid" ] && [ -n "$dir" ] && ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "$dir/data"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  case $(basename -- "$dir") in
  strata-minio.*) [ -f "$dir/minio.log" ] && rm -rf -- "$dir" ;;
  esac
}

run() {
  [ $# -gt 0 ] || die "usage: scripts/minio.sh run CMD [ARG...]"
  build
  local env status
  env=$(start) || exit 1
  eval "$env"
  trap stop EXIT
  trap 'exit 130' INT TERM
  set +e
  "$@"
  status=$?
  set -e
  return "$status"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
build) build ;;
start) start ;;
stop) stop ;;
run) run "$@" ;;
*) die "usage: scripts/minio.sh build | start | stop | run CMD [ARG...]" ;;
esac
