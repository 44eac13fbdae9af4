#!/bin/bash
# run-speed.sh — speed benchmark on an OLMoE-shaped random-weight model
# (embd 2048, 16 heads, 64 experts, top-8, expert ff 1024, 4 layers, vocab
# 50277) in F16, Q8_0 and Q4_K: `moescope bench -p 512 -n 32 -t 2`, with and
# without --observer, printed as one table.  Not part of the test suite.
#
# usage: bench/run-speed.sh [CACHE_DIR]
#   CACHE_DIR  where the synthesised models are kept between runs
#              (default: $TMPDIR or /tmp, in moescope-speed/)
# environment: MOESCOPE (default: build/app/moescope next to this script),
#              REPS (default 3), THREADS (default 2),
#              TYPES (default "F16 Q8_0 Q4_K")
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
M=${MOESCOPE:-$here/build/app/moescope}
cache=${1:-${TMPDIR:-/tmp}/moescope-speed}
reps=${REPS:-3}
threads=${THREADS:-2}
if [ ! -x "$M" ]; then
    echo "run-speed.sh: $M: not built (set MOESCOPE or build into build/)" >&2
    exit 1
fi
mkdir -p "$cache"

printf '| %-6s | %-8s | %10s | %10s | %14s | %10s | %10s | %14s |\n' type size_MiB pp512_tps "" "" tg32_tps "" ""
printf '| %-6s | %-8s | %10s | %10s | %14s | %10s | %10s | %14s |\n' "" "" plain observer "observer cost" plain observer "observer cost"
printf '|--------|----------|------------|------------|----------------|------------|------------|----------------|\n'
for ty in ${TYPES:-F16 Q8_0 Q4_K}; do
    model=$cache/olmoe-shape.$ty.gguf
    if [ ! -s "$model" ]; then
        echo "# synthesising $model ..." >&2
        t0=$(date +%s)
        "$M" synth --arch olmoe --layers 4 --embd 2048 --heads 16 --experts 64 --used 8 \
            --ff 1024 --vocab 50277 --type "$ty" --seed 1 "$model.part"
        mv "$model.part" "$model"
        echo "# ... in $(($(date +%s) - t0)) s" >&2
    fi
    size=$(($(stat -c %s "$model") / 1048576))
    plain=$("$M" bench "$model" -p 512 -n 32 -t "$threads" -r "$reps" --json)
    obs=$("$M" bench "$model" -p 512 -n 32 -t "$threads" -r "$reps" --observer --json)
    python3 - "$ty" "$size" "$plain" "$obs" <<'EOF'
import json, sys
ty, size, a, b = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
def cost(x, y):
    return "%+.1f %%" % (100.0 * (x - y) / x) if x else "-"
print("| %-6s | %-8s | %10.2f | %10.2f | %14s | %10.2f | %10.2f | %14s |" % (
    ty, size, a["prefill_tps"], b["prefill_tps"], cost(a["prefill_tps"], b["prefill_tps"]),
    a["decode_tps"], b["decode_tps"], cost(a["decode_tps"], b["decode_tps"])))
EOF
done
echo "(medians of $reps repetitions, $threads threads; observer cost = slowdown with --observer)"
