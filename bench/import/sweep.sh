#!/usr/bin/env bash
# bench/import/sweep.sh — one import sweep at N objects (default 1,000,000):
# time, LIST requests, Go heap and RSS. See docs/benchmarks.md ("Import sweep
# at 1,000,000 objects").
#
# Usage: bench/import/sweep.sh
#   N=1000000       objects (one byte each, data/s/dNN/fNNNNNNN, 10,000 per directory)
#   CONC=128        PUTs in flight while filling (the rate is what MinIO's CPU allows:
#                   ~1,000/s on the 2-core VM when quiet, at 32, 128 or 256)
#   FROM=0          first object to put (resume a fill that was stopped); SKIP_PUT=1 puts nothing
#   SWEEPS=3 MEM=0,4096 PAGES=-1   sweeps per walk, walks (MemEntries), LIST pages per second
#   PROFILE=0                      1: a CPU profile of the sweeps to $OUT/logs/sweep-<date>.prof
#   FERRY_MINIO=path               MinIO binary (default .tools/bin/minio)
#   OUT=bench/out/import           MinIO data (minio-sweep/) and the store (store-sweep-N/) stay
#                                  there for the next run: delete them to start again
#
# MinIO (single drive) runs on a free 127.0.0.1 port for the length of the
# script; the bucket "sweep" is created on the first run. The local tree (a
# stub per object, made from one flat listing) is made on the first sweep
# run and reused. Output: $OUT/logs/sweep-<date>.txt.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/bench/out/import}
N=${N:-1000000}
CONC=${CONC:-128}
FROM=${FROM:-0}
SKIP_PUT=${SKIP_PUT:-0}
SWEEPS=${SWEEPS:-3}
MEM=${MEM:-0,4096}
PAGES=${PAGES:--1}
PROFILE=${PROFILE:-0}
minio_bin=${FERRY_MINIO:-$root/.tools/bin/minio}
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/logs"
out="$OUT/logs/sweep-$stamp.txt"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
log() { echo "bench: $*" | tee -a "$out" >&2; }

[ -x "$minio_bin" ] || { log "no MinIO at $minio_bin: run scripts/tools.sh minio, or set FERRY_MINIO"; exit 1; }
go build -o "$OUT/put" ./bench/import/put
go build -o "$OUT/sweep" ./bench/import/sweep
port=$(free_port 19700)
cport=$(free_port $((port + 1)))
endpoint="http://127.0.0.1:$port"
# MinIO's keys: keep those of the first run (its data stays; MinIO refuses
# other root keys over it).
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-ferrybench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-ferrybench-secret}
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
  "$minio_bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
  "$OUT/minio-sweep" >>"$OUT/logs/minio-sweep.log" 2>&1 &
minio_pid=$!
trap 'kill $minio_pid 2>/dev/null || true; wait $minio_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -fsS "$endpoint/minio/health/cluster" >/dev/null 2>&1 && break; sleep 0.1; done

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); MinIO $endpoint, data $OUT/minio-sweep ($(fs_note "$OUT"))"
if [ "$SKIP_PUT" != 1 ]; then
  log "putting objects $FROM..$((N - 1)), $CONC at a time"
  "$OUT/put" -endpoint "$endpoint" -bucket sweep -prefix data/s/ -n "$N" -from "$FROM" -conc "$CONC" -create -every 50000 | tee -a "$out"
fi
log "sweeping (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$OUT/sweep" -endpoint "$endpoint" -bucket sweep -prefix data/ -store "$OUT/store-sweep-$N" -n "$N" \
  -sweeps "$SWEEPS" -mem "$MEM" -pages "$PAGES" -minio-pid "$minio_pid" \
  $([ "$PROFILE" = 1 ] && echo -cpuprofile "$OUT/logs/sweep-$stamp.prof") | tee -a "$out"
log "done (load $(cut -d' ' -f1-3 /proc/loadavg)); $out"
