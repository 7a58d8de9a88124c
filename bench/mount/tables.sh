#!/usr/bin/env bash
# bench/mount/tables.sh TIMES.tsv — the result table of bench/mount/run.sh
# from its raw times: per case and tool the min and median wall time, the
# throughput at the median (MB/s for reads, files/s for listings), the median
# CPU seconds of the mount process and of MinIO, the median 1-minute load
# average when the runs started, and the median divided by the fastest peer's
# median (peers: PEERS, default every mount in the file but ferry and
# ferry-base, a second ferry binary timed for comparison). Warm and
# hot re-reads also show their speed as a share of reading the same bytes
# from a local file ("local").
set -euo pipefail
times=${1:?usage: bench/mount/tables.sh TIMES.tsv}
# present COLUMN ORDER...: the words of ORDER found in COLUMN, in that order.
present() {
  awk -F'\t' -v c="$1" -v order="${*:2}" 'NR > 1 { seen[$c] = 1 }
    END { n = split(order, o, " "); for (i = 1; i <= n; i++) if (o[i] in seen) printf "%s ", o[i] }' "$times"
}
CASES=${CASES:-$(present 1 seq1g par4 lsR find warm hot)}
TOOLS=$(present 2 ferry ferry-base rclone s3fs geesefs curl local)
PEERS=${PEERS:-$(present 2 rclone s3fs geesefs)}

echo "| case | tool | min s | median s | at the median | CPU s mount / MinIO (median) | load1 (median) | runs | ÷ fastest peer (median) | share of local speed |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CASES; do
  awk -F'\t' -v cs="$c" -v tools="$TOOLS" -v peers="$PEERS" '
    function median(a, m,    i, j, x) {
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    BEGIN {
      label["seq1g"] = "cold read 1 × 1 GiB"; label["par4"] = "cold read 4 × 512 MiB in parallel"
      label["lsR"] = "ls -lR, 5,000 files"; label["find"] = "find, 5,000 files"
      label["warm"] = "warm re-read 1 GiB (page cache dropped)"; label["hot"] = "hot re-read 1 GiB (page cache kept)"
      bytes["seq1g"] = 1073741824; bytes["par4"] = 2147483648; bytes["warm"] = 1073741824; bytes["hot"] = 1073741824
      split(peers, pl, " "); for (k in pl) ispeer[pl[k]] = 1
    }
    $1 == cs && $5 != 0 { bad[$2]++ }
    $1 == cs && $5 == 0 { n[$2]++; t[$2, n[$2]] = $4; kc[$2, n[$2]] = $7; mc[$2, n[$2]] = $8; ld[$2, n[$2]] = $6 }
    END {
      nt = split(tools, order, " ")
      best = ""
      for (k = 1; k <= nt; k++) {
        tool = order[k]; m = n[tool]
        if (m == 0) continue
        for (i = 1; i <= m; i++) { v[i] = t[tool, i]; w[i] = kc[tool, i]; y[i] = mc[tool, i]; z[i] = ld[tool, i] }
        md[tool] = median(v, m); mn[tool] = v[1]
        kcpu[tool] = median(w, m); mcpu[tool] = median(y, m); load[tool] = median(z, m)
        if ((tool in ispeer) && !bad[tool] && (best == "" || md[tool] < md[best])) best = tool
      }
      for (k = 1; k <= nt; k++) {
        tool = order[k]
        if (!(tool in md)) {
          if (bad[tool]) printf "| %s | %s | — | — | — | — | — | 0 (%d failed) | — | — |\n", label[cs], tool, bad[tool]
          continue
        }
        rate = (cs in bytes) ? sprintf("%.0f MB/s", bytes[cs] / md[tool] / 1e6) : sprintf("%.0f files/s", 5000 / md[tool])
        ratio = "—"
        if (best != "" && (tool in ispeer || tool ~ /^ferry/)) ratio = sprintf("%s%.2f%s (vs %s)", tool == "ferry" ? "**" : "", md[tool] / md[best], tool == "ferry" ? "**" : "", best)
        share = "—"
        if ((cs == "warm" || cs == "hot") && ("local" in md)) share = sprintf("%.0f %%", 100 * md["local"] / md[tool])
        cpu = (tool == "curl" || tool == "local") ? sprintf("— / %.2f", mcpu[tool]) : sprintf("%.2f / %.2f", kcpu[tool], mcpu[tool])
        note = bad[tool] ? sprintf(" (%d failed)", bad[tool]) : ""
        printf "| %s | %s | %.2f | %.2f | %s | %s | %.2f | %d%s | %s | %s |\n", label[cs], tool, mn[tool], md[tool], rate, cpu, load[tool], n[tool], note, ratio, share
      }
    }' "$times"
done
