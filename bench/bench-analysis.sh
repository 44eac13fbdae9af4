#!/bin/bash
# bench-analysis.sh — every analysis module on a synthetic 1M-token trace
# (2048 prompts x 512 tokens, 16 MoE layers, 64 experts, top-8) made by
# bench-analysis-gen and stored through `moescope import`; then
# `moescope analyze all`, which decodes the routing once (two threads) and
# runs the modules on two workers; it reports each module's wall time and
# the CPU time of the thread that ran it, and a "total" row for the whole
# call (wall, process CPU).
#   bench/bench-analysis.sh BUILD_DIR [WORK_DIR] [PROMPTS]
# Consistency runs at the paper's headline setting (m = 16, rho = 2 -> C = 16);
# the full METHODS default grid (4 m x every C) is far more work, see
# docs/analysis.md.  Superexperts needs expert stats, which imports cannot
# carry, so it is reported as skipped.
set -eu
B=${1:?usage: bench-analysis.sh BUILD_DIR [WORK_DIR] [PROMPTS]}
W=${2:-$(mktemp -d "${TMPDIR:-/tmp}/msbench.XXXXXX")}
P=${3:-2048}
M=$B/app/moescope
mkdir -p "$W"
export OPENBLAS_NUM_THREADS=1
echo "# work dir $W, $P prompts x 512 tokens, 16 layers, E=64, k=8"
t0=$(date +%s.%N)
"$B/bench/bench-analysis-gen" "$P" 512 16 64 8 20240601 weights >"$W/trace.ids"
awk -v n="$P" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"prompt\":%d,\"labels\":{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}}\n",
        i, i % 2 ? "de" : "en", int(i / 2), i % 2 ? "b" : "a" }' >"$W/labels.jsonl"
t1=$(date +%s.%N)
rm -f "$W/bench.db"
"$M" import --db "$W/bench.db" --format ids "$W/trace.ids" --labels "$W/labels.jsonl" >/dev/null
t2=$(date +%s.%N)
rm -f "$W/trace.ids"
printf '# generate %.1f s, import %.1f s\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
"$M" analyze all --db "$W/bench.db" --segments 16 --cache 16 --sparse-weights \
    --label set --set1 a --set2 b --activate 5 --deactivate 5 --by pos --format csv >"$W/times.csv"
column -s, -t <"$W/times.csv"
awk -F, '$1 == "total" { printf "total: wall %.2f s, cpu %.2f s\n", $2, $3 }' "$W/times.csv"
