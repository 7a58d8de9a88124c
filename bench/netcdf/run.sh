#!/usr/bin/env bash
# bench/netcdf/run.sh — a real NetCDF-4/HDF5 client reading through the
# mounts: how many bytes each mount makes the server send, and how long it
# takes. See docs/benchmarks.md, section "Issue 13: reads", for the results.
# Runs as root (it mounts and drops the page cache).
#
# The file: bench/netcdf/gen.c (compiled here against Debian's libnetcdf-dev)
# writes a 256 MiB NetCDF-4 file of eight float variables of 32 MiB each,
# chunked one 1 MiB level per chunk, the same bytes at every run.
#
# Cases, each cold (fresh mount, empty cache or store, page cache dropped):
#   var   `nccopy -V v3 MNT/input.nc OUT.nc`: one variable of eight (12.5 % of
#         the data) and the metadata; its output is compared with the same
#         command run on the local file
#   seq   `dd bs=1M` of the whole file to /dev/null
# Bytes are MinIO's own count (its Prometheus metrics, minio_bucket_traffic_sent_bytes,
# MINIO_PROMETHEUS_AUTH_TYPE=public), read before and after each command (each
# read waits 10.5 s: MinIO refreshes its metrics every 10 s).
#
# Usage: bench/netcdf/run.sh
#   TOOLS="ferry rclone"   ferry, ferry-base (FERRY_BASE_BIN), rclone (--vfs-cache-mode off)
#   CASES="var seq"
#   RUNS=3
#   FERRY_BIN=path  FERRY_BASE_BIN=path   as in bench/mount/run.sh
#   OUT=bench/out/netcdf
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$root/bench/out/netcdf}
TOOLS=${TOOLS:-ferry rclone}
CASES=${CASES:-var seq}
RUNS=${RUNS:-3}
WAIT_IDLE=${WAIT_IDLE:-80}
stamp=$(date +%Y%m%d-%H%M%S)
logs="$OUT/logs/$stamp"
run="$OUT/run-$stamp"
results="$OUT/results-$stamp.md"
times="$OUT/times-$stamp.tsv"
bucket=bench-netcdf
mnt_root=""

log() { echo "bench/netcdf: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root: the harness mounts and drops the page cache"; exit 2; }

declare -A pid_of=()
minio_pid=""
cleanup() {
  local t
  for t in "${!pid_of[@]}"; do stop_mount "$t" || true; done
  if [ -n "$minio_pid" ]; then
    kill "$minio_pid" 2>/dev/null || true
    wait "$minio_pid" 2>/dev/null || true
  fi
  rm -rf "$run"
  if [ -n "$mnt_root" ]; then
    for t in "$mnt_root"/*; do mountpoint -q "$t" 2>/dev/null && umount -l "$t" 2>/dev/null; done
    rmdir "$mnt_root"/* "$mnt_root" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$logs" "$run/cache" "$OUT/data"
mnt_root=$(mktemp -d /tmp/ferry-bench-netcdf.XXXXXX)

# ---------------------------------------------------------------- tools
scripts/tools.sh minio rclone fuse3
if ! command -v nccopy >/dev/null || ! command -v nc-config >/dev/null || ! command -v cc >/dev/null; then
  log "installing Debian's netcdf-bin, libnetcdf-dev and gcc"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q netcdf-bin libnetcdf-dev gcc >/dev/null
fi
ferry=${FERRY_BIN:-$OUT/ferry}
[ -n "${FERRY_BIN:-}" ] || go build -o "$ferry" ./cmd/ferry
ferry_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
if has "$TOOLS" ferry-base && [ ! -x "${FERRY_BASE_BIN:-}" ]; then
  log "ferry-base needs FERRY_BASE_BIN"; exit 2
fi

# ---------------------------------------------------------------- the file
input="$OUT/data/input.nc"
# shellcheck disable=SC2046
cc -O2 -o "$OUT/gen" bench/netcdf/gen.c $(nc-config --cflags --libs)
if [ ! -s "$input" ] || [ "$input" -ot bench/netcdf/gen.c ]; then "$OUT/gen" "$input"; fi
size=$(stat -c %s "$input")
nccopy -V v3 "$input" "$OUT/data/ref-v3.nc"
var_bytes=$((32 << 20))
log "input.nc: $size bytes; one variable: $var_bytes bytes"

# ---------------------------------------------------------------- MinIO
port=$(free_port 19700)
cport=$(free_port $((port + 1)))
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$endpoint
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$run/aws-config" AWS_SHARED_CREDENTIALS_FILE="$run/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export MINIO_PROMETHEUS_AUTH_TYPE=public
mkdir -p "$run/minio"
start_minio "$run/minio"
wait_minio
export RCLONE_CONFIG="$run/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio
export RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_REGION=us-east-1
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
: >"$RCLONE_CONFIG"
"$bin/rclone" mkdir "bench:$bucket"
"$bin/rclone" copyto "$input" "bench:$bucket/data/input.nc" 2>>"$logs/upload.log"

# sent_bytes: what MinIO says it has sent from the bucket so far
# (minio_bucket_traffic_sent_bytes). MinIO computes its metrics at most every
# 10 s: read 10.5 s after the last request, the value counts every request.
sent_bytes() {
  sleep 10.5
  curl -fsS "$endpoint/minio/v2/metrics/bucket" |
    awk -v b="$bucket" '/^minio_bucket_traffic_sent_bytes[{]/ && index($0, "bucket=\"" b "\"") { s += $NF } END { printf "%.0f\n", s }'
}

# ---------------------------------------------------------------- mounts
export FERRY_RUNTIME_DIR="$run/ferry-runtime"
mount_cmd() {
  local tool=$1 mnt=$2 cache=$3
  case $tool in
    ferry) argv=("$ferry" mount --endpoint-url "$endpoint" --store "$cache" "$mnt") ;;
    ferry-base) argv=("$FERRY_BASE_BIN" mount --endpoint-url "$endpoint" --store "$cache" "$mnt") ;;
    rclone) argv=("$bin/rclone" mount "bench:$bucket/data" "$mnt" --vfs-cache-mode off) ;;
  esac
}
base() {
  case $1 in
    ferry | ferry-base) echo "$mnt_root/$1/bench" ;;
    *) echo "$mnt_root/$1" ;;
  esac
}
ferry_of() { if [ "$1" = ferry-base ]; then echo "$FERRY_BASE_BIN"; else echo "$ferry"; fi; }

start_mount() {
  local tool=$1 mnt="$mnt_root/$1" cache="$run/cache/$1" i out fsid state fb
  stop_mount "$tool"
  rm -rf "$cache"
  mkdir -p "$mnt" "$cache"
  mount_cmd "$tool" "$mnt" "$cache"
  out="$logs/$tool-mount.out"
  "${argv[@]}" >"$out" 2>>"$logs/$tool-mount.log" &
  pid_of[$tool]=$!
  for i in $(seq 1 300); do
    mountpoint -q "$mnt" && break
    sleep 0.1
  done
  mountpoint -q "$mnt" || { log "$tool did not mount"; return 1; }
  [ "$tool" = rclone ] && return 0
  fb=$(ferry_of "$tool")
  for i in $(seq 1 100); do
    fsid=$(grep -o 'fs-[0-9a-f]\{17\}' "$out" | head -1) && break
    sleep 0.1
  done
  "$fb" fsx create-data-repository-association --file-system-id "$fsid" --file-system-path /bench \
    --data-repository-path "s3://$bucket/data/" >>"$logs/ferry-fsx.log" 2>&1
  for i in $(seq 1 600); do
    state=$("$fb" fsx describe-data-repository-associations --filters "Name=file-system-id,Values=$fsid" 2>>"$logs/ferry-fsx.log" |
      sed -n 's/.*"Lifecycle": *"\([A-Z_]*\)".*/\1/p' | head -1)
    [ "$state" = AVAILABLE ] && return 0
    sleep 0.1
  done
  log "ferry association not AVAILABLE (last: ${state:-none})"
  return 1
}
stop_mount() {
  local tool=$1 mnt="$mnt_root/$1" pid=${pid_of[$1]:-}
  if mountpoint -q "$mnt" 2>/dev/null; then
    case $tool in
      ferry | ferry-base) "$(ferry_of "$tool")" umount "$mnt" >>"$logs/$tool-mount.log" 2>&1 || umount -l "$mnt" || true ;;
      *) umount "$mnt" 2>/dev/null || umount -l "$mnt" || true ;;
    esac
  fi
  if [ -n "$pid" ]; then
    stop_pid "$pid" "$tool"
    wait "$pid" 2>/dev/null || true
    unset "pid_of[$tool]"
  fi
}

# ---------------------------------------------------------------- measuring
printf 'case\ttool\trun\tseconds\tsent_bytes\tok\n' >"$times"
var_read() { nccopy -V v3 "$1/input.nc" "$run/out-v3.nc" && cmp -s "$run/out-v3.nc" "$OUT/data/ref-v3.nc"; }
seq_read() { dd if="$1/input.nc" of=/dev/null bs=1M status=none; }
s3get() {
  curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -o /dev/null "$endpoint/$bucket/data/input.nc"
}

# timed CASE TOOL RUN CMD...: runs CMD cold, records wall time and the bytes
# MinIO sent meanwhile.
timed() {
  local c=$1 tool=$2 r=$3 t0 t1 s0 s1 ok=1
  shift 3
  wait_idle
  sync
  echo 3 >/proc/sys/vm/drop_caches
  s0=$(sent_bytes)
  t0=$(date +%s.%N)
  "$@" 2>>"$logs/$c-$tool.log" || ok=0
  t1=$(date +%s.%N)
  s1=$(sent_bytes)
  printf '%s\t%s\t%s\t%.3f\t%s\t%s\n' "$c" "$tool" "$r" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" $((s1 - s0)) "$ok" >>"$times"
  tail -1 "$times" >&2
}

for r in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    tools=($TOOLS)
    [ "$c" = seq ] && tools+=(curl)
    n=${#tools[@]}
    for k in $(seq 0 $((n - 1))); do
      tool=${tools[$(((k + r - 1) % n))]}
      if [ "$tool" = curl ]; then
        timed "$c" curl "$r" s3get
        continue
      fi
      start_mount "$tool" || { stop_mount "$tool"; continue; }
      case $c in
        var) timed "$c" "$tool" "$r" var_read "$(base "$tool")" ;;
        seq) timed "$c" "$tool" "$r" seq_read "$(base "$tool")" ;;
      esac
      stop_mount "$tool"
    done
  done
done

# ---------------------------------------------------------------- report
{
  echo "# bench/netcdf — $stamp"
  echo
  echo "- machine: $(nproc) cores, kernel $(uname -r); load when done: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- file: bench/netcdf/gen.c, $size bytes, 8 variables × $var_bytes bytes; netcdf-bin $(dpkg-query -W -f '${Version}' netcdf-bin)"
  echo "- ferry: tree $ferry_rev; rclone $("$bin/rclone" version 2>/dev/null | head -1)"
  echo "- bytes: MinIO's minio_bucket_traffic_sent_bytes of the bucket over each command (read 10.5 s after it: MinIO refreshes its metrics every 10 s)"
  echo
  echo "| case | tool | runs | median s | median MiB sent | ÷ bytes read | all runs: s / MiB | output ok |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -F'\t' -v var="$var_bytes" -v size="$size" 'NR > 1 {
      k = $1 "\t" $2; n[k]++; s[k, n[k]] = $4; b[k, n[k]] = $5; ok[k] = ok[k] && $6; if (n[k] == 1) ok[k] = $6
      all[k] = all[k] sprintf("%s%.2f / %.1f", n[k] > 1 ? ", " : "", $4, $5 / 1048576)
    }
    function med(a, k, m,   i, j, t, v) {
      for (i = 1; i <= m; i++) v[i] = a[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    END {
      for (k in n) {
        split(k, p, "\t"); mb = med(b, k, n[k])
        printf "| %s | %s | %d | %.2f | %.1f | %.2f | %s | %s |\n", p[1], p[2], n[k], med(s, k, n[k]), mb / 1048576,
          mb / (p[1] == "var" ? var : size), all[k], ok[k] ? "yes" : "NO"
      }
    }' "$times" | sort
} >"$results"
cat "$results"
log "results: $results"
