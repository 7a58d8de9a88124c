#!/usr/bin/env bash
# bench/export/run.sh — what writes through `ferry mount` and auto-export cost,
# on one MinIO, in one run. See docs/benchmarks.md ("Export benchmarks").
#
# Usage: bench/export/run.sh              (everything: ~15 min, plus ≤ 10 min waiting for a quiet machine)
#   CASES="lag small write"
#       lag    export lag p50/p99 (close → object visible) under a steady write
#              load: bench/export/lag, WRITERS writers, each RATES/WRITERS files
#              of 64 KiB per second, for DURATION; the outside view (MinIO's
#              event time of each object) and the daemon's (ferry_export_lag_seconds)
#       small  5,000 × 64 KiB (bench/gen small) written through the mount and
#              exported (cp -r, then ferry hsm wait), against s5cmd cp and
#              rclone copy of the same tree from a local directory
#       write  write throughput through the mount against the store's file
#              system: dd 1 GiB bs=1M conv=fsync, and cp -r of the 5,000 files
#   RUNS=3                  timed runs per case and tool, tools interleaved (order rotated per run)
#   RATES="50 200"          lag: files per second (all writers together)
#   WRITERS=8 DURATION=60s  lag: writers and how long they write
#   SMALL_TOOLS="ferry ferry-p8 s5cmd rclone"
#       ferry     cp -r of the tree into the mount, then ferry hsm wait
#       ferry-p8  the same with 8 cp -r in parallel (one per directory, xargs -P 8)
#       s5cmd     s5cmd cp 'SRC/*' s3://…/ (its default 256 workers)
#       rclone    rclone copy SRC bench:… --transfers 32 --checkers 32
#   QUIET_WAIT=600 QUIET_LOAD=2   before the timed part, wait at most this many
#                                 seconds for a 1-minute load average below this
#   WAIT_IDLE=80            before each timed run, wait (≤ 10 s) until the CPUs were this % idle over 2 s
#   FERRY_REV=HEAD          build ferry from this commit (git archive), untouched by the work tree
#   FERRY_BIN=path          use this ferry binary instead
#   OUT=bench/out/export    data set, MinIO data, stores, logs, results (git-ignored)
#
# Mountpoints are in a mktemp -d folder of /tmp (a walk of the work tree by
# go build must not list them). On exit, failure included, every mount is
# unmounted and every process the harness started is stopped.
# Results: $OUT/results-<date>.md (also printed), raw numbers in
# $OUT/times-<date>.tsv and $OUT/lag-<date>.tsv, logs in $OUT/logs/<date>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$root/bench/out/export}
CASES=${CASES:-lag small write}
RUNS=${RUNS:-3}
RATES=${RATES:-50 200}
WRITERS=${WRITERS:-8}
DURATION=${DURATION:-60s}
SMALL_TOOLS=${SMALL_TOOLS:-ferry ferry-p8 s5cmd rclone}
QUIET_WAIT=${QUIET_WAIT:-600}
QUIET_LOAD=${QUIET_LOAD:-2}
WAIT_IDLE=${WAIT_IDLE:-80}
FERRY_REV=${FERRY_REV:-HEAD}
stamp=$(date +%Y%m%d-%H%M%S)
results="$OUT/results-$stamp.md"
times="$OUT/times-$stamp.tsv"
lagtimes="$OUT/lag-$stamp.tsv"
logs="$OUT/logs/$stamp"
run="$OUT/run-$stamp"
mkdir -p "$OUT/data" "$logs" "$run"

log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- tools
scripts/tools.sh minio s5cmd rclone
go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/ceiling" ./bench/ceiling
go build -o "$OUT/lag" ./bench/export/lag
if [ -n "${FERRY_BIN:-}" ]; then
  ferry=$FERRY_BIN
  ferry_rev="$FERRY_BIN"
else
  ferry="$OUT/ferry"
  ferry_rev=$(git rev-parse --short "$FERRY_REV")
  src=$(mktemp -d)
  git archive "$FERRY_REV" | tar -x -C "$src"
  (cd "$src" && go build -o "$ferry" ./cmd/ferry) 2>"$logs/ferry-build.log" ||
    { rm -rf "$src"; log "go build ./cmd/ferry of $FERRY_REV failed (see $logs/ferry-build.log)"; exit 1; }
  rm -rf "$src"
fi

# ---------------------------------------------------------------- MinIO
port=$(free_port 19500)
cport=$(free_port $((port + 1)))
endpoint="http://127.0.0.1:$port"
bucket=bench-export
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export RCLONE_CONFIG="$run/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio
export RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_REGION=us-east-1
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
: >"$RCLONE_CONFIG"
# ferry: the daemons register in a runtime directory of this run only.
export FERRY_RUNTIME_DIR="$run/ferry-runtime"
minio_data="$run/minio-data"
mkdir -p "$minio_data"
start_minio "$minio_data"
mnt_root=$(mktemp -d /tmp/ferry-export-bench.XXXXXX)

declare -A fsid_of=() pid_of=() mport_of=()
# stop_mount NAME: unmounts $mnt_root/NAME and waits (≤ 30 s) for its daemon.
stop_mount() {
  local name=$1 mnt="$mnt_root/$1" pid=${pid_of[$1]:-}
  if mountpoint -q "$mnt" 2>/dev/null; then
    "$ferry" umount "$mnt" >>"$logs/umount.log" 2>&1 || log "ferry umount $mnt failed (see $logs/umount.log)"
  fi
  if [ -n "$pid" ]; then stop_pid "$pid" "ferry daemon"; fi
  if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" 2>/dev/null || true; fi
  unset "pid_of[$name]" "fsid_of[$name]" "mport_of[$name]"
}
cleanup() {
  local n
  for n in "${!pid_of[@]}"; do stop_mount "$n"; done
  kill "$minio_pid" 2>/dev/null || true
  wait "$minio_pid" 2>/dev/null || true
  rm -rf "$mnt_root" "$minio_data" "$run"/store-* "$run"/local-*
}
trap cleanup EXIT
wait_minio
"$bin/s5cmd" --endpoint-url "$endpoint" mb "s3://$bucket" >/dev/null
log "MinIO $endpoint; ferry $ferry_rev; mounts under $mnt_root"

# start_mount NAME: a fresh store, `ferry mount --background` on
# $mnt_root/NAME with metrics on a free port, and an association of /bench with
# s3://$bucket/NAME/ exporting NEW, CHANGED and DELETED; waits for AVAILABLE.
start_mount() {
  local name=$1 mnt="$mnt_root/$1" store="$run/store-$1" mport fsid state i
  stop_mount "$name"
  rm -rf "$store"
  mkdir -p "$mnt" "$store"
  mport=$(free_port 19700)
  fsid=$("$ferry" --endpoint-url "$endpoint" mount --background --metrics-addr "127.0.0.1:$mport" \
    --store "$store" "$mnt" 2>>"$logs/mount.log") || { log "ferry mount failed: $(tail -3 "$logs/mount.log")"; return 1; }
  fsid_of[$name]=$fsid
  mport_of[$name]=$mport
  pid_of[$name]=$(sed -n 's/.*"Pid": *\([0-9]*\).*/\1/p' "$FERRY_RUNTIME_DIR/$fsid.json")
  "$ferry" fsx create-data-repository-association --file-system-id "$fsid" \
    --file-system-path /bench --data-repository-path "s3://$bucket/$name/" \
    --s3 '{"AutoExportPolicy":{"Events":["NEW","CHANGED","DELETED"]}}' >>"$logs/fsx.log" 2>&1 ||
    { log "create-data-repository-association failed: $(tail -3 "$logs/fsx.log")"; return 1; }
  for i in $(seq 1 600); do
    state=$("$ferry" fsx describe-data-repository-associations --filters "Name=file-system-id,Values=$fsid" 2>>"$logs/fsx.log" |
      sed -n 's/.*"Lifecycle": *"\([A-Z_]*\)".*/\1/p' | head -1)
    [ "$state" = AVAILABLE ] && return 0
    sleep 0.1
  done
  log "association of $fsid not AVAILABLE after 60 s (last: ${state:-none})"
  return 1
}

# ---------------------------------------------------------------- measuring

printf 'case\ttool\trun\tseconds\texit\tload1\tferry_cpu_s\tminio_cpu_s\tforeign_cpu_s\tphase1_s\tbytes\n' >"$times"
# timed CASE TOOL RUN DAEMON_PID BYTES CMD...: runs CMD and appends its wall
# time, the CPU time of the ferry daemon (DAEMON_PID, or - for none), of
# MinIO and of everything else ("foreign": others' builds, and the command
# itself: cp, dd, s5cmd, rclone). A CMD may write a first phase's duration
# (cp's part of cp + hsm wait) to $phase1.
phase1="$run/phase1"
timed() {
  local c=$1 tool=$2 r=$3 dpid=$4 nbytes=$5 rc=0 t0 t1 s load b0 b1 k0 k1 m0 m1 kcpu mcpu foreign p1
  shift 5
  sync
  wait_idle
  rm -f "$phase1"
  load=$(cut -d' ' -f1 /proc/loadavg)
  b0=$(busy_jiffies)
  k0=0 k1=0
  [ "$dpid" = - ] || k0=$(proc_jiffies "$dpid")
  m0=$(proc_jiffies "$minio_pid")
  t0=$(date +%s.%N)
  "$@" >>"$logs/$c-$tool.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  b1=$(busy_jiffies)
  [ "$dpid" = - ] || k1=$(proc_jiffies "$dpid")
  m1=$(proc_jiffies "$minio_pid")
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  kcpu=$(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  mcpu=$(awk -v a="$m0" -v b="$m1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  foreign=$(awk -v a="$b0" -v b="$b1" -v k="$kcpu" -v m="$mcpu" 'BEGIN { f = (b - a) / 100 - k - m; printf "%.2f", f < 0 ? 0 : f }')
  p1=$(cat "$phase1" 2>/dev/null || echo "")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$tool" "$r" "$s" "$rc" "$load" "$kcpu" "$mcpu" "$foreign" "$p1" "$nbytes" >>"$times"
  printf '  %-6s %-9s run %s: %8.3fs wall%s, cpu %6.2fs ferry %6.2fs minio %6.2fs foreign, load %s%s\n' \
    "$c" "$tool" "$r" "$s" "${p1:+ (write $p1 s)}" "$kcpu" "$mcpu" "$foreign" "$load" "$([ $rc -eq 0 ] || echo " (FAILED, exit $rc; $logs/$c-$tool.log)")" >&2
  return 0
}

# count_objects PREFIX: "FILES BYTES" of the non-directory objects under
# s3://$bucket/PREFIX/ (ferry also writes dir/ objects).
count_objects() {
  "$bin/s5cmd" --endpoint-url "$endpoint" ls "s3://$bucket/$1/*" 2>/dev/null |
    awk '$NF !~ /\/$/ && $(NF-1) ~ /^[0-9]+$/ { n++; b += $(NF-1) } END { printf "%d %.0f\n", n, b }'
}
check_objects() { # check_objects CASE TOOL RUN PREFIX FILES BYTES
  local n b
  read -r n b < <(count_objects "$4")
  if [ "$n" != "$5" ] || [ "$b" != "$6" ]; then
    log "  $2 $1 run $3: s3://$bucket/$4/ holds $n files / $b bytes, expected $5 / $6"
    printf '%s-check\t%s\t%s\t0\t1\t0\t0\t0\t0\t\t0\n' "$1" "$2" "$3" >>"$times"
  fi
}

# The timed commands.
cp_then_wait() { # SRC DST: cp -r, then ferry hsm wait of DST
  local t0
  t0=$(date +%s.%N)
  cp -r "$1" "$2"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }' >"$phase1"
  "$ferry" hsm wait "$2"
}
cp8_then_wait() { # SRC DST: 8 cp -r in parallel (one per top directory), then ferry hsm wait
  local t0
  t0=$(date +%s.%N)
  mkdir "$2"
  (cd "$1" && ls | xargs -P 8 -I{} cp -r {} "$2/")
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }' >"$phase1"
  "$ferry" hsm wait "$2"
}
dd1g() { dd if=/dev/zero of="$1" bs=1M count=1024 conv=fsync status=none; }
dd1g_then_wait() {
  local t0
  t0=$(date +%s.%N)
  dd1g "$1"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }' >"$phase1"
  "$ferry" hsm wait "$1"
}

# ---------------------------------------------------------------- data
small_bytes=$("$OUT/gen" -dataset small -bytes)
small_files=$("$OUT/gen" -dataset small -files)
if has "$CASES" small || has "$CASES" write; then
  "$OUT/gen" -dataset small -out "$OUT/data/small"
  # the source in the page cache for every tool
  cat "$OUT"/data/small/*/* >/dev/null
fi

# ---------------------------------------------------------------- a quiet moment
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }' && [ $waited -lt "$QUIET_WAIT" ]; do
  [ $waited = 0 ] && log "waiting (≤ ${QUIET_WAIT}s) for a 1-minute load below $QUIET_LOAD (now $(cut -d' ' -f1 /proc/loadavg))"
  sleep 10
  waited=$((waited + 10))
done
load_timed=$(cut -d' ' -f1-3 /proc/loadavg)
log "timed part starts at load $load_timed (was $load_at_start; waited ${waited}s)"

rotate() { # rotate N WORDS...: the words, starting at index N mod count
  local n=$1
  shift
  local a=("$@") i
  for i in $(seq 0 $((${#a[@]} - 1))); do echo "${a[$(((i + n) % ${#a[@]}))]}"; done
}

# ---------------------------------------------------------------- lag
if has "$CASES" lag; then
  first=1
  for r in $(seq 1 "$RUNS"); do
    for rate in $(rotate "$r" $RATES); do
      name="lag$rate-r$r"
      log "case lag: $rate files/s, run $r"
      start_mount "$name" || { stop_mount "$name"; continue; }
      sync
      wait_idle
      load=$(cut -d' ' -f1 /proc/loadavg)
      b0=$(busy_jiffies) k0=$(proc_jiffies "${pid_of[$name]}") m0=$(proc_jiffies "$minio_pid")
      hdr=""
      [ $first = 1 ] && hdr=-header
      line=$("$OUT/lag" -endpoint "$endpoint" -bucket "$bucket" -prefix "$name/lag/" -dir "$mnt_root/$name/bench/lag" \
        -rate "$rate" -writers "$WRITERS" -duration "$DURATION" -metrics "http://127.0.0.1:${mport_of[$name]}/metrics" \
        -raw "$logs/$name.tsv" $hdr 2>>"$logs/lag.log") || log "  lag $rate/s run $r failed: $(tail -1 "$logs/lag.log")"
      b1=$(busy_jiffies) k1=$(proc_jiffies "${pid_of[$name]}") m1=$(proc_jiffies "$minio_pid")
      cpus=$(awk -v b0="$b0" -v b1="$b1" -v k0="$k0" -v k1="$k1" -v m0="$m0" -v m1="$m1" \
        'BEGIN { k = (k1 - k0) / 100; m = (m1 - m0) / 100; f = (b1 - b0) / 100 - k - m; printf "%.2f\t%.2f\t%.2f", k, m, f < 0 ? 0 : f }')
      if [ $first = 1 ]; then
        printf 'run\tload1\tferry_cpu_s\tminio_cpu_s\tforeign_cpu_s\t%s\n' "$(echo "$line" | head -1)" >"$lagtimes"
        line=$(echo "$line" | tail -n +2)
        first=0
      fi
      [ -n "$line" ] && printf '%s\t%s\t%s\t%s\n' "$r" "$load" "$cpus" "$line" >>"$lagtimes"
      echo "$line" | awk -F'\t' -v c="$cpus" '{ printf "  %s/s: %s files, lag p50 %s s p99 %s s max %s s; daemon p50 ≤ %s s p99 ≤ %s s; close p50 %s ms p99 %s ms; cpu ferry/minio/foreign %s\n", $1, $3, $7, $9, $10, $14, $15, $11, $12, c }' >&2
      stop_mount "$name"
    done
  done
fi

# ---------------------------------------------------------------- small
if has "$CASES" small; then
  for r in $(seq 1 "$RUNS"); do
    for tool in $(rotate "$r" $SMALL_TOOLS); do
      name="small-$tool-r$r"
      log "case small: $tool run $r"
      case $tool in
        ferry | ferry-p8)
          start_mount "$name" || { stop_mount "$name"; continue; }
          dst="$mnt_root/$name/bench/small"
          if [ "$tool" = ferry ]; then
            timed small "$tool" "$r" "${pid_of[$name]}" "$small_bytes" cp_then_wait "$OUT/data/small" "$dst"
          else
            timed small "$tool" "$r" "${pid_of[$name]}" "$small_bytes" cp8_then_wait "$OUT/data/small" "$dst"
          fi
          check_objects small "$tool" "$r" "$name/small" "$small_files" "$small_bytes"
          stop_mount "$name"
          ;;
        s5cmd)
          timed small "$tool" "$r" - "$small_bytes" "$bin/s5cmd" --endpoint-url "$endpoint" --log error cp "$OUT/data/small/*" "s3://$bucket/$name/small/"
          check_objects small "$tool" "$r" "$name/small" "$small_files" "$small_bytes"
          ;;
        rclone)
          timed small "$tool" "$r" - "$small_bytes" "$bin/rclone" copy "$OUT/data/small" "bench:$bucket/$name/small" --transfers 32 --checkers 32
          check_objects small "$tool" "$r" "$name/small" "$small_files" "$small_bytes"
          ;;
      esac
    done
  done
fi

# ---------------------------------------------------------------- write
if has "$CASES" write; then
  log "case write"
  start_mount write || { stop_mount write; exit 1; }
  wmnt="$mnt_root/write"
  wpid=${pid_of[write]}
  mkdir -p "$wmnt/plain" "$run/local-write"
  for r in $(seq 1 "$RUNS"); do
    for where in $(rotate "$r" mount mount-export local); do
      case $where in
        mount) f="$wmnt/plain/onegib-r$r" ;;
        mount-export) f="$wmnt/bench/onegib-r$r" ;;
        local) f="$run/local-write/onegib-r$r" ;;
      esac
      case $where in
        mount-export) timed dd1g "$where" "$r" "$wpid" $((1 << 30)) dd1g_then_wait "$f" ;;
        local) timed dd1g "$where" "$r" - $((1 << 30)) dd1g "$f" ;;
        *) timed dd1g "$where" "$r" "$wpid" $((1 << 30)) dd1g "$f" ;;
      esac
      # The exported files stay (DELETED is in the policy: removing one would
      # remove its object) and are counted below.
      [ "$where" = mount-export ] || rm -f "$f"
    done
  done
  check_objects dd1g mount-export all write "$RUNS" $((RUNS << 30))
  for r in $(seq 1 "$RUNS"); do
    for where in $(rotate "$r" mount local); do
      case $where in
        mount) d="$wmnt/plain/small-r$r" ;;
        local) d="$run/local-write/small-r$r" ;;
      esac
      if [ "$where" = local ]; then
        timed cp5k "$where" "$r" - "$small_bytes" cp -r "$OUT/data/small" "$d"
      else
        timed cp5k "$where" "$r" "$wpid" "$small_bytes" cp -r "$OUT/data/small" "$d"
      fi
    done
  done
  stop_mount write
fi

# ---------------------------------------------------------------- report
{
  echo "# ferry export benchmark — $stamp"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); stores, local copies and MinIO on $(fs_note "$OUT")"
  echo "- ferry: commit $ferry_rev ($("$ferry" version 2>/dev/null | head -1))"
  echo "- MinIO: github.com/minio/minio@$(pinned minio), single drive, $endpoint"
  echo "- s5cmd: github.com/peak/s5cmd/v2@$(pinned s5cmd); rclone: github.com/rclone/rclone@$(pinned rclone)"
  echo "- load average (1, 5, 15 min): $load_at_start at the start, $load_timed when the timed part began (waited ${waited} s for < $QUIET_LOAD)"
  echo "- runs: $RUNS per case; tools interleaved, order rotated each run"
  echo
  BENCH_OUT=$OUT bench/export/tables.sh "$times" "$lagtimes"
  echo
  echo "Raw: $(basename "$times"), $(basename "$lagtimes"); per-file lag times and logs: logs/$stamp/"
} >"$results"
cat "$results"
log "results: $results"
