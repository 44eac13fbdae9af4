#!/bin/bash
# bench-pg.sh — PostgreSQL next to SQLite (docs/scale.md):
#   1. ingest: routing rows/s of the trace writer into a SQLite file (one
#      process) and into PostgreSQL from 1 and 3 worker processes
#      (bench-pg: synthetic routing, 16 layers, E = 64, top-8);
#   2. `moescope analyze all` on the synthetic analysis trace of
#      bench-analysis.sh (PROMPTS x 512 tokens; 2048 = the 1 M-token trace)
#      from SQLite and from PostgreSQL (the same trace, copied there with
#      `moescope merge`).
# A throwaway server is started on loopback (tests/lib-pg.sh).
#   bench/bench-pg.sh BUILD_DIR [TOKENS] [PROMPTS]   (defaults 102400, 2048)
set -eu
B=${1:?usage: bench-pg.sh BUILD_DIR [TOKENS] [PROMPTS]}
TOK=${2:-102400}
P=${3:-2048}
M=$B/app/moescope
S=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/msbpg.XXXXXX")
. "$S/tests/lib-pg.sh"
[ -z "$pg_skip_reason" ] || { echo "bench-pg: $pg_skip_reason" >&2; exit 1; }
trap 'pg_stop; rm -rf "$T"' EXIT
pg_start || { echo "bench-pg: cannot start PostgreSQL" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=1
echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') with fsync=off"
pg_psql postgres -c "CREATE DATABASE i1" -c "CREATE DATABASE i3" -c "CREATE DATABASE an"
"$B/bench/bench-pg" "$T/i.db" "$TOK" 1
"$B/bench/bench-pg" "$PGURI/i1" "$TOK" 1
"$B/bench/bench-pg" "$PGURI/i3" "$TOK" 3

"$B/bench/bench-analysis-gen" "$P" 512 16 64 8 20240601 weights >"$T/trace.ids"
awk -v n="$P" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"prompt\":%d,\"labels\":{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}}\n",
        i, i % 2 ? "de" : "en", int(i / 2), i % 2 ? "b" : "a" }' >"$T/labels.jsonl"
"$M" import --db "$T/an.db" --format ids "$T/trace.ids" --labels "$T/labels.jsonl" >/dev/null
rm -f "$T/trace.ids"
t0=$(date +%s.%N)
"$M" merge "$T/an.db" --db "$PGURI/an" >/dev/null 2>&1
t1=$(date +%s.%N)
printf '# %d prompts x 512 tokens copied into PostgreSQL by merge in %.1f s\n' "$P" "$(echo "$t1 - $t0" | bc)"
for db in "$T/an.db" "$PGURI/an"; do
    "$M" analyze all --db "$db" --segments 16 --cache 16 --sparse-weights \
        --label set --set1 a --set2 b --activate 5 --deactivate 5 --by pos --format csv >"$T/times.csv"
    awk -F, -v d="$(case $db in postgres*) echo PostgreSQL;; *) echo SQLite;; esac)" \
        '$1 == "decode" { dec = $2 } $1 == "total" { printf "analyze all from %-10s: wall %.2f s (decode %.2f s), cpu %.2f s\n", d, $2, dec, $3 }' \
        "$T/times.csv"
done
