#!/usr/bin/env bash
# bench/run.sh — `ferry s3 sync` against s5cmd, rclone and `aws s3 sync` on one
# MinIO, in one run. See docs/benchmarks.md for what it measures and the results.
#
# Usage: bench/run.sh            (everything: 3 data sets × 4 directions × 4 tools × 3 runs)
#   DATASETS="small large mixed"   data sets of bench/gen
#   DIRECTIONS="upload download noop-up noop-down"
#       upload     local tree → a fresh, empty S3 prefix
#       download   S3 prefix → a fresh, empty local directory
#       noop-up    the same upload again, right after it (nothing to copy)
#       noop-down  the same download again, right after it (nothing to copy)
#   TOOLS="ferry s5cmd rclone aws"
#   RUNS=3                         timed runs per data set, direction and tool (≥3)
#   CONC=32                        parallel requests every tool is given (see below)
#   CEILING=1                      measure the raw PUT/GET ceiling first (bench/ceiling)
#   VERIFY=1                       check every tool's first download byte for byte (untimed)
#   FERRY_BIN=path                 use this ferry binary instead of building ./cmd/ferry
#   FERRY_REV=rev                  build ferry from this commit (git archive) instead of the work tree
#   FERRY_BASE_REV=rev             also run "ferry-base", ferry built from this commit, interleaved
#                                  with the others (before/after a change on one server and load)
#   FERRY_PROFILE=1                ferry's last run of each case with --cpuprofile (if supported)
#   WAIT_IDLE=85                   before each timed run wait (≤ 60 s) until the CPUs were
#                                  this % idle over 2 s (other engineers' builds); 0 = don't
#   OUT=bench/out                  data sets, MinIO data, logs and results (same disk)
#
# Tools run interleaved: in run r every tool does the case once, in an order
# rotated by r, against the same server, each into a fresh destination.
# Results: $OUT/results-<date>.md (also printed), raw times in $OUT/times-<date>.tsv.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/.tools/bin"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$root/bench/out}
DATASETS=${DATASETS:-small large mixed}
DIRECTIONS=${DIRECTIONS:-upload download noop-up noop-down}
TOOLS=${TOOLS:-ferry s5cmd rclone aws}
RUNS=${RUNS:-3}
CONC=${CONC:-32}
CEILING=${CEILING:-1}
VERIFY=${VERIFY:-1}
FERRY_PROFILE=${FERRY_PROFILE:-0}
WAIT_IDLE=${WAIT_IDLE:-85}
stamp=$(date +%Y%m%d-%H%M%S)
results="$OUT/results-$stamp.md"
times="$OUT/times-$stamp.tsv"
logs="$OUT/logs/$stamp"
mkdir -p "$OUT/data" "$logs"

log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- tools
# s5cmd is always needed (it uploads the download source); the other peers
# only when benchmarked (rclone takes minutes to build).
peers="s5cmd"
has "$TOOLS" rclone && peers="$peers rclone"
has "$TOOLS" aws && peers="$peers awscli"
log "installing peers (scripts/tools.sh $peers)"
# shellcheck disable=SC2086
scripts/tools.sh $peers

# MinIO is built by scripts/tools.sh (the tests need it too). If another
# process is building it right now, wait for that instead of starting a
# second build.
wait_minio() {
  local waited=0
  while [ ! -x "$bin/minio" ] || ! ls "$bin"/.minio-* >/dev/null 2>&1; do
    if ! pgrep -f 'go install github.com/minio/minio' >/dev/null; then
      scripts/tools.sh minio
      return
    fi
    [ $waited -eq 0 ] && log "waiting for the MinIO build in progress"
    sleep 10
    waited=$((waited + 10))
    [ $waited -ge 1200 ] && { log "MinIO build did not finish in 20 minutes"; exit 1; }
  done
}
wait_minio

go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/ceiling" ./bench/ceiling

# build_ferry REV OUTPUT: builds ./cmd/ferry of a committed revision, untouched
# by whatever the work tree holds now.
build_ferry() {
  local src rc=0
  src=$(mktemp -d)
  git archive "$1" | tar -x -C "$src"
  (cd "$src" && go build -o "$2" ./cmd/ferry) 2>"$logs/ferry-build-$1.log" || rc=$?
  rm -rf "$src"
  return $rc
}

if [ -n "${FERRY_BASE_REV:-}" ]; then
  ferry_base="$OUT/ferry-base"
  ferry_base_rev=$(git rev-parse --short "$FERRY_BASE_REV")
  if build_ferry "$FERRY_BASE_REV" "$ferry_base"; then
    has "$TOOLS" ferry-base || TOOLS="$TOOLS ferry-base"
  else
    log "SKIPPING ferry-base: go build ./cmd/ferry of $FERRY_BASE_REV failed (see $logs/ferry-build-$FERRY_BASE_REV.log)"
  fi
fi

ferry_skip=""
if has "$TOOLS" ferry; then
  if [ -n "${FERRY_BIN:-}" ]; then
    ferry=$FERRY_BIN
  else
    ferry="$bin/ferry"
    if [ -n "${FERRY_REV:-}" ]; then
      build_ferry "$FERRY_REV" "$ferry" ||
        ferry_skip="go build ./cmd/ferry of $FERRY_REV failed (see $logs/ferry-build-$FERRY_REV.log)"
    elif ! go build -o "$ferry" ./cmd/ferry 2>"$logs/ferry-build.log"; then
      ferry_skip="go build ./cmd/ferry failed (see $logs/ferry-build.log)"
    fi
  fi
  if [ -z "$ferry_skip" ] && ! "$ferry" s3 sync --help >/dev/null 2>&1; then
    ferry_skip="$ferry has no 's3 sync' command yet"
  fi
  if [ -n "$ferry_skip" ]; then
    log "SKIPPING ferry: $ferry_skip; benchmarking the peers only"
    TOOLS=$(echo " $TOOLS " | sed 's/ ferry / /; s/^ *//; s/ *$//')
  fi
fi
if [ -n "${FERRY_REV:-}" ]; then
  ferry_rev=$(git rev-parse --short "$FERRY_REV")
else
  ferry_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
fi

version_of() {
  case $1 in
    ferry) "$ferry" version 2>/dev/null | head -1 | tr -s ' \t' ' ' ;;
    ferry-base) echo "$("$ferry_base" version 2>/dev/null | head -1 | tr -s ' \t' ' ') (commit $ferry_base_rev)" ;;
    # Built from the module, so the binaries do not know their release.
    s5cmd) echo "github.com/peak/s5cmd/v2@$(pinned s5cmd)" ;;
    rclone) echo "github.com/rclone/rclone@$(pinned rclone) ($("$bin/rclone" version 2>/dev/null | sed -n 's/^- go\/version: *//p'))" ;;
    aws) "$bin/aws" --version 2>&1 | head -1 ;;
    minio) echo "github.com/minio/minio@$(pinned minio)" ;;
  esac
}

# ---------------------------------------------------------------- MinIO
port=$(free_port 19300)
cport=$(free_port $((port + 1)))
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
minio_data="$OUT/minio-data"
rm -rf "$minio_data"
mkdir -p "$minio_data"
start_minio "$minio_data"
tmp=$(mktemp -d)
cleanup() {
  kill "$minio_pid" 2>/dev/null || true
  wait "$minio_pid" 2>/dev/null || true
  rm -rf "$tmp" "$minio_data" "$OUT/dl"
}
trap cleanup EXIT
wait_minio
log "MinIO $endpoint (data in $minio_data)"

# ---------------------------------------------------------------- tool settings
# Every tool gets CONC parallel requests, set the way that tool is told so.
# aws: ~/.aws/config equivalent in a temp file.
export AWS_CONFIG_FILE="$tmp/aws-config" AWS_SHARED_CREDENTIALS_FILE="$tmp/aws-credentials"
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = us-east-1
s3 =
    max_concurrent_requests = $CONC
EOF
: >"$AWS_SHARED_CREDENTIALS_FILE"
# rclone: an on-the-fly remote "bench:" from environment variables, no config file.
export RCLONE_CONFIG="$tmp/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio
export RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_REGION=us-east-1
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
: >"$RCLONE_CONFIG"

# cmdline TOOL SRC DST: the sync command of TOOL, SRC and DST are a local
# directory and s3://bucket/prefix (no trailing slash).
cmdline() {
  local tool=$1 src=$2 dst=$3
  case $tool in
    ferry) echo "$ferry s3 sync $src $dst --endpoint-url $endpoint --concurrency $CONC --no-progress" ;;
    ferry-base) echo "$ferry_base s3 sync $src $dst --endpoint-url $endpoint --concurrency $CONC --no-progress" ;;
    s5cmd)
      # s5cmd wants "prefix/*" for an S3 source and "dir/" for the contents of a directory.
      case $src in s3://*) src="$src/*" ;; *) src="$src/" ;; esac
      echo "$bin/s5cmd --endpoint-url $endpoint --numworkers $CONC sync $src $dst/" ;;
    rclone)
      src=${src/s3:\/\//bench:}
      dst=${dst/s3:\/\//bench:}
      echo "$bin/rclone sync $src $dst --transfers $CONC --checkers $CONC" ;;
    aws) echo "$bin/aws s3 sync $src $dst --endpoint-url $endpoint --only-show-errors" ;;
  esac
}

# ---------------------------------------------------------------- running
printf 'dataset\tdirection\ttool\trun\tseconds\texit\tload1\ttool_cpu_s\tminio_cpu_s\tforeign_cpu_s\n' >"$times"

# minio_jiffies: CPU time of the MinIO server, in clock ticks (100/s).
minio_jiffies() { awk '{ print $14 + $15 }' "/proc/$minio_pid/stat"; }

# timed DATASET DIRECTION TOOL RUN SRC DST [EXTRA]: runs the tool's sync and
# appends to $times its wall time (date +%s.%N around it), its CPU time
# (user+system, children included, from /usr/bin/time), MinIO's CPU time and
# the CPU time of everything else on the machine meanwhile ("foreign": other
# people's builds; it makes a run noisy).
timed() {
  local ds=$1 dir=$2 tool=$3 run=$4 rc=0 t0 t1 load cpu s b0 b1 m0 m1 mcpu foreign
  local log="$logs/$ds-$dir-$tool-r$run.log" tf="$tmp/time"
  tool_argv "$tool" "$5" "$6" "${7:-}"
  # Dirty pages of the previous run (MinIO's or a download's) are written
  # back now, not during this run, where they would throttle its writes.
  sync
  wait_idle 30
  load=$(cut -d' ' -f1 /proc/loadavg)
  b0=$(busy_jiffies)
  m0=$(minio_jiffies)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$tf" "${argv[@]}" >"$log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  b1=$(busy_jiffies)
  m1=$(minio_jiffies)
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  cpu=$(awk 'END { printf "%.2f", $1 + $2 }' "$tf")
  mcpu=$(awk -v a="$m0" -v b="$m1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  foreign=$(awk -v a="$b0" -v b="$b1" -v c="$cpu" -v m="$mcpu" 'BEGIN { f = (b - a) / 100 - c - m; printf "%.2f", f < 0 ? 0 : f }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$dir" "$tool" "$run" "$s" "$rc" "$load" "$cpu" "$mcpu" "$foreign" >>"$times"
  [ $rc -eq 0 ] || log "  $tool $dir $ds run $run: exit $rc (log: $log)"
  printf '  %-6s %-9s run %s: %8.3fs wall, cpu %6.2fs tool %6.2fs minio %6.2fs foreign%s\n' "$tool" "$dir" "$run" "$s" "$cpu" "$mcpu" "$foreign" "$([ $rc -eq 0 ] || echo " (exit $rc)")" >&2
}

# tool_argv TOOL SRC DST [EXTRA]: sets argv to the tool's sync command.
tool_argv() {
  # shellcheck disable=SC2206
  argv=($(cmdline "$1" "$2" "$3") ${4:-})
}

# untimed TOOL SRC DST: the same sync, to set up a case.
untimed() {
  tool_argv "$@"
  "${argv[@]}" >/dev/null 2>&1
}

purge() { "$OUT/ceiling" -endpoint "$endpoint" -purge "$1"; }

# check_upload NAME: empties s3://bench-up/NAME and checks that the upload had
# left exactly the data set there ($ds, $files and $bytes of the data set).
check_upload() {
  local n b tool run
  read -r n b < <(purge "bench-up/$1")
  if [ "$n" != "$files" ] || [ "$b" != "$bytes" ]; then
    tool=${1%%-*}
    run=${1##*-r}
    log "  $tool upload of $ds left $n objects / $b bytes, expected $files / $bytes"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" upload-check "$tool" "$run" 0 1 0 0 0 0 >>"$times"
  fi
}

profile_flag=""
# --cpuprofile is a hidden flag: probe it instead of reading --help.
if [ "$FERRY_PROFILE" = 1 ] && has "$TOOLS" ferry && "$ferry" --cpuprofile "$tmp/probe.pprof" version >/dev/null 2>&1; then
  profile_flag=1
fi

# ferry is being written while this harness runs: prove that it can sync a
# tiny tree both ways before timing it, and leave it out otherwise.
if has "$TOOLS" ferry; then
  mkdir -p "$tmp/smoke/a"
  echo one >"$tmp/smoke/a/1"
  echo two >"$tmp/smoke/2"
  "$bin/s5cmd" --endpoint-url "$endpoint" mb s3://bench-smoke >/dev/null 2>&1 || true
  tool_argv ferry "$tmp/smoke" s3://bench-smoke/t
  if "${argv[@]}" >"$logs/ferry-smoke.log" 2>&1 && tool_argv ferry s3://bench-smoke/t "$tmp/smoke-back" &&
    "${argv[@]}" >>"$logs/ferry-smoke.log" 2>&1 && diff -r "$tmp/smoke" "$tmp/smoke-back" >>"$logs/ferry-smoke.log" 2>&1; then
    :
  else
    ferry_skip="ferry s3 sync failed on a 2-file tree: $(grep -m1 -v '^$' "$logs/ferry-smoke.log" | cut -c1-160)"
    log "SKIPPING ferry: $ferry_skip"
    TOOLS=$(echo " $TOOLS " | sed 's/ ferry / /; s/^ *//; s/ *$//')
  fi
  purge bench-smoke >/dev/null
fi

if [ "$CEILING" = 1 ]; then
  wait_idle 30
  log "raw ceiling (bench/ceiling, $CONC parallel small requests, 8 parallel 16 MiB parts)"
  "$OUT/ceiling" -endpoint "$endpoint" -bucket ceiling -small-concurrency "$CONC" >"$logs/ceiling.md"
  cat "$logs/ceiling.md" >&2
  purge ceiling >/dev/null
fi

declare -A verified
rotate() { # rotate N WORDS...: the words, starting at index N mod count
  local n=$1
  shift
  local a=("$@") i
  for i in $(seq 0 $((${#a[@]} - 1))); do echo "${a[$(((i + n) % ${#a[@]}))]}"; done
}

for ds in $DATASETS; do
  src="$OUT/data/$ds"
  "$OUT/gen" -dataset "$ds" -out "$src"
  bytes=$("$OUT/gen" -dataset "$ds" -bytes)
  files=$("$OUT/gen" -dataset "$ds" -files)
  if has "$DIRECTIONS" download || has "$DIRECTIONS" noop-down; then
    # One source for every tool's download, written by s5cmd cp (plain
    # objects, no tool-specific metadata).
    log "$ds: uploading the download source s3://bench-src/$ds"
    "$bin/s5cmd" --endpoint-url "$endpoint" mb s3://bench-src >/dev/null 2>&1 || true
    "$bin/s5cmd" --endpoint-url "$endpoint" --log error cp "$src/" "s3://bench-src/$ds/" >"$logs/src-$ds.log" 2>&1
  fi
  "$bin/s5cmd" --endpoint-url "$endpoint" mb s3://bench-up >/dev/null 2>&1 || true
  # Deleting thousands of files right before the next tool creates thousands
  # makes that tool pay for it: ext4 skips recently freed inodes when it
  # allocates new ones (find_inode_bit/recently_deleted), so creates get
  # slower from run to run, in MinIO (uploads) as in download directories.
  # For data sets of many files, destinations are therefore kept until all
  # runs of the data set are done, and removed then.
  keep=$([ "$files" -ge 1000 ] && echo 1 || echo 0)
  kept_up=()
  for run in $(seq 1 "$RUNS"); do
    last=$([ "$run" = "$RUNS" ] && echo 1 || echo 0)
    log "$ds: run $run of $RUNS"
    # shellcheck disable=SC2086
    for tool in $(rotate $((run - 1)) $TOOLS); do
      extra=""
      if [ "$tool" = ferry ] && [ -n "$profile_flag" ] && [ "$last" = 1 ]; then
        extra="--cpuprofile $logs/ferry-$ds-%s.pprof"
      fi
      if has "$DIRECTIONS" upload || has "$DIRECTIONS" noop-up; then
        dst="s3://bench-up/$tool-$ds-r$run"
        if has "$DIRECTIONS" upload; then
          timed "$ds" upload "$tool" "$run" "$src" "$dst" "${extra//%s/upload}"
        else
          untimed "$tool" "$src" "$dst"
        fi
        if has "$DIRECTIONS" noop-up; then
          timed "$ds" noop-up "$tool" "$run" "$src" "$dst" "${extra//%s/noop-up}"
        fi
        if [ "$keep" = 1 ]; then
          kept_up+=("$tool-$ds-r$run")
        else
          check_upload "$tool-$ds-r$run"
        fi
      fi
      if has "$DIRECTIONS" download || has "$DIRECTIONS" noop-down; then
        dl="$OUT/dl/$ds/$tool-r$run"
        rm -rf "$dl"
        mkdir -p "$dl"
        if has "$DIRECTIONS" download; then
          timed "$ds" download "$tool" "$run" "s3://bench-src/$ds" "$dl" "${extra//%s/download}"
        else
          untimed "$tool" "s3://bench-src/$ds" "$dl"
        fi
        if [ "$VERIFY" = 1 ] && [ -z "${verified[$tool-$ds]:-}" ]; then
          if "$OUT/gen" -dataset "$ds" -out "$dl" -verify 2>>"$logs/verify.log"; then
            verified[$tool-$ds]=ok
          else
            verified[$tool-$ds]=FAILED
            log "  $tool download of $ds does not match the data set: $(tail -1 "$logs/verify.log")"
          fi
        fi
        if has "$DIRECTIONS" noop-down; then
          timed "$ds" noop-down "$tool" "$run" "s3://bench-src/$ds" "$dl" "${extra//%s/noop-down}"
        fi
        [ "$keep" = 1 ] || rm -rf "$dl"
      fi
    done
  done
  # Now the deletions that were put off.
  for p in "${kept_up[@]}"; do check_upload "$p"; done
  rm -rf "$OUT/dl/$ds"
  if has "$DIRECTIONS" download || has "$DIRECTIONS" noop-down; then
    purge "bench-src/$ds" >/dev/null
  fi
done

# ---------------------------------------------------------------- report
{
  echo "# ferry s3 sync benchmark — $stamp"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); data and MinIO on $(df -h "$OUT" | awk 'NR==2 {print $1}')"
  echo "- MinIO: $(version_of minio), single drive, $endpoint"
  for t in $TOOLS; do echo "- $t: $(version_of "$t")$([ "$t" = ferry ] && echo " (tree $ferry_rev)")"; done
  [ -n "$ferry_skip" ] && echo "- ferry: SKIPPED — $ferry_skip"
  echo "- runs: $RUNS per case, tools interleaved (order rotated each run); parallel requests per tool: $CONC"
  awk -F'\t' -v n="$(nproc)" 'NR > 1 && $2 != "upload-check" { runs++; wall += $5; f += $10; if ($10 > 0.1 * n * $5) noisy++ }
    END { printf "- other processes used %.0f CPU-seconds during %.0f s of timed runs (%.0f%% of the machine); %d of %d runs had more than 10%% of the machine taken by them\n", f, wall, 100 * f / (n * wall + 1e-9), noisy, runs }' "$times"
  echo
  echo "Command lines (SRC/DST as in the table; \$EP = $endpoint):"
  echo
  echo '```'
  for t in $TOOLS; do
    cmdline "$t" /data/DIR s3://bucket/prefix | sed "s#$endpoint#\$EP#g; s#$bin/##g"
  done
  echo "# aws: AWS_CONFIG_FILE with s3.max_concurrent_requests = $CONC"
  echo "# rclone: remote from RCLONE_CONFIG_BENCH_{TYPE=s3,PROVIDER=Minio,ENDPOINT,REGION,ACCESS_KEY_ID,SECRET_ACCESS_KEY}"
  echo '```'
  if [ "$CEILING" = 1 ]; then
    echo
    echo "Raw ceiling (bench/ceiling: in-memory objects, no file system, unsigned payloads):"
    echo
    cat "$logs/ceiling.md"
  fi
  OUT=$OUT DATASETS=$DATASETS DIRECTIONS=$DIRECTIONS TOOLS=$TOOLS bench/tables.sh "$times"
  if [ "$VERIFY" = 1 ]; then
    echo
    echo "Downloads checked byte for byte against the data set (first run of each tool):"
    echo
    for k in "${!verified[@]}"; do echo "- $k: ${verified[$k]}"; done | sort
  fi
  if awk -F'\t' 'NR>1 && $2=="upload-check"' "$times" | grep -q .; then
    echo
    echo "**Upload checks failed** (objects or bytes left in the bucket differ from the data set):"
    awk -F'\t' 'NR>1 && $2=="upload-check" {print "- " $1 " " $3 " run " $4}' "$times"
  fi
  echo
  echo "Raw times: $(basename "$times"); logs: logs/$stamp/"
} >"$results"
cat "$results"
log "results: $results"
