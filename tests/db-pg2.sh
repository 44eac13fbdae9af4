#!/bin/bash
# db-pg2.sh — export, import, experiment, sweep and migrations on PostgreSQL
# (TAP), against a server started on loopback in a temporary directory:
# `export` of a PostgreSQL trace written by three shard workers is byte for
# byte the export of a SQLite trace of the same prompts (sql, pgsql, csv;
# the run's timestamp and the worker names aside); `import` into
# PostgreSQL exports the same as into SQLite; `experiment` with two
# --shard workers and `sweep` store the same rows as into SQLite; a
# PostgreSQL database of an older schema version is migrated on open, a
# newer one refused with one line.
# Skips (with the reason) when the PostgreSQL binaries are missing or this
# moescope was built without libpq.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/lib-pg.sh"
[ -n "$pg_skip_reason" ] && skip_all "$pg_skip_reason"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbpg2.XXXXXX") || exit 99
trap 'pg_stop; rm -rf "$T"' EXIT
if "$M" sql --db "postgresql://nobody@127.0.0.1:1/x" "SELECT 1" 2>&1 | grep -q "built without PostgreSQL"; then
    skip_all "moescope built without libpq"
fi
RANDOM=20261205
pg_start
check "PostgreSQL server started on 127.0.0.1:$PGPORT_MS" test -n "${PGURI:-}"
[ -n "${PGURI:-}" ] || { echo "1..$n"; exit 1; }
pg_psql postgres -c "CREATE DATABASE tr" -c "CREATE DATABASE im" -c "CREATE DATABASE ex" -c "CREATE DATABASE sw" \
    -c "CREATE DATABASE old"

"$M" synth --arch qwen2moe --layers 3 --embd 32 --heads 2 --experts 8 --used 2 --ff 16 --vocab 300 \
    --type F32 --seed 11 "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
for i in $(seq 0 23); do
    lang=en; [ $((i % 2)) = 1 ] && lang=fr
    printf '{"text": "prompt %d: caf\\u00e9 \\"q\\" tab\\there, line\\nbreak %s", "labels": {"language": "%s", "pair_id": %d}}\n' \
        "$i" "$(printf 'the router sends %.0s' $(seq 0 $((i % 4))))" "$lang" $((i / 2))
done > "$T/p.jsonl"
TRACE=("$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --gen 2 --probs --stats -t 1)

# the parts of an export that differ between two traces of the same prompts:
# when each run was made and which processes wrote it
mask() { sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/TIME/g; s/[A-Za-z0-9._-]+:[0-9]+( shard [0-9]+\/[0-9]+)?/WORKER/g'; }
# same_export NAME A B: A and B (files or directories) equal after mask
same_export() {
    local name=$1 a=$2 b=$3 d
    if [ -d "$a" ]; then
        d=$(for f in "$a"/*.csv; do cmp -s <(mask <"$f") <(mask <"$b/${f##*/}") || echo "${f##*/}"; done)
        check "$name: the same $(ls "$a" | wc -l) CSV files (differ: ${d:-none})" \
            test -z "$d" -a "$(ls "$a" | wc -l)" -gt 5 -a "$(ls "$a")" = "$(ls "$b")"
    else
        d=$(diff <(mask <"$a") <(mask <"$b") | head -4 | cut -c1-160 | tr '\n' ' ')
        check "$name: the same $(wc -l <"$a") lines (${d:-no difference})" test -z "$d" -a -s "$a"
    fi
}

# --------------------------------------------- export of a trace written by shards
"${TRACE[@]}" --db "$T/ref.db" 2>"$T/err"
check "SQLite reference trace (exit $?)" test $? -eq 0
U="$PGURI/tr"
for s in 1 2 3; do "${TRACE[@]}" --db "$U" --shard $s/3 2>"$T/err.$s" & done
wait
check "three shard workers into PostgreSQL: $(pg_psql tr -c "SELECT status || ' ' || n_committed FROM run_progress")" \
    test "$(pg_psql tr -c "SELECT status || ' ' || n_committed FROM run_progress")" = "complete 24"
for db in "$T/ref.db" "$U"; do
    "$M" analyze load --db "$db" --format json >/dev/null 2>"$T/err" || diag "analyze load: $(cat "$T/err")"
    "$M" analyze crosslingual --db "$db" --format json >/dev/null 2>"$T/err" || diag "crosslingual: $(cat "$T/err")"
done
for f in sql pgsql; do
    "$M" export --db "$T/ref.db" --format $f -o "$T/ref.$f" 2>"$T/err"
    r1=$?
    "$M" export --db "$U" --format $f -o "$T/pg.$f" 2>"$T/err"
    r2=$?
    check "export --format $f from SQLite and PostgreSQL (exit $r1 and $r2): $(head -c 200 "$T/err")" test $r1 -eq 0 -a $r2 -eq 0
    same_export "export --format $f" "$T/ref.$f" "$T/pg.$f"
done
"$M" export --db "$T/ref.db" --format csv -o "$T/ref-csv" 2>"$T/err"
"$M" export --db "$U" --format csv -o "$T/pg-csv" 2>"$T/err"
check "export --format csv from PostgreSQL (exit $?): $(head -c 200 "$T/err")" test -f "$T/pg-csv/routing.csv"
same_export "export --format csv" "$T/ref-csv" "$T/pg-csv"
check "result tables exported too" test -f "$T/pg-csv/an_load_experts.csv" -o -n "$(ls "$T/pg-csv" | grep '^an_load')"
"$M" export --db "$T/ref.db" --format csv --tables routing >"$T/ref-r.csv" 2>/dev/null
"$M" export --db "$U" --format csv --tables routing >"$T/pg-r.csv" 2>"$T/err"
same_export "one table to standard output" "$T/ref-r.csv" "$T/pg-r.csv"
# the sql export of PostgreSQL loads into sqlite3 as a trace that reads the same
if command -v sqlite3 >/dev/null; then
    sqlite3 "$T/back.db" <"$T/pg.sql" 2>"$T/err"
    "$M" analyze load --db "$T/back.db" --format json >"$T/l1.json" 2>"$T/err"
    "$M" analyze load --db "$T/ref.db" --format json >"$T/l2.json" 2>/dev/null
    check "the sql export of PostgreSQL loads into sqlite3 and analyses as the reference" \
        cmp -s <(grep -v '"timing"\|"seconds"' "$T/l1.json") <(grep -v '"timing"\|"seconds"' "$T/l2.json")
fi
# errors: one line, nothing left behind
"$M" export --db "$U" --format csv --tables nosuch -o "$T/bad-csv" >"$T/out" 2>"$T/err"
rc=$?
check "unknown table: exit $rc, one line: $(cat "$T/err")" test $rc -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a ! -e "$T/bad-csv/nosuch.csv"
check "no temporary copy left in TMPDIR" test -z "$(ls "${TMPDIR:-/tmp}" | grep '^moescope-export\.')"
"$M" export --db "postgresql://ms@127.0.0.1:1/tr" --format sql -o "$T/x.sql" >"$T/out" 2>"$T/err"
rc=$?
check "unreachable server: exit $rc, one line, no file: $(cat "$T/err")" \
    test $rc -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a ! -e "$T/x.sql"

# --------------------------------------------- import
{
    echo "prompt,position,layer,rank,expert,weight"
    for pr in 0 1 2; do for pos in 0 1 2 3; do for l in 0 1; do
        echo "$pr,$pos,$l,0,$(((pr + pos + l) % 8)),0.$((6 + pos % 3))5"
        echo "$pr,$pos,$l,1,$(((pr * 3 + pos + 2 * l + 1) % 8)),0.$((3 - pos % 3))5"
    done; done; done
} >"$T/imp.csv"
printf '{"prompt": 0, "labels": {"set": "a"}}\n{"prompt": 2, "labels": {"set": "b"}}\n' >"$T/labels.jsonl"
"$M" import --db "$T/imp.db" --format csv "$T/imp.csv" --labels "$T/labels.jsonl" >"$T/o1" 2>"$T/err"
r1=$?
"$M" import --db "$PGURI/im" --format csv "$T/imp.csv" --labels "$T/labels.jsonl" >"$T/o2" 2>"$T/err"
r2=$?
check "import csv into SQLite and PostgreSQL (exit $r1 and $r2): $(cat "$T/o2" "$T/err" | tr '\n' ' ')" \
    test $r1 -eq 0 -a $r2 -eq 0 -a "$(cat "$T/o1")" = "$(cat "$T/o2")"
for f in sql csv; do
    o=$T/imp-sq.$f; p=$T/imp-pg.$f
    "$M" export --db "$T/imp.db" --format $f -o "$o" 2>/dev/null
    "$M" export --db "$PGURI/im" --format $f -o "$p" 2>"$T/err"
    same_export "import, then export --format $f" "$o" "$p"
done
# a bad import writes nothing into PostgreSQL
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,1,x,0.5\n' >"$T/bad.csv"
n0=$(pg_psql im -c "SELECT count(*) FROM run")
"$M" import --db "$PGURI/im" --format csv "$T/bad.csv" >"$T/out" 2>"$T/err"
rc=$?
check "a malformed import into PostgreSQL: exit $rc, one line naming the line: $(cat "$T/err")" \
    test $rc -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a -n "$(grep 'bad.csv:3' "$T/err")"
check "nothing written by it" test "$(pg_psql im -c "SELECT count(*) FROM run") $(pg_psql im -c "SELECT count(*) FROM model")" = "$n0 $n0"

# --------------------------------------------- experiment (two shards) and sweep
EXP=("$M" experiment "$T/m.gguf" --prompts "$T/p.jsonl" --gen 3 --silence 1:2 --silence 2:5 -t 1)
"${EXP[@]}" --db "$T/ex.db" >"$T/o1" 2>"$T/err"
rc=$?
check "experiment into SQLite (exit $rc): $(head -c 150 "$T/err")" test $rc -eq 0
"${EXP[@]}" --db "$PGURI/ex" --shard 1/2 >"$T/oa" 2>"$T/err.a" &
"${EXP[@]}" --db "$PGURI/ex" --shard 2/2 >"$T/ob" 2>"$T/err.b" &
wait
check "experiment into PostgreSQL by two --shard workers: $(cat "$T/oa" "$T/ob" "$T/err.a" "$T/err.b" | tr '\n' ' ' | head -c 300)" \
    test "$(cat "$T/oa")" = "$(cat "$T/ob")" -a -n "$(cat "$T/oa")"
a=$(pg_psql ex -c "SELECT string_agg(r.kind || ':' || p.status || ':' || n_committed || ':' || n_workers, ' ' ORDER BY r.run_id) FROM run_progress p JOIN run r USING (run_id)")
check "one pair of runs, complete, 24 prompts each from 2 workers: $a" \
    test "$a" = "baseline:complete:24:2 intervened:complete:24:2"
cmp_sql() {   # NAME SQL DB_SQLITE DB_PG
    "$M" sql --db "$3" --csv "$2" >"$T/c1" 2>"$T/e1"
    "$M" sql --db "$4" --csv "$2" >"$T/c2" 2>"$T/e2"
    local d
    d=$(diff "$T/c1" "$T/c2" | head -3 | cut -c1-160 | tr '\n' ' ')
    check "$1: $(($(wc -l <"$T/c1") - 1)) rows equal (${d:-no difference})$(head -c 100 "$T/e2")" \
        test -z "$d" -a "$(wc -l <"$T/c1")" -gt 1
}
cmp_sql "an_compare_prompt" "SELECT * FROM an_compare_prompt ORDER BY run_id, idx" "$T/ex.db" "$PGURI/ex"
cmp_sql "an_compare_pos" "SELECT * FROM an_compare_pos ORDER BY run_id, idx, pos" "$T/ex.db" "$PGURI/ex"
cmp_sql "an_compare_layer" "SELECT * FROM an_compare_layer ORDER BY run_id, idx, layer" "$T/ex.db" "$PGURI/ex"
cmp_sql "an_compare view" "SELECT * FROM an_compare" "$T/ex.db" "$PGURI/ex"
cmp_sql "experiment routing" "SELECT r.kind, p.idx, x.pos, x.layer, x.experts, x.weights FROM routing_packed x JOIN prompt p USING (prompt_id) JOIN run r ON r.run_id = p.run_id ORDER BY r.kind, p.idx, x.pos, x.layer" "$T/ex.db" "$PGURI/ex"
"$M" compare --db "$T/ex.db" --baseline 1 --run 2 --format json >"$T/c-sq.json" 2>"$T/err"
"$M" compare --db "$PGURI/ex" --baseline 1 --run 2 --format json >"$T/c-pg.json" 2>"$T/err"
check "moescope compare reads the same from both: $(head -c 150 "$T/err")" cmp -s "$T/c-sq.json" "$T/c-pg.json"
"${EXP[@]}" --db "$PGURI/ex" --shard 1/2 --resume >"$T/oa" 2>"$T/err.a"
check "a shard started again (--resume) finds its prompts compared: $(head -c 150 "$T/err.a")" \
    test "$(pg_psql ex -c "SELECT count(*) FROM run")" = 2 -a "$(pg_psql ex -c "SELECT count(*) FROM an_compare_prompt")" = 24

SW=("$M" sweep "$T/m.gguf" --prompts "$T/p.jsonl" --silence-each 1 --random-controls 2 --seed 3 --format csv -t 1)
"${SW[@]}" --db "$T/sw.db" >"$T/sw1.csv" 2>"$T/err"
r1=$?
"${SW[@]}" --db "$PGURI/sw" >"$T/sw2.csv" 2>"$T/err"
r2=$?
check "sweep into SQLite and PostgreSQL (exit $r1 and $r2): $(head -c 150 "$T/err")" test $r1 -eq 0 -a $r2 -eq 0
check "the sweep prints the same table for both" cmp -s "$T/sw1.csv" "$T/sw2.csv"
cmp_sql "sweep_candidate" "SELECT * FROM sweep_candidate ORDER BY sweep_id, cand" "$T/sw.db" "$PGURI/sw"
cmp_sql "sweep" "SELECT sweep_id, baseline_run_id, model_id, settings, program_version FROM sweep" "$T/sw.db" "$PGURI/sw"
# the same sweep by three --shard workers at once (one started again afterwards)
pg_psql postgres -c "CREATE DATABASE sw3"
for s in 1 2 3; do "${SW[@]}" --db "$PGURI/sw3" --shard $s/3 >"$T/sws$s.csv" 2>"$T/err.sw$s" & done
wait
a=$(pg_psql sw3 -c "SELECT count(*) || ' ' || count(DISTINCT sweep_id) || ' ' || count(rank) FROM sweep_candidate")
check "three sweep shards fill one sweep, ranked: $a; $(cat "$T"/err.sw? | tr '\n' ' ' | head -c 300)" test "$a" = "10 1 8"
check "exactly one shard completed it and printed every set" \
    test "$(grep -l "the sweep is complete" "$T"/err.sw? | wc -l)" = 1 -a "$(cat "$T"/sws?.csv | grep -c '^[0-9]')" -ge 10
cmp_sql "sharded sweep_candidate equals one process's" "SELECT cand, kind, label, interventions, n_experts, n_positions, kl_mean, kl_max, top1_agreement, ppl_baseline, ppl_run, dppl, changed_share, jaccard_mean, z_kl, z_dppl, rank FROM sweep_candidate ORDER BY cand" "$T/sw.db" "$PGURI/sw3"
done_csv=$(grep -l "the sweep is complete" "$T"/err.sw? | sed 's/.*err\.sw//')
check "the completing shard prints what one process prints" cmp -s "$T/sw1.csv" "$T/sws$done_csv.csv"
"${SW[@]}" --db "$PGURI/sw3" --shard 2/3 >/dev/null 2>"$T/err"
check "a shard run again after completion starts a new sweep: $(head -c 200 "$T/err")" \
    test "$(pg_psql sw3 -c "SELECT count(*) FROM sweep")" = 2
rc=0; "${SW[@]}" --shard 1/2 >/dev/null 2>"$T/err" || rc=$?
check "sweep --shard without --db: usage error: $(head -c 150 "$T/err")" test $rc -eq 2 -a -n "$(grep "needs --db" "$T/err")"

# --------------------------------------------- migrations
# a database made by this program, taken back to schema version 3 as that
# version had it: the columns and tables of versions 4 to 6 dropped
"${TRACE[@]}" --db "$PGURI/old" 2>"$T/err"
pg_psql old -c "DROP VIEW run_progress, expert_stats CASCADE" \
    -c "ALTER TABLE prompt DROP COLUMN worker" -c "ALTER TABLE run DROP COLUMN status, DROP COLUMN prompts_sha256" \
    -c "DROP VIEW an_compare, an_compare_shift" \
    -c "DROP TABLE an_compare_prompt, an_compare_pos, an_compare_layer, sweep_candidate, sweep" \
    -c "UPDATE ms_meta SET value = '3' WHERE key = 'schema_version'"
"$M" sql --db "$PGURI/old" "SELECT count(*) FROM run" >"$T/out" 2>"$T/err"
rc=$?
check "reading a version 3 database (read-only): exit $rc, one line: $(cat "$T/err")" \
    test $rc -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a -n "$(grep "schema version 3 is old" "$T/err")"
"${TRACE[@]}" --db "$PGURI/old" --resume 2>"$T/err"
rc=$?
check "opened read-write (trace --resume), it is migrated: exit $rc, version $(pg_psql old -c "SELECT value FROM ms_meta WHERE key = 'schema_version'")" \
    test "$(pg_psql old -c "SELECT value FROM ms_meta WHERE key = 'schema_version'")" = 6
cols() { pg_psql "$1" -c "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ' ' ORDER BY table_name, ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND (table_name NOT LIKE 'an\\_%' OR table_name LIKE 'an\\_compare%')"; }
cols old >"$T/cols-old"; cols tr >"$T/cols-new"
check "its tables, columns and views are those of a new database: $(diff <(tr " " "\n" <"$T/cols-old") <(tr " " "\n" <"$T/cols-new") | tr "\n" " " | head -c 300)" cmp -s "$T/cols-old" "$T/cols-new"
check "the old run is marked complete and kept (1 run, 24 prompts)" \
    test "$(pg_psql old -c "SELECT status || ' ' || (SELECT count(*) FROM prompt) FROM run")" = "complete 24"
cmp_sql "migrated routing equals the reference" "SELECT p.idx, x.pos, x.layer, x.experts, x.weights FROM routing_packed x JOIN prompt p USING (prompt_id) ORDER BY p.idx, x.pos, x.layer" "$T/ref.db" "$PGURI/old"
pg_psql old -c "UPDATE ms_meta SET value = '7' WHERE key = 'schema_version'"
"${TRACE[@]}" --db "$PGURI/old" --resume >"$T/out" 2>"$T/err"
rc=$?
check "a newer version (7) is refused: exit $rc, one line: $(cat "$T/err")" \
    test $rc -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a -n "$(grep "schema version 7 is newer" "$T/err")"

echo "1..$n"
[ "$failed" -eq 0 ]
