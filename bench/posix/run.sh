#!/usr/bin/env bash
# bench/posix/run.sh — POSIX conformance of `ferry mount` with pjdfstest
# (github.com/pjd/pjdfstest), outside any association and inside one with
# every import and export event. See docs/posix.md.
#
# Usage: bench/posix/run.sh SRC        (as root, with /dev/fuse; ~10 min per place)
#   SRC     a pjdfstest source tree (git checkout or archive); it is copied,
#           never built in place. Build needs: cc, make, autoconf, automake
#           (Debian: apt-get install autoconf automake), and prove (perl).
#   PLACES="outside inside"   where to run: a plain directory of the mount
#                             (outside), a directory of an association with
#                             AutoImportPolicy and AutoExportPolicy
#                             {NEW,CHANGED,DELETED} (inside)
#   TESTS=tests               the tests to run, relative to SRC (e.g. tests/mknod)
#   FERRY_BIN=path            use this ferry binary (default: go build of the work tree)
#   OUT=bench/out/posix       builds, stores, MinIO data, logs (git-ignored)
#
# Prints, per place, the subtests passed of those run and the failing test
# files; the full prove output is in $OUT/logs/<date>/<place>.log. On exit
# every mount is unmounted and MinIO stopped.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
src=${1:?usage: bench/posix/run.sh PJDFSTEST_SOURCE_DIR}
src=$(cd "$src" && pwd)
PLACES=${PLACES:-outside inside}
TESTS=${TESTS:-tests}
OUT=${OUT:-$root/bench/out/posix}
stamp=$(date +%Y%m%d-%H%M%S)
logs="$OUT/logs/$stamp"
mkdir -p "$logs"
log() { echo "posix: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "pjdfstest needs root (it changes owners and makes devices)"; exit 1; }

# pjdfstest is built in a copy of SRC: its tests find the binary at the
# top of the tree they are in.
pjd="$OUT/pjdfstest"
if [ ! -x "$pjd/pjdfstest" ] || [ "$src/pjdfstest.c" -nt "$pjd/pjdfstest" ]; then
  log "building pjdfstest from $src"
  rm -rf "$pjd"
  mkdir -p "$pjd"
  (cd "$src" && tar --exclude=.git -cf - .) | (cd "$pjd" && tar xf -)
  (cd "$pjd" && autoreconf -ifs && ./configure && make pjdfstest) >"$logs/build-pjdfstest.log" 2>&1 ||
    { log "pjdfstest build failed (needs autoconf, automake, cc): $(tail -5 "$logs/build-pjdfstest.log")"; exit 1; }
fi

ferry=${FERRY_BIN:-}
if [ -z "$ferry" ]; then
  ferry="$OUT/ferry"
  log "building ferry"
  (cd "$root" && go build -o "$ferry" ./cmd/ferry)
fi

run=$(mktemp -d /tmp/ferry-posix.XXXXXX)
mnt="$run/mnt"
store="$run/store"
mkdir -p "$mnt" "$store"
export FERRY_RUNTIME_DIR="$run/rt"
minio_pid=""
cleanup() {
  cd /
  "$ferry" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
  if [ -n "$minio_pid" ]; then kill "$minio_pid" 2>/dev/null; stop_pid "$minio_pid" minio; fi
  rm -rf "$run"
}
trap cleanup EXIT

if has "$PLACES" inside; then
  [ -x "$bin/minio" ] || { log "no MinIO at $bin/minio (scripts/tools.sh minio)"; exit 1; }
  port=$(free_port 19300)
  cport=$(free_port $((port + 1)))
  endpoint="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=ferryposix AWS_SECRET_ACCESS_KEY=ferryposix-secret AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_S3=$endpoint AWS_EC2_METADATA_DISABLED=true
  mkdir -p "$run/minio"
  start_minio "$run/minio"
  wait_minio
  "$ferry" s3 mb s3://posix >/dev/null
fi

cd "$run"
fsid=$("$ferry" mount --background --log-level warn --store "$store" "$mnt")
log "mounted $fsid on $mnt (store $store)"

if has "$PLACES" inside; then
  "$ferry" fsx create-data-repository-association --file-system-id "$fsid" \
    --file-system-path /assoc --data-repository-path s3://posix/assoc/ \
    --s3 'AutoImportPolicy={Events=[NEW,CHANGED,DELETED]},AutoExportPolicy={Events=[NEW,CHANGED,DELETED]}' \
    --query Association.AssociationId --output text >/dev/null
  for _ in $(seq 300); do
    state=$("$ferry" fsx describe-data-repository-associations --filters Name=file-system-id,Values="$fsid" \
      --query 'Associations[0].Lifecycle' --output text)
    [ "$state" = AVAILABLE ] && break
    sleep 0.2
  done
  [ "$state" = AVAILABLE ] || { log "association not AVAILABLE: $state"; exit 1; }
fi

summary=""
for place in $PLACES; do
  case $place in
    outside) dir="$mnt/plain" ;;
    inside) dir="$mnt/assoc/pjd" ;;
    *) log "unknown place $place"; exit 1 ;;
  esac
  mkdir -p "$dir"
  log "$place: prove -rv $TESTS in $dir"
  (cd "$dir" && prove -rv "$pjd/$TESTS") >"$logs/$place.log" 2>&1 || true
  # Subtests: every "ok"/"not ok" line of the verbose output. As prove
  # counts them, a "not ok … # TODO" (a failure pjdfstest expects on this
  # OS) is not a failure.
  total=$(grep -c '^\(not \)\?ok ' "$logs/$place.log" || true)
  fail=$(grep '^not ok ' "$logs/$place.log" | grep -vc '# TODO' || true)
  todo=$(grep '^not ok ' "$logs/$place.log" | grep -c '# TODO' || true)
  pass=$((total - fail))
  pct=$(awk -v p="$pass" -v t="$total" 'BEGIN { if (t) printf "%.2f", 100 * p / t; else print "n/a" }')
  line="$place: $pass of $total subtests pass ($pct %; $todo of them expected failures marked TODO)"
  summary="$summary$line"$'\n'
  echo "$line"
  # The failing files with the subtests that failed (prove's summary).
  sed -n '/^Test Summary Report/,$p' "$logs/$place.log" | grep -E '^[^ ]|Failed tests' | grep -v '^Files=\|^Result' || true
  if [ "$place" = inside ]; then
    # What is still pending (path, kind, attempts, last error) goes to the log.
    "$ferry" hsm wait --timeout 120s "$mnt/assoc" >"$logs/hsm-wait.log" 2>&1 ||
      log "inside: hsm wait did not drain in 120 s (pending entries: $logs/hsm-wait.log)"
  fi
done
echo "logs: $logs"
printf '%s' "$summary" >"$logs/summary.txt"
