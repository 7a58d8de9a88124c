# Shell helpers shared by the benchmark harnesses (bench/run.sh,
# bench/mount/run.sh, bench/export/run.sh). Sourced, not run. The caller
# defines log() and, for pinned, bin (the project's .tools/bin).

# has LIST WORD: whether WORD is one of the space-separated LIST.
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

# pinned NAME: the version scripts/tools.sh pinned NAME at (its stamp file).
pinned() { ls -a "$bin" | sed -n "s/^\.$1-//p" | head -1; }

# free_port FROM: the first port from FROM on (200 tried) nothing listens on.
free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  return 1
}

# CPU time in jiffies: of the whole machine (busy), of process PID.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
proc_jiffies() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_idle [TRIES]: waits until the machine was WAIT_IDLE % idle over 2 s,
# at most TRIES × 2 s (default 5); WAIT_IDLE=0 does not wait.
wait_idle() {
  [ "$WAIT_IDLE" -gt 0 ] || return 0
  local tries=${1:-5} i b0 b1 idle
  for i in $(seq 1 "$tries"); do
    b0=$(busy_jiffies)
    sleep 2
    b1=$(busy_jiffies)
    idle=$(awk -v a="$b0" -v b="$b1" -v n="$(nproc)" 'BEGIN { printf "%d", 100 - (b - a) / (2 * n) }')
    [ "$idle" -ge "$WAIT_IDLE" ] && return 0
    [ "$i" = 1 ] && [ "$tries" -gt 5 ] && log "  waiting for an idle machine (${idle}% idle)"
  done
  log "  machine still busy (${idle}% idle); running anyway"
}

# fs_note DIR: the device and file system type DIR is on, and for ext4 whether
# it has a journal. Without one, ext4 walks past every recently freed inode at
# each create, so a run after many deletes (a previous store removed) creates
# files slower (docs/benchmarks.md, "Stub creation: O_TMPFILE, and this VM's
# ext4 without a journal").
fs_note() {
  local dev type j
  dev=$(df "$1" | awk 'NR==2 {print $1}')
  type=$(df -T "$1" | awk 'NR==2 {print $2}')
  j=""
  if [ "$type" = ext4 ] && [ -r "/sys/fs/ext4/$(basename "$dev")/journal_task" ]; then
    if [ "$(cat "/sys/fs/ext4/$(basename "$dev")/journal_task")" = "<none>" ]; then
      j=", no journal: creates slow down after many deletes"
    else
      j=", journaled"
    fi
  fi
  echo "$dev ($type$j)"
}

# start_minio DIR: starts the pinned MinIO ($bin/minio) on 127.0.0.1:$port
# (console $cport) with the data in DIR, the keys of $AWS_ACCESS_KEY_ID and
# $AWS_SECRET_ACCESS_KEY and its log in $logs/minio.log; sets minio_pid.
start_minio() {
  MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY \
    MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
    "$bin/minio" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
    "$1" >"$logs/minio.log" 2>&1 &
  minio_pid=$!
}

# wait_minio: waits (≤ 30 s) until the MinIO at $endpoint answers; exits the
# harness with MinIO's last log lines if it does not.
wait_minio() {
  local _
  for _ in $(seq 1 150); do
    curl -fsS "$endpoint/minio/health/live" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "MinIO did not start: $(tail -5 "$logs/minio.log")"
  exit 1
}

# stop_pid PID WHAT: waits (≤ 30 s) for process PID to exit after it was
# asked to (an umount), then kills it: SIGTERM, SIGKILL a second later.
stop_pid() {
  local _
  for _ in $(seq 1 300); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$2 (pid $1) still running 30 s after umount; killing it"
  kill "$1" 2>/dev/null || true
  sleep 1
  kill -9 "$1" 2>/dev/null || true
}
