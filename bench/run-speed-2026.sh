#!/bin/bash
# run-speed-2026.sh — speed of the 2026 architectures at real per-layer
# shapes (4 layers each, random weights from `moescope synth`):
#   qwen3moe  Qwen3-30B-A3B: embd 2048, 32 heads (4 KV), head dim 128,
#             128 experts, top-8, expert ff 768, vocab 151936; Q8_0 and Q4_K
#   gpt-oss   gpt-oss-20b: embd 2880, 64 heads (8 KV), head dim 64, 32
#             experts, top-4, expert ff 2880, vocab 201088, window 128;
#             MXFP4 (llama-quantize's MXFP4_MOE mix) and Q8_0
# `moescope bench -p 512 -n 32 -t 2` with the routing observer attached, and
# without it for the observer's cost, printed as one table.  Not part of the
# test suite.
#
# usage: bench/run-speed-2026.sh [CACHE_DIR]
#   CACHE_DIR  where the synthesised models are kept between runs
#              (default: $TMPDIR or /tmp, in moescope-speed/)
# environment: MOESCOPE (default: build/app/moescope next to this script),
#              REPS (default 3), THREADS (default 2), MODELS (default all four:
#              "qwen3moe:Q8_0 qwen3moe:Q4_K gpt-oss:MXFP4 gpt-oss:Q8_0")
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
M=${MOESCOPE:-$here/build/app/moescope}
cache=${1:-${TMPDIR:-/tmp}/moescope-speed}
reps=${REPS:-3}
threads=${THREADS:-2}
if [ ! -x "$M" ]; then
    echo "run-speed-2026.sh: $M: not built (set MOESCOPE or build into build/)" >&2
    exit 1
fi
mkdir -p "$cache"

shape() {
    case $1 in
    qwen3moe) echo "--arch qwen3moe --layers 4 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 --experts 128 --used 8 --ff 768 --vocab 151936" ;;
    gpt-oss) echo "--arch gpt-oss --layers 4 --embd 2880 --heads 64 --kv-heads 8 --head-dim 64 --experts 32 --used 4 --ff 2880 --vocab 201088" ;;
    esac
}

printf '| %-8s | %-6s | %-8s | %10s | %10s | %14s | %10s | %10s | %14s |\n' arch type size_MiB pp512_tps "" "" tg32_tps "" ""
printf '| %-8s | %-6s | %-8s | %10s | %10s | %14s | %10s | %10s | %14s |\n' "" "" "" observer plain "observer cost" observer plain "observer cost"
printf '|----------|--------|----------|------------|------------|----------------|------------|------------|----------------|\n'
for mt in ${MODELS:-qwen3moe:Q8_0 qwen3moe:Q4_K gpt-oss:MXFP4 gpt-oss:Q8_0}; do
    arch=${mt%%:*} ty=${mt#*:}
    model=$cache/$arch-shape.$ty.gguf
    if [ ! -s "$model" ]; then
        echo "# synthesising $model ..." >&2
        t0=$(date +%s)
        # shellcheck disable=SC2046
        "$M" synth $(shape "$arch") --type "$ty" --seed 1 "$model.part"
        mv "$model.part" "$model"
        echo "# ... in $(($(date +%s) - t0)) s" >&2
    fi
    size=$(($(stat -c %s "$model") / 1048576))
    obs=$("$M" bench "$model" -p 512 -n 32 -t "$threads" -r "$reps" --observer --json)
    plain=$("$M" bench "$model" -p 512 -n 32 -t "$threads" -r "$reps" --json)
    python3 - "$arch" "$ty" "$size" "$obs" "$plain" <<'PY'
import json, sys
arch, ty, size, a, b = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
def cost(obs, plain):
    return "%+.1f %%" % (100.0 * (plain - obs) / plain) if plain else "-"
print("| %-8s | %-6s | %-8s | %10.2f | %10.2f | %14s | %10.2f | %10.2f | %14s |" % (
    arch, ty, size, a["prefill_tps"], b["prefill_tps"], cost(a["prefill_tps"], b["prefill_tps"]),
    a["decode_tps"], b["decode_tps"], cost(a["decode_tps"], b["decode_tps"])))
PY
done
echo "(medians of $reps repetitions, $threads threads; observer cost = slowdown with --observer)"
