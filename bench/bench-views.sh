#!/bin/bash
# bench-views.sh — `moescope plot VIEW` on the 1M-token benchmark trace
# (2048 prompts x 512 tokens, 16 MoE layers, E 64, top-8) that
# bench/bench-analysis.sh makes in WORK_DIR (made here first when
# WORK_DIR/bench.db is missing; that also runs `analyze all`, so stored
# results exist).  Each view is plotted to a PNG at its default size,
# REPS times (default 3); wall and CPU (user + sys) seconds of each run.
# For `load`, also the computed path: on a copy of the database without
# the stored load analysis the view streams the whole trace itself
# (skipped with a reason when Debian's sqlite3 shell is missing).
#   bench/bench-views.sh BUILD_DIR WORK_DIR [REPS] [VIEW...]
# Views default to tokens heatmap load.
set -eu
B=${1:?usage: bench-views.sh BUILD_DIR WORK_DIR [REPS] [VIEW...]}
W=${2:?usage: bench-views.sh BUILD_DIR WORK_DIR [REPS] [VIEW...]}
R=${3:-3}
shift 2
[ $# -gt 0 ] && shift
VIEWS=${*:-tokens heatmap load}
M=$B/app/moescope
if [ ! -f "$W/bench.db" ]; then
    "$(dirname "$0")/bench-analysis.sh" "$B" "$W" >/dev/null
fi
export OPENBLAS_NUM_THREADS=1
echo "# moescope plot on $W/bench.db (1M tokens), $R runs each; load average $(cut -d' ' -f1 /proc/loadavg)"
printf '%-28s %8s %8s %8s %8s\n' view "wall min" "wall med" "cpu min" "cpu med"
time1() { # label, command...: R runs, min and median of wall and cpu
    local label=$1 i
    shift
    : >"$W/t.txt"
    for i in $(seq "$R"); do
        /usr/bin/time -f '%e %U %S' -o "$W/t1.txt" "$@" >/dev/null
        awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$W/t1.txt" >>"$W/t.txt"
    done
    sort -n -k1 "$W/t.txt" | awk -v l="$label" '{ w[NR] = $1 } END { m = int((NR + 1) / 2); printf "%-28s %8.2f %8.2f", l, w[1], w[m] }'
    sort -n -k2 "$W/t.txt" | awk '{ c[NR] = $2 } END { m = int((NR + 1) / 2); printf " %8.2f %8.2f\n", c[1], c[m] }'
}
for v in $VIEWS; do
    time1 "$v" "$M" plot "$v" --db "$W/bench.db" -o "$W/$v.png"
done
case " $VIEWS " in *" load "*)
    if command -v sqlite3 >/dev/null; then
        cp "$W/bench.db" "$W/noload.db"
        sqlite3 "$W/noload.db" "DELETE FROM analysis WHERE name = 'load'"
        time1 "load (computed)" "$M" plot load --db "$W/noload.db" -o "$W/load-computed.png"
        rm -f "$W/noload.db" "$W/noload.db-wal" "$W/noload.db-shm"
    else
        echo "# load (computed): skipped, no sqlite3 shell to remove the stored analysis from a copy"
    fi
esac
rm -f "$W/t.txt" "$W/t1.txt"
