#!/usr/bin/env bash
# bench/export/tables.sh TIMES.tsv [LAG.tsv] — the result tables of
# bench/export/run.sh from its raw numbers: min and median of the runs, rates
# at the median, ratios to the fastest peer (small) or to the store's file
# system (write), and the lag quantiles per load level.
set -euo pipefail
times=${1:?usage: bench/export/tables.sh TIMES.tsv [LAG.tsv]}
lag=${2:-}

awk_lib='
function median(a, m,    i, j, x) {
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function minof(a, m,    i, x) { x = a[1]; for (i = 2; i <= m; i++) if (a[i] < x) x = a[i]; return x }
function maxof(a, m,    i, x) { x = a[1]; for (i = 2; i <= m; i++) if (a[i] > x) x = a[i]; return x }
'

if [ -n "$lag" ] && [ -s "$lag" ]; then
  echo "**Export lag** under a steady load (64 KiB files; outside view: close() returned → MinIO's event time of the object; daemon view: ferry_export_lag_seconds, the bucket bound holding the quantile):"
  echo
  echo "| files/s (achieved) | runs | lag p50 s: median (min–max) | lag p99 s: median (min–max) | max s | daemon p50 / p99 (median) | daemon mean s | close() p50 / p99 ms | CPU s ferry / MinIO / others (median) | load1 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' "$awk_lib"'
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { r = $col["target_per_s"] + 0; if (!(r in n)) order[++nr] = r; k = ++n[r]
      for (c in col) v[r, c, k] = $col[c] }
    function med(r, c,    i, a) { for (i = 1; i <= n[r]; i++) a[i] = v[r, c, i] + 0; return median(a, n[r]) }
    function lo(r, c,    i, a) { for (i = 1; i <= n[r]; i++) a[i] = v[r, c, i] + 0; return minof(a, n[r]) }
    function hi(r, c,    i, a) { for (i = 1; i <= n[r]; i++) a[i] = v[r, c, i] + 0; return maxof(a, n[r]) }
    END {
      for (i = 1; i <= nr; i++) for (j = i + 1; j <= nr; j++) if (order[j] < order[i]) { x = order[i]; order[i] = order[j]; order[j] = x }
      for (i = 1; i <= nr; i++) {
        r = order[i]; miss = 0
        for (k = 1; k <= n[r]; k++) miss += v[r, "missing", k]
        printf "| %d (%.1f) | %d%s | %.3f (%.3f–%.3f) | %.3f (%.3f–%.3f) | %.3f | ≤ %s / ≤ %s | %.3f | %.1f / %.1f | %.1f / %.1f / %.1f | %.2f |\n",
          r, med(r, "achieved_per_s"), n[r], miss ? sprintf(" (%d files never seen)", miss) : "",
          med(r, "lag_p50_s"), lo(r, "lag_p50_s"), hi(r, "lag_p50_s"),
          med(r, "lag_p99_s"), lo(r, "lag_p99_s"), hi(r, "lag_p99_s"), hi(r, "lag_max_s"),
          med(r, "daemon_p50_le_s"), med(r, "daemon_p99_le_s"), med(r, "daemon_mean_s"),
          med(r, "close_p50_ms"), med(r, "close_p99_ms"),
          med(r, "ferry_cpu_s"), med(r, "minio_cpu_s"), med(r, "foreign_cpu_s"), med(r, "load1")
      }
    }' "$lag"
  echo
fi

# rows CASE LABEL PEERS BASE: one row per tool of CASE. PEERS: tools the
# ratio is taken to (the fastest by median); BASE: a tool whose speed is
# 100 % (share column) instead.
rows() {
  awk -F'\t' -v cs="$1" -v label="$2" -v peers="$3" -v base="$4" "$awk_lib"'
    BEGIN { split(peers, pl, " "); for (k in pl) ispeer[pl[k]] = 1 }
    NR == 1 { next }
    $1 == cs && $5 != 0 { bad[$2]++; if (!($2 in seen)) { seen[$2] = 1; order[++nt] = $2 } }
    $1 == cs"-check" { badcheck[$2]++ }
    $1 == cs && $5 == 0 { if (!($2 in seen)) { seen[$2] = 1; order[++nt] = $2 }
      k = ++n[$2]; t[$2, k] = $4; ld[$2, k] = $6; fc[$2, k] = $7; mc[$2, k] = $8; oc[$2, k] = $9; p1[$2, k] = $10; by[$2] = $11 }
    function med(tool, arr,    i, a) { for (i = 1; i <= n[tool]; i++) a[i] = arr[tool, i] + 0; return median(a, n[tool]) }
    END {
      best = ""
      for (i = 1; i <= nt; i++) { tool = order[i]; if (!n[tool]) continue
        md[tool] = med(tool, t); for (k = 1; k <= n[tool]; k++) a[k] = t[tool, k]; mn[tool] = minof(a, n[tool])
        hasp1[tool] = (p1[tool, 1] != ""); if (hasp1[tool]) mp1[tool] = med(tool, p1)
        if ((tool in ispeer) && !bad[tool] && (best == "" || md[tool] < md[best])) best = tool }
      for (i = 1; i <= nt; i++) { tool = order[i]
        if (!n[tool]) { printf "| %s | %s | — | — | — | — | — | — | 0 (%d failed) | — |\n", label, tool, bad[tool]; continue }
        size = by[tool] + 0
        rate = (cs == "small" || cs == "cp5k") ? sprintf("%.0f files/s, %.0f MB/s", 5000 / md[tool], size / md[tool] / 1e6) : sprintf("%.0f MB/s", size / md[tool] / 1e6)
        phase = hasp1[tool] ? sprintf("%.2f (%.0f MB/s)", mp1[tool], size / mp1[tool] / 1e6) : "—"
        ratio = "—"
        if (base != "" && (base in md)) ratio = sprintf("%.0f %%%s", 100 * md[base] / (hasp1[tool] ? mp1[tool] : md[tool]), hasp1[tool] ? " (write phase)" : "")
        else if (best != "" && !(tool in ispeer)) ratio = sprintf("**%.2f** (vs %s)", md[tool] / md[best], best)
        else if (best != "") ratio = sprintf("%.2f (vs %s)", md[tool] / md[best], best)
        note = (bad[tool] ? sprintf(" (%d failed)", bad[tool]) : "") (badcheck[tool] ? sprintf(" (%d with wrong objects)", badcheck[tool]) : "")
        printf "| %s | %s | %.2f | %.2f | %s | %s | %.2f / %.2f / %.2f | %.2f | %d%s | %s |\n", label, tool, mn[tool], md[tool], rate, phase,
          med(tool, fc), med(tool, mc), med(tool, oc), med(tool, ld), n[tool], note, ratio
      }
    }' "$times"
}

echo "| case | tool | min s | median s | at the median | write phase s (median) | CPU s ferry / MinIO / others (median) | load1 | runs | ratio (median) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
rows small "5,000 × 64 KiB to the bucket" "s5cmd rclone" ""
rows dd1g "dd 1 GiB bs=1M conv=fsync" "" local
rows cp5k "cp -r 5,000 × 64 KiB" "" local
