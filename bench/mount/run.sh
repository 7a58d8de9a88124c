#!/usr/bin/env bash
# bench/mount/run.sh — `ferry mount` against rclone mount, s3fs and geesefs on
# one MinIO, in one run. See docs/benchmarks.md, section
# "Mount benchmarks", for what it measures and the results. Runs as root (it
# mounts, and drops the page cache with /proc/sys/vm/drop_caches).
#
# Usage: bench/mount/run.sh
#   TOOLS="ferry rclone s3fs geesefs"   mounts to compare
#   CASES="seq1g par4 lsR find warm hot"
#       seq1g  cold sequential read of one 1 GiB object (dd bs=1M to /dev/null)
#       par4   cold sequential read of four 512 MiB objects, four readers in parallel
#       lsR    `ls -lR` over 5,000 files in 50 directories on a fresh mount
#       find   `find -type f` over the same tree on a fresh mount
#       warm   re-read of the 1 GiB file whose data the mount already holds on
#              local disk (its cache or store), page cache dropped; against
#              reading the same bytes from a file on the same file system ("local")
#       hot    the same re-read with the page cache left as it is
#   RUNS=3            timed runs per case and tool (≥3)
#   RAW=1             add a plain curl GET (one stream per object, no FUSE) to seq1g and par4
#   CEILING=1         measure the parallel ranged-GET ceiling first (bench/ceiling)
#   FERRY_BIN=path    use this ferry binary instead of building ./cmd/ferry
#   FERRY_BASE_BIN=path  the ferry binary of tool "ferry-base": a second ferry
#                     (e.g. built from main) timed interleaved with "ferry", so a
#                     change is measured before and after in one run
#   QUIET_WAIT=600    before the timed part, wait (at most this many seconds) for
#                     a 1-minute load average below QUIET_LOAD (default 1.5)
#   WAIT_IDLE=80      before each timed run wait (≤ 10 s) until the CPUs were this
#                     % idle over 2 s; 0 = don't
#   PROFILE=1         ferry mounts write a CPU profile each (logs/<stamp>/ferry-<case>-<run>.pprof)
#   OUT=bench/out/mount   data sets, MinIO data, caches, logs and results
#
# "Cold" means: the mount is stopped, its cache (ferry: its store) deleted, the
# mount started afresh, and the page cache dropped (MinIO's files included)
# right before the timed command. Mounts run interleaved: in run r every tool
# does the case once, in an order rotated by r.
# Results: $OUT/results-<date>.md (also printed), raw times in $OUT/times-<date>.tsv.
# Every mount is unmounted and every process the harness started is stopped
# on exit, failure included; scratch data (MinIO's, the caches) lives in
# $OUT/run-<date> and the mountpoints in a mktemp -d folder of /tmp; both are
# removed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$root/bench/out/mount}
TOOLS=${TOOLS:-ferry rclone s3fs geesefs}
CASES=${CASES:-seq1g par4 lsR find warm hot}
RUNS=${RUNS:-3}
RAW=${RAW:-1}
CEILING=${CEILING:-1}
QUIET_WAIT=${QUIET_WAIT:-600}
QUIET_LOAD=${QUIET_LOAD:-1.5}
WAIT_IDLE=${WAIT_IDLE:-80}
stamp=$(date +%Y%m%d-%H%M%S)
results="$OUT/results-$stamp.md"
times="$OUT/times-$stamp.tsv"
logs="$OUT/logs/$stamp"
run="$OUT/run-$stamp"
data="$OUT/data"
# The mountpoints live outside the work tree: `go build ./...`, `go vet ./...`
# and `gofmt -l .` walk every directory of the module, and a walk into a
# mount lists it (a cold ls -lR of ferry once took 0.18 s because someone's
# walk had just listed the tree; a walk also holds the mount busy).
mnt_root=""
bucket=bench-mount

log() { echo "bench/mount: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root: the harness mounts and drops the page cache"; exit 2; }

# ---------------------------------------------------------------- cleanup
# Everything the harness starts is recorded here and stopped on exit.
declare -A pid_of=()
minio_pid=""
cleanup() {
  local t m
  for t in "${!pid_of[@]}"; do stop_mount "$t" || true; done
  if [ -n "$mnt_root" ]; then
    for m in "$mnt_root"/*; do
      mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    done
  fi
  if [ -n "$minio_pid" ]; then
    kill "$minio_pid" 2>/dev/null || true
    wait "$minio_pid" 2>/dev/null || true
  fi
  rm -rf "$run"
  if [ -n "$mnt_root" ]; then rmdir "$mnt_root"/* "$mnt_root" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$data" "$logs" "$run/cache"
mnt_root=$(mktemp -d /tmp/ferry-bench-mount.XXXXXX)

# ---------------------------------------------------------------- tools
# MinIO and rclone (which uploads the data sets) are needed; a peer that
# cannot be installed is left out and the report says why.
scripts/tools.sh minio rclone fuse3
declare -A skipped=()
for t in $TOOLS; do
  case $t in
    ferry | rclone) ;;
    ferry-base)
      if [ ! -x "${FERRY_BASE_BIN:-}" ]; then
        skipped[$t]="FERRY_BASE_BIN is not set to an executable ferry binary"
        log "SKIPPING $t: ${skipped[$t]}"
      fi ;;
    s3fs | geesefs)
      if ! scripts/tools.sh "$t" 2>"$logs/install-$t.log"; then
        skipped[$t]=$(tail -1 "$logs/install-$t.log")
        log "SKIPPING $t: ${skipped[$t]}"
      fi ;;
    *) log "unknown tool $t: use ferry, ferry-base, rclone, s3fs or geesefs"; exit 2 ;;
  esac
done
without() { echo " $1 " | sed "s/ $2 / /; s/^ *//; s/ *\$//"; }
for t in "${!skipped[@]}"; do TOOLS=$(without "$TOOLS" "$t"); done

go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/ceiling" ./bench/ceiling

ferry_skip=""
ferry_rev=""
if has "$TOOLS" ferry; then
  ferry=${FERRY_BIN:-$OUT/ferry}
  if [ -z "${FERRY_BIN:-}" ] && ! go build -o "$ferry" ./cmd/ferry 2>"$logs/ferry-build.log"; then
    ferry_skip="go build ./cmd/ferry failed (see $logs/ferry-build.log)"
  fi
  ferry_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
  # ferry mount and ferry fsx are being written while this harness is: use
  # ferry only once both commands exist.
  if [ -z "$ferry_skip" ]; then
    for c in "mount" "fsx create-data-repository-association" "fsx describe-data-repository-associations"; do
      # shellcheck disable=SC2086
      if ! "$ferry" $c --help >/dev/null 2>&1; then
        ferry_skip="$ferry has no '$c' command yet (tree $ferry_rev)"
        break
      fi
    done
  fi
  if [ -n "$ferry_skip" ]; then
    log "SKIPPING ferry: $ferry_skip; benchmarking the peers only"
    skipped[ferry]=$ferry_skip
    TOOLS=$(without "$TOOLS" ferry)
  fi
fi
[ -n "$TOOLS" ] || { log "no tool left to benchmark"; exit 1; }

version_of() {
  case $1 in
    ferry) echo "$("$ferry" version 2>/dev/null | head -1 | tr -s ' \t' ' ') (tree $ferry_rev)" ;;
    ferry-base) echo "$("$FERRY_BASE_BIN" version 2>/dev/null | head -1 | tr -s ' \t' ' ') ($FERRY_BASE_BIN)" ;;
    rclone) echo "github.com/rclone/rclone@$(pinned rclone) ($("$bin/rclone" version 2>/dev/null | sed -n 's/^- go\/version: *//p'))" ;;
    geesefs) echo "github.com/yandex-cloud/geesefs@$(pinned geesefs)" ;;
    s3fs) echo "Debian s3fs $(dpkg-query -W -f '${Version}' s3fs) ($(s3fs --version 2>/dev/null | head -1 | sed 's/ (commit.*//'))" ;;
    minio) echo "github.com/minio/minio@$(pinned minio)" ;;
    fuse) echo "Debian fuse3 $(dpkg-query -W -f '${Version}' fuse3 2>/dev/null), kernel $(uname -r)" ;;
  esac
}

# ---------------------------------------------------------------- data sets
for ds in onegib large small; do
  "$OUT/gen" -dataset "$ds" -out "$data/$ds"
done

# ---------------------------------------------------------------- MinIO
port=$(free_port 19500)
cport=$(free_port $((port + 1)))
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$endpoint
export AWS_EC2_METADATA_DISABLED=true
# No ~/.aws files of the machine: every tool gets the endpoint and keys from here.
export AWS_CONFIG_FILE="$run/aws-config" AWS_SHARED_CREDENTIALS_FILE="$run/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
mkdir -p "$run/minio"
start_minio "$run/minio"
wait_minio
log "MinIO $endpoint (data in $run/minio)"

# rclone: an on-the-fly remote "bench:" from environment variables, no config file.
export RCLONE_CONFIG="$run/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio
export RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_REGION=us-east-1
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
: >"$RCLONE_CONFIG"
# s3fs: its password file (accessKeyId:secretAccessKey, mode 0600).
s3fs_passwd="$run/s3fs-passwd"
(umask 077 && echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$s3fs_passwd")

log "uploading the data sets to s3://$bucket/data/"
"$bin/rclone" mkdir "bench:$bucket"
for ds in onegib large small; do
  "$bin/rclone" copy "$data/$ds" "bench:$bucket/data/$ds" --transfers 16 --checkers 16 2>>"$logs/upload.log"
done

# ---------------------------------------------------------------- mounts
# mount_cmd TOOL MNT CACHE: sets argv to the command that mounts
# s3://$bucket/data on MNT in the foreground, with its data cache in CACHE.
mount_cmd() {
  local tool=$1 mnt=$2 cache=$3
  case $tool in
    ferry)
      argv=("$ferry" mount --endpoint-url "$endpoint" --store "$cache" "$mnt")
      if [ "${PROFILE:-0}" = 1 ] && [ -n "${prof_tag:-}" ]; then argv+=(--cpuprofile "$logs/ferry-$prof_tag.pprof"); fi ;;
    ferry-base) argv=("$FERRY_BASE_BIN" mount --endpoint-url "$endpoint" --store "$cache" "$mnt") ;;
    rclone) argv=("$bin/rclone" mount "bench:$bucket/data" "$mnt" --vfs-cache-mode full --cache-dir "$cache") ;;
    s3fs) argv=(s3fs "$bucket:/data" "$mnt" -f -o "passwd_file=$s3fs_passwd,url=$endpoint,use_path_request_style,endpoint=us-east-1,use_cache=$cache") ;;
    geesefs) argv=("$bin/geesefs" -f --endpoint "$endpoint" --region us-east-1 --cache "$cache" "$bucket:data" "$mnt") ;;
  esac
}

# base TOOL: the directory under which the mount shows s3://$bucket/data/.
base() {
  case $1 in
    ferry | ferry-base) echo "$mnt_root/$1/bench" ;;
    *) echo "$mnt_root/$1" ;;
  esac
}

# ferry: the daemons register in a runtime directory of this run only.
export FERRY_RUNTIME_DIR="$run/ferry-runtime"

# start_mount TOOL: mounts TOOL afresh: its cache (ferry: its store) emptied,
# then waits until the mount is there (ferry: until its association to
# s3://$bucket/data/ on /bench is AVAILABLE). Nothing below the mount is read.
start_mount() {
  local tool=$1 mnt="$mnt_root/$1" cache="$run/cache/$1" i out
  stop_mount "$tool"
  rm -rf "$cache"
  mkdir -p "$mnt" "$cache"
  mount_cmd "$tool" "$mnt" "$cache"
  out="$logs/$tool-mount.out"
  "${argv[@]}" >"$out" 2>>"$logs/$tool-mount.log" &
  pid_of[$tool]=$!
  for i in $(seq 1 300); do
    mountpoint -q "$mnt" && break
    kill -0 "${pid_of[$tool]}" 2>/dev/null || { log "$tool mount exited: $(tail -3 "$logs/$tool-mount.log")"; return 1; }
    sleep 0.1
  done
  mountpoint -q "$mnt" || { log "$tool did not mount $mnt in 30 s"; return 1; }
  case $tool in
    ferry) ferry_associate "$ferry" "$out" || return 1 ;;
    ferry-base) ferry_associate "$FERRY_BASE_BIN" "$out" || return 1 ;;
  esac
}

# ferry_associate FERRY OUT: links /bench of the file system FERRY mounted
# (its id printed in OUT) to s3://$bucket/data/ the way aws fsx does, and
# waits until it is AVAILABLE.
ferry_associate() {
  local ferry=$1 out=$2 fsid state i
  for i in $(seq 1 100); do
    fsid=$(grep -o 'fs-[0-9a-f]\{17\}' "$out" | head -1) && break
    sleep 0.1
  done
  [ -n "$fsid" ] || { log "ferry mount printed no file system id"; return 1; }
  "$ferry" fsx create-data-repository-association --file-system-id "$fsid" \
    --file-system-path /bench --data-repository-path "s3://$bucket/data/" \
    >>"$logs/ferry-fsx.log" 2>&1 || { log "ferry fsx create-data-repository-association failed: $(tail -3 "$logs/ferry-fsx.log")"; return 1; }
  for i in $(seq 1 600); do
    state=$("$ferry" fsx describe-data-repository-associations --filters "Name=file-system-id,Values=$fsid" 2>>"$logs/ferry-fsx.log" |
      sed -n 's/.*"Lifecycle": *"\([A-Z_]*\)".*/\1/p' | head -1)
    case $state in
      AVAILABLE) return 0 ;;
      FAILED | MISCONFIGURED)
        log "ferry association is $state: $("$ferry" fsx describe-data-repository-associations --filters "Name=file-system-id,Values=$fsid" 2>&1 | tr -s ' \n' ' ')"
        return 1 ;;
    esac
    sleep 0.1
  done
  log "ferry association not AVAILABLE after 60 s (last: ${state:-none})"
  return 1
}

# stop_mount TOOL: unmounts TOOL and waits (≤ 30 s) for its process to end.
stop_mount() {
  local tool=$1 mnt="$mnt_root/$1" pid=${pid_of[$1]:-}
  if mountpoint -q "$mnt" 2>/dev/null; then
    if [ "$tool" = ferry ] || [ "$tool" = ferry-base ]; then
      local fb=${ferry:-}
      [ "$tool" = ferry ] || fb=$FERRY_BASE_BIN
      # SIGTERM is ferry's other clean way out (a busy mount is detached and
      # the daemon exits once its last file is closed).
      if ! "$fb" umount "$mnt" >>"$logs/$tool-mount.log" 2>&1 && [ -n "$pid" ]; then
        log "  ferry umount refused (see $logs/$tool-mount.log); sending SIGTERM"
        kill "$pid" 2>/dev/null || true
      fi
    else
      umount "$mnt" 2>/dev/null || true
    fi
  fi
  if [ -n "$pid" ]; then
    stop_pid "$pid" "$tool"
    wait "$pid" 2>/dev/null || true
    unset "pid_of[$tool]"
  fi
  if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" 2>/dev/null || true; fi
}

# ferry is being written while this harness is: prove that its mount shows
# the association's objects and reads one before timing it, and leave it out
# otherwise.
if has "$TOOLS" ferry; then
  probe=""
  if ! start_mount ferry; then
    probe="ferry mount or its association failed (see $logs/ferry-mount.log, $logs/ferry-fsx.log)"
  elif ! head -c 1 "$(base ferry)/small/d00/f0000.bin" >/dev/null 2>>"$logs/ferry-probe.log"; then
    probe="the mount does not show or read the association's objects yet (tree $ferry_rev): $(tail -1 "$logs/ferry-probe.log")"
  fi
  stop_mount ferry
  if [ -n "$probe" ]; then
    log "SKIPPING ferry: $probe"
    skipped[ferry]=$probe
    TOOLS=$(without "$TOOLS" ferry)
  fi
  [ -n "$TOOLS" ] || { log "no tool left to benchmark"; exit 1; }
fi

# ---------------------------------------------------------------- measuring
printf 'case\ttool\trun\tseconds\texit\tload1\tmount_cpu_s\tminio_cpu_s\tforeign_cpu_s\n' >"$times"

# cpu_of TOOL: CPU time (jiffies) of TOOL's mount process (0 for none).
cpu_of() { if [ -n "${pid_of[$1]:-}" ]; then proc_jiffies "${pid_of[$1]}"; else echo 0; fi; }

drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

# The timed commands. Each fails (non-zero) if it read less than it should.
read_one() { dd if="$1" of=/dev/null bs=1M status=none; }
read_par4() {
  local b=$1 i rc=0 pids=()
  for i in 0 1 2 3; do
    dd if="$b/large/large$i.bin" of=/dev/null bs=1M status=none &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=$?; done
  return $rc
}
list_lsR() { [ "$(ls -lR "$1/small" | grep -c ' f[0-9]*\.bin$')" = 5000 ]; }
list_find() { [ "$(find "$1/small" -type f | wc -l)" = 5000 ]; }
s3get() {
  curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -o /dev/null "$endpoint/$bucket/data/$1"
}
get_par4() {
  local i rc=0 pids=()
  for i in 0 1 2 3; do
    s3get "large/large$i.bin" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=$?; done
  return $rc
}

# timed CASE TOOL RUN DROP CMD...: runs CMD (page cache dropped first when
# DROP=1) and appends to $times its wall time, the mount process's CPU time,
# MinIO's and everyone else's ("foreign": other people's builds).
timed() {
  local c=$1 tool=$2 r=$3 drop=$4 rc=0 t0 t1 s load b0 b1 k0 k1 m0 m1 kcpu mcpu foreign
  shift 4
  wait_idle
  [ "$drop" = 1 ] && drop_caches
  load=$(cut -d' ' -f1 /proc/loadavg)
  b0=$(busy_jiffies)
  k0=$(cpu_of "$tool")
  m0=$(proc_jiffies "$minio_pid")
  t0=$(date +%s.%N)
  "$@" 2>>"$logs/$c-$tool.log" || rc=$?
  t1=$(date +%s.%N)
  b1=$(busy_jiffies)
  k1=$(cpu_of "$tool")
  m1=$(proc_jiffies "$minio_pid")
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  kcpu=$(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  mcpu=$(awk -v a="$m0" -v b="$m1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  # The reader's own CPU (dd, ls, find, curl) counts as foreign here; it is small.
  foreign=$(awk -v a="$b0" -v b="$b1" -v k="$kcpu" -v m="$mcpu" 'BEGIN { f = (b - a) / 100 - k - m; printf "%.2f", f < 0 ? 0 : f }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$tool" "$r" "$s" "$rc" "$load" "$kcpu" "$mcpu" "$foreign" >>"$times"
  printf '  %-6s %-7s run %s: %8.3fs wall, cpu %6.2fs mount %6.2fs minio %6.2fs foreign, load %s%s\n' \
    "$c" "$tool" "$r" "$s" "$kcpu" "$mcpu" "$foreign" "$load" "$([ $rc -eq 0 ] || echo " (FAILED, exit $rc)")" >&2
  return 0
}

# ---------------------------------------------------------------- raw ceiling
if [ "$CEILING" = 1 ]; then
  log "raw GET ceiling (bench/ceiling, 4 × 512 MiB, 16 MiB ranges, 8 in flight)"
  "$OUT/ceiling" -endpoint "$endpoint" -bucket bench-ceiling -small-count 200 -large-count 4 \
    -large-size $((512 << 20)) -part-size $((16 << 20)) -large-concurrency 8 >"$logs/ceiling.md" 2>>"$logs/ceiling.log" ||
    log "ceiling failed: $(tail -3 "$logs/ceiling.log")"
  "$OUT/ceiling" -endpoint "$endpoint" -purge bench-ceiling >/dev/null 2>&1 || true
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

declare -A verified=()
# verify TOOL DS: checks once per tool and data set, untimed, that the
# mount shows the data set byte for byte.
verify() {
  [ -z "${verified[$1-$2]:-}" ] || return 0
  if "$OUT/gen" -dataset "$2" -out "$(base "$1")/$2" -verify 2>>"$logs/verify.log"; then
    verified[$1-$2]=ok
  else
    verified[$1-$2]=FAILED
    log "  $1 does not show data set $2 as generated: $(tail -1 "$logs/verify.log")"
  fi
}

# ---------------------------------------------------------------- cold cases
for c in seq1g par4 lsR find; do
  has "$CASES" "$c" || continue
  log "case $c"
  tools=($TOOLS)
  if [ "$RAW" = 1 ] && { [ "$c" = seq1g ] || [ "$c" = par4 ]; }; then tools+=(curl); fi
  for r in $(seq 1 "$RUNS"); do
    n=${#tools[@]}
    for k in $(seq 0 $((n - 1))); do
      tool=${tools[$(((k + r - 1) % n))]}
      if [ "$tool" = curl ]; then
        case $c in
          seq1g) timed "$c" curl "$r" 1 s3get onegib/onegib.bin ;;
          par4) timed "$c" curl "$r" 1 get_par4 ;;
        esac
        continue
      fi
      prof_tag="$c-$r"
      if ! start_mount "$tool"; then
        printf '%s\t%s\t%s\t0\t1\t0\t0\t0\t0\n' "$c" "$tool" "$r" >>"$times"
        stop_mount "$tool"
        continue
      fi
      b=$(base "$tool")
      case $c in
        seq1g) timed "$c" "$tool" "$r" 1 read_one "$b/onegib/onegib.bin" ;;
        par4) timed "$c" "$tool" "$r" 1 read_par4 "$b" ;;
        lsR) timed "$c" "$tool" "$r" 1 list_lsR "$b" ;;
        find) timed "$c" "$tool" "$r" 1 list_find "$b" ;;
      esac
      case $c in
        seq1g) verify "$tool" onegib ;;
        par4) verify "$tool" large ;;
      esac
      stop_mount "$tool"
    done
  done
done

# ---------------------------------------------------------------- warm and hot
declare -A on_disk=()
if has "$CASES" warm || has "$CASES" hot; then
  log "cases warm and hot"
  for tool in $TOOLS local; do
    if [ "$tool" = local ]; then
      f="$data/onegib/onegib.bin"
    else
      start_mount "$tool" || { stop_mount "$tool"; continue; }
      f="$(base "$tool")/onegib/onegib.bin"
      read_one "$f" || log "  $tool: reading $f failed"
      verify "$tool" onegib
      # Whatever the mount keeps (memory buffers, uploads) settles first.
      sync
      # Blocks in use, not apparent sizes: caches and stores are sparse files.
      on_disk[$tool]=$(du -s -B1 "$run/cache/$tool" 2>/dev/null | cut -f1)
    fi
    if has "$CASES" warm; then
      for r in $(seq 1 "$RUNS"); do timed warm "$tool" "$r" 1 read_one "$f"; done
    fi
    if has "$CASES" hot; then
      read_one "$f" || true
      for r in $(seq 1 "$RUNS"); do timed hot "$tool" "$r" 0 read_one "$f"; done
    fi
    [ "$tool" = local ] || stop_mount "$tool"
  done
fi

# ---------------------------------------------------------------- report
prof_tag=""
peers=$(without "$(without "$TOOLS" ferry)" ferry-base)
{
  echo "# ferry mount benchmark — $stamp"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); data, caches and MinIO on $(fs_note "$OUT")"
  echo "- MinIO: $(version_of minio), single drive, $endpoint"
  for t in $TOOLS; do echo "- $t: $(version_of "$t")"; done
  echo "- FUSE: $(version_of fuse)"
  for t in "${!skipped[@]}"; do echo "- $t: SKIPPED — ${skipped[$t]}"; done
  echo "- load average (1, 5, 15 min): $load_at_start at the start, $load_timed when the timed part began (waited ${waited} s for a quieter moment)"
  echo "- runs: $RUNS per case, mounts interleaved (order rotated each run); cold = fresh mount, empty cache, page cache dropped"
  awk -F'\t' -v n="$(nproc)" 'NR > 1 && $4 > 0 { runs++; wall += $4; f += $9; if ($9 > 0.1 * n * $4) noisy++ }
    END { printf "- other processes used %.0f CPU-seconds during %.0f s of timed runs (%.0f%% of the machine); %d of %d runs had more than 10%% of the machine taken by them\n", f, wall, 100 * f / (n * wall + 1e-9), noisy, runs }' "$times"
  echo
  echo "Mount commands (\$EP = $endpoint; keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, rclone's from RCLONE_CONFIG_BENCH_*, s3fs's from its passwd_file):"
  echo
  echo '```'
  for t in $TOOLS; do
    mount_cmd "$t" MNT CACHE
    echo "${argv[*]}" | sed "s#$endpoint#\$EP#g; s#$bin/##g; s#$s3fs_passwd#PASSWD#g; s#${FERRY_BASE_BIN:-/nonexistent}#ferry-base#g; s#${ferry:-/nonexistent}#ferry#g"
    if [ "$t" = ferry ] || [ "$t" = ferry-base ]; then
      echo "ferry fsx create-data-repository-association --file-system-id FS --file-system-path /bench --data-repository-path s3://$bucket/data/"
    fi
  done
  echo '```'
  if [ "$CEILING" = 1 ] && [ -s "$logs/ceiling.md" ]; then
    echo
    echo "Raw ceiling (bench/ceiling: objects just written, so MinIO reads them from its page cache; no file system on the client):"
    echo
    cat "$logs/ceiling.md"
  fi
  echo
  PEERS=$peers bench/mount/tables.sh "$times"
  if has "$CASES" warm || has "$CASES" hot; then
    echo
    echo "Bytes each mount kept on local disk after one read of the 1 GiB file (cache directory, ferry: store):"
    echo
    for t in "${!on_disk[@]}"; do echo "- $t: ${on_disk[$t]}"; done | sort
  fi
  echo
  echo "Data seen through each mount checked byte for byte against the data set (bench/gen -verify, untimed):"
  echo
  for k in "${!verified[@]}"; do echo "- $k: ${verified[$k]}"; done | sort
  echo
  echo "Raw times: $(basename "$times"); logs: logs/$stamp/"
} >"$results"
cat "$results"
log "results: $results"
