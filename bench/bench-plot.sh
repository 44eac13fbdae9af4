#!/bin/bash
# bench-plot.sh — `moescope plot` of every registered view on the 1M-token
# benchmark trace (2048 prompts x 512 tokens, 16 MoE layers, 64 experts,
# top-8; the trace of bench-analysis.sh), wall time of each whole command
# (open, prepare, draw at the view's default size, write the PNG).
#   bench/bench-plot.sh BUILD_DIR [WORK_DIR]
# Two passes: "computed" on the trace alone (the view runs its missing
# analysis, the database opened read-only), then "stored" after
# `moescope analyze all` wrote the result tables (what a user has after
# analysing).  WORK_DIR/bench.db is reused when present (bench-analysis.sh
# BUILD_DIR WORK_DIR leaves one with the analyses stored: then only the
# stored pass runs).
# Views that need what an imported trace cannot hold are measured on their
# own data and say so:
#   compare  - an imported trace holds no experiment: run 1 against itself
#              (--run 1 --baseline 1), which compares the two traces over
#              their common prefix, every one of the 1M positions and 16
#              layers (the prompt drawn is prompt 0; KL needs an experiment);
#   sweep    - a sweep's size is its candidate count, not the trace's: a
#              --silence-each '*' sweep (1024 candidates + 16 controls per
#              shape: 1280 sets, about 2 min to make) of a
#              synthetic model of the same shape on 2 short prompts;
#   superexperts - needs expert output stats (`trace --stats`), which
#              imports cannot carry: reported as skipped.
set -eu
B=${1:?usage: bench-plot.sh BUILD_DIR [WORK_DIR]}
B=$(cd "$B" && pwd)
W=${2:-$(mktemp -d "${TMPDIR:-/tmp}/msbenchplot.XXXXXX")}
M=$B/app/moescope
mkdir -p "$W"
export OPENBLAS_NUM_THREADS=1
echo "# work dir $W"
now() { date +%s.%N; }
fresh=0
if [ ! -s "$W/bench.db" ]; then
    fresh=1
    t0=$(now)
    "$B/bench/bench-analysis-gen" 2048 512 16 64 8 20240601 weights >"$W/trace.ids"
    awk 'BEGIN { for (i = 0; i < 2048; i++)
        printf "{\"prompt\":%d,\"labels\":{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}}\n",
            i, i % 2 ? "de" : "en", int(i / 2), i % 2 ? "b" : "a" }' >"$W/labels.jsonl"
    "$M" import --db "$W/bench.db" --format ids "$W/trace.ids" --labels "$W/labels.jsonl" >/dev/null
    printf '# trace generated and imported in %.1f s\n' "$(echo "$(now) - $t0" | bc)"
fi
rm -f "$W/trace.ids"
if [ ! -s "$W/sweep.db" ]; then
    "$M" synth --arch olmoe --layers 16 --embd 64 --heads 4 --experts 64 --used 8 --ff 32 --vocab 512 --type F32 \
        "$W/shape.gguf" >/dev/null
    printf 'The river\nDigits 12 34\n' >"$W/sweep.txt"
    t0=$(now)
    "$M" sweep "$W/shape.gguf" --prompts "$W/sweep.txt" --db "$W/sweep.db" --silence-each '*' \
        --random-controls 16 --seed 1 -t 2 >/dev/null
    printf '# sweep of 1024 candidates made in %.1f s\n' "$(echo "$(now) - $t0" | bc)"
fi

views=$("$M" plot --help | awk '/^views:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
args_of() {
    case $1 in
    compare) echo "--db $W/bench.db --run 1 --baseline 1" ;;
    sweep) echo "--db $W/sweep.db" ;;
    npmi) echo "--db $W/bench.db --run 1 --classes label:language" ;;
    *) echo "--db $W/bench.db --run 1" ;;
    esac
}
pass() {
    echo "# $1"
    printf '%-14s %8s  %s\n' view "wall s" result
    for v in $views; do
        if [ "$v" = superexperts ]; then
            printf '%-14s %8s  %s\n' "$v" - "skipped: an imported trace has no expert stats (trace --stats)"
            continue
        fi
        # shellcheck disable=SC2046
        set -- $(args_of "$v")
        t0=$(now)
        if "$M" plot "$v" "$@" -o "$W/$v.png" 2>"$W/err"; then
            printf '%-14s %8.2f  %s\n' "$v" "$(echo "$(now) - $t0" | bc)" "ok ($(stat -c %s "$W/$v.png") bytes)"
        else
            printf '%-14s %8.2f  %s\n' "$v" "$(echo "$(now) - $t0" | bc)" "FAILED: $(head -c 200 "$W/err")"
        fi
    done
}
[ "$fresh" -eq 1 ] && pass "computed: no analysis tables, each view runs its analysis (read-only database)"
if ! sqlite3 "$W/bench.db" "SELECT 1 FROM analysis LIMIT 1" >/dev/null 2>&1 ||
    [ -z "$(sqlite3 "$W/bench.db" "SELECT 1 FROM analysis LIMIT 1" 2>/dev/null)" ]; then
    t0=$(now)
    "$M" analyze all --db "$W/bench.db" --run 1 --segments 16 --cache 16 --sparse-weights \
        --label set --set1 a --set2 b --activate 5 --deactivate 5 --by label:language >/dev/null
    printf '# analyze all in %.1f s\n' "$(echo "$(now) - $t0" | bc)"
fi
pass "stored: after moescope analyze all"
