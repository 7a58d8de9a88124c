#!/usr/bin/env bash
# bench/tables.sh TIMES.tsv — the result tables of bench/run.sh from its raw
# times: per data set and direction, each tool's min and median wall time,
# MB/s and files/s at the median, median CPU seconds of the tool and of MinIO,
# the tool's median CPU seconds per GB moved (load-independent, unlike wall
# time), and ferry's (and ferry-base's) median divided by the fastest
# peer's median.
# Data sets, directions and tools default to those found in the file, in
# bench/run.sh's order; DATASETS, DIRECTIONS and TOOLS narrow them.
set -euo pipefail
times=${1:?usage: bench/tables.sh TIMES.tsv}
root=$(cd "$(dirname "$0")/.." && pwd)
gen=${OUT:-$root/bench/out}/gen
[ -x "$gen" ] || { gen="$(mktemp -d)/gen"; (cd "$root" && go build -o "$gen" ./bench/gen); }

present() { # present COLUMN ORDER...: the words of ORDER found in COLUMN
  local col=$1 w
  shift
  for w in "$@"; do
    awk -F'\t' -v c="$col" -v w="$w" 'NR > 1 && $c == w { found = 1; exit } END { exit !found }' "$times" && echo "$w"
  done
  return 0
}
DATASETS=${DATASETS:-$(present 1 small large large2 mixed | xargs)}
DIRECTIONS=${DIRECTIONS:-$(present 2 upload download noop-up noop-down | xargs)}
TOOLS=${TOOLS:-$(present 3 ferry ferry-base s5cmd rclone aws | xargs)}

for ds in $DATASETS; do
  bytes=$("$gen" -dataset "$ds" -bytes)
  files=$("$gen" -dataset "$ds" -files)
  echo
  echo "## $ds — $files files, $(awk -v b="$bytes" 'BEGIN {printf "%.1f MB", b/1e6}')"
  echo
  echo "| direction | tool | min s | median s | MB/s (median) | files/s (median) | CPU s tool / MinIO (median) | tool CPU s/GB (median) | runs | ferry ÷ fastest peer (median) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for dir in $DIRECTIONS; do
    awk -F'\t' -v ds="$ds" -v dir="$dir" -v bytes="$bytes" -v files="$files" -v tools="$TOOLS" '
      function median(a, m,    i, j, x) {
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
        return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
      }
      $1 == ds && $2 == dir { n[$3]++; t[$3, n[$3]] = $5; c[$3, n[$3]] = $8; mc[$3, n[$3]] = $9; if ($6 != 0) bad[$3]++ }
      END {
        nt = split(tools, order, " ")
        best = ""
        for (k = 1; k <= nt; k++) {
          tool = order[k]; m = n[tool]
          if (m == 0) continue
          for (i = 1; i <= m; i++) { v[i] = t[tool, i]; w[i] = c[tool, i]; y[i] = mc[tool, i] }
          md[tool] = median(v, m)
          mn[tool] = v[1]
          cpu[tool] = median(w, m)
          mcpu[tool] = median(y, m)
          if (tool !~ /^ferry/ && !bad[tool] && (best == "" || md[tool] < md[best])) best = tool
        }
        for (k = 1; k <= nt; k++) {
          tool = order[k]
          if (!(tool in md)) continue
          mbs = (dir ~ /^noop/) ? "—" : sprintf("%.0f", bytes / md[tool] / 1e6)
          cpg = (dir ~ /^noop/) ? "—" : sprintf("%.2f", cpu[tool] / (bytes / 1e9))
          ratio = ""
          if (tool ~ /^ferry/ && best != "") ratio = sprintf("**%.2f** (vs %s)", md[tool] / md[best], best)
          note = bad[tool] ? sprintf(" (%d failed)", bad[tool]) : ""
          printf "| %s | %s | %.2f | %.2f | %s | %.0f | %.2f / %.2f | %s | %d%s | %s |\n", dir, tool, mn[tool], md[tool], mbs, files / md[tool], cpu[tool], mcpu[tool], cpg, n[tool], note, ratio
        }
      }' "$times"
  done
done
