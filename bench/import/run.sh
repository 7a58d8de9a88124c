#!/usr/bin/env bash
# bench/import/run.sh — auto-import's event-to-visible latency through a real
# `ferry mount`, with MinIO's webhook target and with the sweep alone. See
# docs/benchmarks.md ("Auto-import latency").
#
# Usage: bench/import/run.sh        (both modes, one run each: ~5 min)
#   MODES="events sweep"
#       events  ferry mount --events-listen PORT --import-sweep-interval 0: MinIO's
#               webhook target (MINIO_NOTIFY_WEBHOOK_*_FERRY, set in its environment)
#               posts the bucket's events (PutBucketNotificationConfiguration:
#               s3:ObjectCreated:*, s3:ObjectRemoved:* → arn:minio:sqs::FERRY:webhook)
#       sweep   ferry mount --import-sweep-interval $SWEEP_INTERVAL, no events
#               (a bucket without a notification configuration)
#   RUNS=1                  runs per mode (modes alternate)
#   RATE=100 DURATION=60s   changes per second and for how long (bench/import/latency)
#   DIRS=4 PER=1000         seed: DIRS listed directories of PER objects (half read, half to delete)
#   SWEEP_INTERVAL=5s       sweep mode's --import-sweep-interval
#   MOUNT_ARGS=""           more `ferry mount` flags for every run (e.g. --negative-timeout 0)
#   PROFILE=0               1: each daemon writes a CPU profile of its life to the log folder (--cpuprofile)
#   GIVEUP=30s              a change not seen after this is lost (the report also counts > 10 s)
#   FERRY_BIN=path          ferry to run (default: built from the work tree into $OUT)
#   FERRY_MINIO=path        MinIO binary (default .tools/bin/minio)
#   OUT=bench/out/import    MinIO data, stores, logs, results (git-ignored)
#
# The association is /data ↔ s3://BUCKET/MODE-rRUN/ with AutoImportPolicy NEW,
# CHANGED, DELETED; each run has a fresh store and mount. The mountpoint is in
# a mktemp -d folder of /tmp. On exit, failure included, the mount is unmounted
# and the processes the harness started are stopped.
# Results: $OUT/results-<date>.tsv (one line per run; printed too), logs and
# every change's latency in $OUT/logs/<date>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/bench/out/import}
MODES=${MODES:-events sweep}
RUNS=${RUNS:-1}
RATE=${RATE:-100}
DURATION=${DURATION:-60s}
DIRS=${DIRS:-4}
PER=${PER:-1000}
SWEEP_INTERVAL=${SWEEP_INTERVAL:-5s}
GIVEUP=${GIVEUP:-30s}
MOUNT_ARGS=${MOUNT_ARGS:-}
PROFILE=${PROFILE:-0}
minio_bin=${FERRY_MINIO:-$root/.tools/bin/minio}
stamp=$(date +%Y%m%d-%H%M%S)
logs="$OUT/logs/$stamp"
run="$OUT/run-$stamp"
results="$OUT/results-$stamp.tsv"
mkdir -p "$logs" "$run"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
log() { echo "bench: $*" >&2; }

[ -x "$minio_bin" ] || { log "no MinIO at $minio_bin: run scripts/tools.sh minio, or set FERRY_MINIO"; exit 1; }
go build -o "$OUT/latency" ./bench/import/latency
if [ -n "${FERRY_BIN:-}" ]; then
  ferry=$FERRY_BIN
else
  ferry="$OUT/ferry"
  go build -o "$ferry" ./cmd/ferry
fi

# ---------------------------------------------------------------- MinIO
port=$(free_port 19600)
cport=$(free_port $((port + 1)))
eport=$(free_port $((cport + 1))) # the events mount's --events-listen
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
FERRY_EVENTS_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FERRY_EVENTS_TOKEN
export FERRY_RUNTIME_DIR="$run/ferry-runtime"
minio_data="$run/minio-data"
mkdir -p "$minio_data"
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY \
  MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
  MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY=on MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY="http://127.0.0.1:$eport/events" \
  MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FERRY="$FERRY_EVENTS_TOKEN" \
  "$minio_bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
  "$minio_data" >"$logs/minio.log" 2>&1 &
minio_pid=$!
mnt_root=$(mktemp -d /tmp/ferry-import-bench.XXXXXX)
mnt="$mnt_root/mnt"
daemon_pid=""
stop_mount() {
  if mountpoint -q "$mnt" 2>/dev/null; then
    "$ferry" umount "$mnt" >>"$logs/umount.log" 2>&1 || log "ferry umount $mnt failed (see $logs/umount.log)"
  fi
  if [ -n "$daemon_pid" ]; then stop_pid "$daemon_pid" "ferry daemon"; fi
  if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" 2>/dev/null || true; fi
  daemon_pid=""
}
cleanup() {
  stop_mount
  kill "$minio_pid" 2>/dev/null || true
  wait "$minio_pid" 2>/dev/null || true
  rm -rf "$mnt_root" "$run"
}
trap cleanup EXIT
# Not /minio/health/live: it answers before the object layer serves (S3
# requests get 503 until then); the cluster check waits for it.
for _ in $(seq 1 300); do curl -fsS "$endpoint/minio/health/cluster" >/dev/null 2>&1 && break; sleep 0.1; done

# s3req METHOD PATH [FILE]: a SigV4-signed request to MinIO (curl ≥ 7.75).
s3req() {
  local m=$1 p=$2 f=${3:-}
  if [ -n "$f" ]; then
    curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X "$m" -T "$f" "$endpoint$p"
  else
    curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X "$m" "$endpoint$p"
  fi
}
s3req PUT /bench-events >/dev/null
s3req PUT /bench-sweep >/dev/null
cat >"$run/notification.xml" <<EOF
<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><QueueConfiguration><Id>ferry-bench</Id><Queue>arn:minio:sqs::FERRY:webhook</Queue><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event></QueueConfiguration></NotificationConfiguration>
EOF
s3req PUT "/bench-events?notification=" "$run/notification.xml" >/dev/null
log "MinIO $endpoint (webhook → 127.0.0.1:$eport/events); ferry $ferry ($(git rev-parse --short HEAD)); mount $mnt"

# start_mount MODE PREFIX RUN: a fresh store, ferry mount with metrics, the
# association /data ↔ s3://bench-MODE/PREFIX; waits for AVAILABLE.
start_mount() {
  local mode=$1 prefix=$2 store="$run/store" state i args
  stop_mount
  rm -rf "$store"
  mkdir -p "$mnt" "$store"
  mport=$(free_port 19800)
  if [ "$mode" = events ]; then
    args=(--events-listen "$eport" --import-sweep-interval 0)
  else
    args=(--import-sweep-interval "$SWEEP_INTERVAL")
  fi
  prof=()
  [ "$PROFILE" = 1 ] && prof=(--cpuprofile "$logs/cpu-$mode-$3.prof")
  fsid=$("$ferry" --endpoint-url "$endpoint" "${prof[@]}" mount --background --log-level warn --metrics-addr "$mport" \
    "${args[@]}" $MOUNT_ARGS --store "$store" "$mnt" 2>>"$logs/mount.log") || { log "ferry mount failed: $(tail -3 "$logs/mount.log")"; return 1; }
  daemon_pid=$(sed -n 's/.*"Pid": *\([0-9]*\).*/\1/p' "$FERRY_RUNTIME_DIR/$fsid.json")
  "$ferry" fsx create-data-repository-association --file-system-id "$fsid" \
    --file-system-path /data --data-repository-path "s3://bench-$mode/$prefix" \
    --s3 '{"AutoImportPolicy":{"Events":["NEW","CHANGED","DELETED"]}}' >>"$logs/fsx.log" 2>&1 ||
    { log "create-data-repository-association failed: $(tail -3 "$logs/fsx.log")"; return 1; }
  for i in $(seq 1 600); do
    state=$("$ferry" fsx describe-data-repository-associations --filters "Name=file-system-id,Values=$fsid" \
      --query 'Associations[0].Lifecycle' --output text 2>>"$logs/fsx.log")
    [ "$state" = AVAILABLE ] && return 0
    sleep 0.1
  done
  log "association of $fsid not AVAILABLE after 60 s (last: ${state:-none})"
  return 1
}

metric() { curl -fsS "http://127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

first=1
for r in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    prefix="r$r/"
    start_mount "$mode" "$prefix" "r$r"
    lat=("$OUT/latency" -endpoint "$endpoint" -bucket "bench-$mode" -prefix "$prefix" -dir "$mnt/data"
      -dirs "$DIRS" -per "$PER")
    t0=$(date +%s)
    "${lat[@]}" -setup 2>>"$logs/latency.log" || { log "setup failed: $(tail -3 "$logs/latency.log")"; exit 1; }
    log "$mode run $r: seed of $((DIRS * PER)) objects put, listed, half read in $(($(date +%s) - t0)) s"
    if [ "$mode" = events ]; then
      # The webhook reaches the daemon before the clock runs (MinIO retries
      # an offline target in the background).
      printf probe >"$run/probe"
      s3req PUT "/bench-events/${prefix}d0/probe" "$run/probe" >/dev/null
      for i in $(seq 1 600); do [ -e "$mnt/data/d0/probe" ] && break; sleep 0.1; done
      [ -e "$mnt/data/d0/probe" ] || { log "events: the probe object never showed in the mount (see $logs/minio.log)"; exit 1; }
    fi
    sleep 2 # reads just served are marked local
    for i in $(seq 1 600); do [ "$(metric ferry_import_events_pending)" = 0 ] && break; sleep 0.1; done
    sync
    k0=$(proc_jiffies "$daemon_pid") m0=$(proc_jiffies "$minio_pid") b0=$(busy_jiffies)
    sw0=$(metric ferry_import_sweeps_total || echo 0)
    hdr=()
    [ "$first" = 1 ] && hdr=(-header)
    "${lat[@]}" -label "$mode" -rate "$RATE" -duration "$DURATION" -giveup "$GIVEUP" \
      -metrics "http://127.0.0.1:$mport/metrics" -raw "$logs/changes-$mode-r$r.tsv" "${hdr[@]}" \
      2>>"$logs/latency.log" | tee -a "$results"
    k1=$(proc_jiffies "$daemon_pid") m1=$(proc_jiffies "$minio_pid") b1=$(busy_jiffies)
    first=0
    {
      echo "# $mode run $r"
      awk -v k="$((k1 - k0))" -v m="$((m1 - m0))" -v b="$((b1 - b0))" \
        'BEGIN { printf "cpu_s daemon=%.1f minio=%.1f machine=%.1f\n", k / 100, m / 100, b / 100 }'
      echo "sweeps=$(($(metric ferry_import_sweeps_total || echo 0) - ${sw0:-0}))"
      curl -fsS "http://127.0.0.1:$mport/metrics" | grep -E '^ferry_(import|events)_' || true
    } >"$logs/metrics-$mode-r$r.txt"
    log "$mode run $r: $(head -2 "$logs/metrics-$mode-r$r.txt" | tail -1), $(sed -n 3p "$logs/metrics-$mode-r$r.txt")"
    stop_mount
  done
done
log "results: $results; logs: $logs"
