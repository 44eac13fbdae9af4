#!/bin/bash
# bench-db-trace.sh — cost of tracing to SQLite on the OLMoE-shaped model
# (embd 2048, 16 heads, 64 experts, top-8, expert ff 1024, 4 layers, vocab
# 50277, Q8_0; the same model bench/run-speed.sh synthesises): the prompt
# loop of `moescope trace --timing` with the store against the identical
# inference with --no-store (target: <= 3 % slower), and the time spent
# storing as measured inside the process (observer callbacks + commits),
# which stays meaningful when machine load makes the wall-time difference
# noisy.  Not part of the tests.
#
# usage: bench/bench-db-trace.sh [CACHE_DIR]
# environment: MOESCOPE (default build/app/moescope), REPS (3), THREADS (2),
#              PROMPTS (8), GEN (8)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
M=${MOESCOPE:-$here/build/app/moescope}
cache=${1:-${TMPDIR:-/tmp}/moescope-speed}
reps=${REPS:-3}
threads=${THREADS:-2}
np=${PROMPTS:-8}
gen=${GEN:-8}
mkdir -p "$cache"
model=$cache/olmoe-shape.Q8_0.gguf
if [ ! -s "$model" ]; then
    echo "# synthesising $model ..." >&2
    "$M" synth --arch olmoe --layers 4 --embd 2048 --heads 16 --experts 64 --used 8 \
        --ff 1024 --vocab 50277 --type Q8_0 --seed 1 "$model.part"
    mv "$model.part" "$model"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/msbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$np"); do
    printf 'Prompt %d. Mixture-of-experts models route every token to a few experts; ' "$i"
    printf 'this benchmark measures what storing each routing decision costs. %.0s' $(seq 1 6)
    echo
done > "$work/p.txt"

# "WALL CPU" seconds of the prompt loop, from --timing
loop_time() { "$M" trace "$model" --prompts "$work/p.txt" --gen "$gen" -t "$threads" --timing "$@" 2>&1 |
              sed -n 's/.* in \([0-9.]*\) s .*CPU \([0-9.]*\) s, storing \([0-9.]*\) s.*/\1 \2 \3/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

variants=(plain trace trace-probs-stats)
loop_time --no-store > /dev/null   # warm-up: the model into the page cache
# interleaved repetitions, so load changes on a shared machine hit every variant
for r in $(seq 1 "$reps"); do
    for v in "${variants[@]}"; do
        rm -f "$work"/t.db*
        case $v in
            plain) loop_time --no-store ;;
            trace) loop_time --db "$work/t.db" ;;
            trace-probs-stats) loop_time --db "$work/t.db" --probs --stats ;;
        esac >> "$work/$v.times"
    done
done
ntok=$("$M" sql --db "$work/t.db" "SELECT sum(n_tokens) FROM prompt" --csv | tail -1)
echo "OLMoE-shaped Q8_0, $np prompts, $ntok tokens (prefill + $gen generated each), $threads threads, median of $reps"
bw=$(cut -d' ' -f1 "$work/plain.times" | median) bc=$(cut -d' ' -f2 "$work/plain.times" | median)
for v in "${variants[@]}"; do
    w=$(cut -d' ' -f1 "$work/$v.times" | median) c=$(cut -d' ' -f2 "$work/$v.times" | median)
    st=$(cut -d' ' -f3 "$work/$v.times" | median)
    awk -v v="$v" -v w="$w" -v c="$c" -v st="$st" -v bw="$bw" -v bc="$bc" -v n="$ntok" 'BEGIN {
        printf "%-18s wall %8.3f s (%+6.2f %%)   CPU %8.3f s (%+6.2f %%)   storing %6.3f s (%5.2f %% of the loop)   %6.1f tok/s\n",
               v, w, 100 * (w - bw) / bw, c, 100 * (c - bc) / bc, st, 100 * st / w, n / w }'
done
