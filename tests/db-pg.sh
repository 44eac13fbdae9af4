#!/bin/bash
# db-pg.sh — PostgreSQL trace databases through the real programs (TAP): a
# server started on loopback in a temporary directory; the same prompts
# traced into SQLite by one process and into PostgreSQL by three workers
# with --shard I/3 at once (one killed with SIGKILL mid-way and restarted);
# three SQLite shards merged into SQLite and into PostgreSQL; every core table and view read back with
# `moescope sql` equal to SQLite's (ids included), every analysis (`analyze all` and its
# result tables) equal to 1e-9; bad URIs, an unreachable server, a wrong
# role, a missing database, a foreign or newer database: one-line errors,
# non-zero exit, nothing written.
# Skips (with the reason) when the PostgreSQL binaries are missing or this
# moescope was built without libpq.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/lib-pg.sh"
[ -n "$pg_skip_reason" ] && skip_all "$pg_skip_reason"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbpg.XXXXXX") || exit 99
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; pg_stop; rm -rf "$T"' EXIT
if "$M" sql --db "postgresql://nobody@127.0.0.1:1/x" "SELECT 1" 2>&1 | grep -q "built without PostgreSQL"; then
    skip_all "moescope built without libpq"
fi
RANDOM=20261204
pg_start
check "PostgreSQL server started on 127.0.0.1:$PGPORT_MS" test -n "${PGURI:-}"
[ -n "${PGURI:-}" ] || { echo "1..$n"; exit 1; }

"$M" synth --arch qwen2moe --layers 3 --embd 32 --heads 2 --experts 8 --used 2 --ff 16 --vocab 300 \
    --type F32 --seed 11 "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
# labels for riskdiff (set) and crosslingual (language, pair_id); quotes,
# tabs and non-ASCII text travel as they are
for i in $(seq 0 59); do
    lang=en; [ $((i % 2)) = 1 ] && lang=fr
    set=a; [ $((i % 3)) = 0 ] && set=b
    printf '{"text": "prompt %d: caf\\u00e9 \\"q\\" tab\\there, the router %s %s", "labels": {"language": "%s", "pair_id": %d, "set": "%s"}}\n' \
        "$i" "$(printf 'x%.0s' $(seq 0 $((i % 7))))" "$(printf 'sends tokens to experts %.0s' $(seq 0 $((i % 5))))" \
        "$lang" $((i / 2)) "$set"
done > "$T/p.jsonl"
TRACE=("$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --gen 2 --probs --stats -t 1)

"${TRACE[@]}" --db "$T/ref.db" 2>"$T/err"
check "SQLite reference trace (exit 0)" test $? -eq 0

# --------------------------------------------- three shard workers, one killed and resumed
pg_psql postgres -c "CREATE DATABASE tr" -c "CREATE DATABASE foreign_db" -c "CREATE DATABASE empty_db" \
    -c "CREATE DATABASE mg"
U="$PGURI/tr"
committed() { local c; c=$(pg_psql tr -c "SELECT count(*) FROM prompt WHERE worker LIKE '%shard $1/3'" 2>/dev/null) || c=0; echo "${c:-0}"; }
"${TRACE[@]}" --db "$U" --shard 1/3 2>"$T/err.1" &
P1=$!
"${TRACE[@]}" --db "$U" --shard 2/3 2>"$T/err.2" &
PID=$!
"${TRACE[@]}" --db "$U" --shard 3/3 2>"$T/err.3" &
P3=$!
# stop worker 2 once it has committed a few prompts (wherever it is: often
# inside a prompt's transaction), then kill it.  It runs in 20 ms slices and
# is stopped while the count is read, so a fast machine cannot let it finish
# all its prompts between two looks.
for w in $(seq 1 3000); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.02
    kill -STOP "$PID" 2>/dev/null
    [ "$(committed 2)" -ge 3 ] && break
    kill -CONT "$PID" 2>/dev/null
done
kill -STOP "$PID" 2>/dev/null
kill -9 "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
PID=
wait "$P1"
r1=$?
wait "$P3"
check "shard workers 1 and 3 finished (exit $r1 and $?): $(tail -c 150 "$T/err.1" "$T/err.3" | tr '\n' ' ')" \
    test "$r1" -eq 0 -a $? -eq 0
np=$(committed 2)
check "killed worker 2: $np of its 20 prompts committed" test "$np" -ge 3 -a "$np" -lt 20
a=$(pg_psql tr -c "SELECT status || '|' || n_prompts || '|' || n_committed FROM run_progress")
check "run_progress while shard 2 is missing: $a" test "$a" = "incomplete|60|$((40 + np))"
# every committed prompt is whole: its tokens, routing rows, probs and hidden stats
bad=$(pg_psql tr -c "SELECT count(*) FROM prompt p WHERE
    (SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id) <> p.n_tokens OR
    (SELECT count(*) FROM routing_packed r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 3 OR
    (SELECT count(*) FROM router_probs r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 3 OR
    (SELECT count(*) FROM hidden_stats h WHERE h.prompt_id = p.prompt_id) <> p.n_tokens * 3")
check "after the kill no committed prompt is partial ($bad)" test "$bad" = 0
orphans=$(pg_psql tr -c "SELECT (SELECT count(*) FROM token WHERE prompt_id NOT IN (SELECT prompt_id FROM prompt))
    + (SELECT count(*) FROM routing_packed WHERE prompt_id NOT IN (SELECT prompt_id FROM prompt))")
check "no rows of the prompt in flight ($orphans)" test "$orphans" = 0
"${TRACE[@]}" --db "$U" --shard 2/3 2>"$T/err.r"
check "shard 2 restarted, to the end (exit 0): $(tail -c 200 "$T/err.r" | tr '\n' ' ')" test $? -eq 0
check "it skipped its committed prompts" grep -q "already present" "$T/err.r"
a=$(pg_psql tr -c "SELECT count(*) || '|' || count(DISTINCT idx) || '|' || min(idx) || '|' || max(idx) || '|' || count(DISTINCT run_id) FROM prompt")
check "60 prompts, no duplicates, one run: $a" test "$a" = "60|60|0|59|1"
a=$(pg_psql tr -c "SELECT status || '|' || n_prompts || '|' || n_committed || '|' || n_workers FROM run_progress")
check "run_progress: complete, 60 of 60, 4 worker processes: $a" test "$a" = "complete|60|60|4"
"$M" sql --db "$U" "SELECT n_committed FROM run_progress" >"$T/out" 2>&1
check "progress visible through moescope sql" grep -q "^ *60 *$" "$T/out"

# --------------------------------------------- shards traced apart, merged
for s in 1 2 3; do "${TRACE[@]}" --db "$T/s$s.db" --shard $s/3 2>"$T/err.s$s" & done
wait
check "three SQLite shard traces: $(cat "$T"/err.s? | head -c 200)" test -s "$T/s3.db" -a -z "$(grep -v "^moescope trace: run [0-9]*: [0-9]* prompts written, [0-9]* already present$" "$T/err.s1")"
"$M" merge "$T/s1.db" "$T/s2.db" "$T/s3.db" --db "$T/merged.db" >"$T/out" 2>"$T/err"
check "merge into SQLite (exit $?): $(cat "$T/out" "$T/err" | tr '\n' ' ')" grep -q "^run 1$" "$T/out"
"$M" merge "$T/s1.db" "$T/s2.db" "$T/s3.db" --db "$PGURI/mg" >"$T/out" 2>"$T/err"
check "merge into PostgreSQL (exit $?): $(cat "$T/out" "$T/err" | tr '\n' ' ')" grep -q "^run 1$" "$T/out"
"$M" merge "$T/s1.db" "$T/s2.db" "$T/s3.db" --db "$PGURI/mg" >"$T/out" 2>"$T/err"
check "merging again adds nothing: $(cat "$T/err")" grep -q "0 prompts written, 60 already present" "$T/err"
"$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --gen 1 --probs --stats -t 1 --db "$T/other.db" --shard 1/3 2>/dev/null
one_line_fail_pre() {
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    check "merge of a shard with other settings refused: exit $rc: $(head -c 200 "$T/err")" \
        test "$rc" -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a -n "$(grep "differs.*settings" "$T/err")"
}
one_line_fail_pre "$M" merge "$T/s1.db" "$T/other.db" --db "$T/bad.db"
check "the refused merge leaves no database behind" test ! -e "$T/bad.db"

# --------------------------------------------- the same rows as SQLite
"$M" analyze all --db "$T/ref.db" --label set --set1 a --set2 b --format json >"$T/a-ref.json" 2>"$T/err"
check "analyze all on SQLite (exit 0)" test $? -eq 0
"$M" analyze all --db "$U" --label set --set1 a --set2 b --format json >"$T/a-pg.json" 2>"$T/err"
check "analyze all on PostgreSQL (exit 0): $(head -c 200 "$T/err")" test $? -eq 0
for mod in "npmi --by token --min-support 1" "riskdiff --label set --set1 a --set2 b" "crosslingual"; do
    name=${mod%% *}
    "$M" analyze $mod --db "$T/ref.db" --format json >"$T/m-ref-$name.json" 2>"$T/err"
    r1=$?
    "$M" analyze $mod --db "$U" --format json >"$T/m-pg-$name.json" 2>"$T/err"
    check "analyze $name on both (exit $r1 and $?): $(head -c 150 "$T/err")" test "$r1" -eq 0 -a $? -eq 0
done

# query both with `moescope sql --csv`; Q holds NAME<TAB>SQL lines
# sql_both NAME SQL [DB]: the query on the SQLite reference and on DB (the
# sharded PostgreSQL run by default)
sql_both() {
    local name=$1 q=$2 db=${3:-$U}
    "$M" sql --db "$T/ref.db" --csv "$q" >"$T/s-ref-$name.csv" 2>"$T/e1"
    "$M" sql --db "$db" --csv "$q" >"$T/s-pg-$name.csv" 2>"$T/e2"
    [ -s "$T/e1" ] && diag "sqlite $name: $(head -1 "$T/e1")"
    [ -s "$T/e2" ] && diag "other $name: $(head -1 "$T/e2")"
    echo "$name" >>"$T/compared"
}
: >"$T/compared"
sql_both model "SELECT * FROM model ORDER BY model_id"
sql_both run "SELECT run_id, model_id, kind, settings, interventions, set_id, program_version, parent_run_id, has_probs, has_stats, status, prompts_sha256 FROM run ORDER BY run_id"
PCOLS="prompt_id, run_id, idx, text, text_bytes, labels, n_tokens"
sql_both prompt "SELECT $PCOLS FROM prompt ORDER BY idx"
# ids: the PostgreSQL run was resumed, but ids stay in index order
sql_both token "SELECT p.idx, t.* FROM token t JOIN prompt p USING(prompt_id) ORDER BY p.idx, t.pos"
sql_both routing_packed "SELECT p.idx, r.* FROM routing_packed r JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer"
sql_both router_probs "SELECT p.idx, r.* FROM router_probs r JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer"
sql_both hidden_stats "SELECT p.idx, h.* FROM hidden_stats h JOIN prompt p USING(prompt_id) ORDER BY p.idx, h.pos, h.layer"
sql_both routing "SELECT * FROM routing ORDER BY prompt_id, pos, layer, rank"
sql_both expert_stats "SELECT * FROM expert_stats ORDER BY prompt_id, pos, layer, rank"
sql_both router_prob "SELECT * FROM router_prob ORDER BY prompt_id, pos, layer, expert"
sql_both expert_load "SELECT * FROM expert_load ORDER BY run_id, layer, expert"
sql_both load_entropy "SELECT * FROM load_entropy ORDER BY run_id, layer"
sql_both routing_entropy "SELECT * FROM routing_entropy ORDER BY run_id, layer"
sql_both prompt_label "SELECT run_id, prompt_id, idx, key, value FROM prompt_label ORDER BY prompt_id, key"
sql_both analysis "SELECT run_id, name, table_name, params, program_version FROM analysis ORDER BY table_name"
for t in $("$M" sql --db "$T/ref.db" --csv "SELECT table_name FROM analysis ORDER BY table_name" | tail -n +2); do
    sql_both "$t" "SELECT * FROM \"$t\""
done
# the merged databases hold the same rows
for db in merged.db mg; do
    d=$T/$db
    [ "$db" = mg ] && d=$PGURI/mg
    sql_both "$db-prompt" "SELECT $PCOLS FROM prompt ORDER BY idx" "$d"
    sql_both "$db-token" "SELECT * FROM token ORDER BY prompt_id, pos" "$d"
    sql_both "$db-routing_packed" "SELECT * FROM routing_packed ORDER BY prompt_id, pos, layer" "$d"
    sql_both "$db-router_probs" "SELECT * FROM router_probs ORDER BY prompt_id, pos, layer" "$d"
    sql_both "$db-hidden_stats" "SELECT * FROM hidden_stats ORDER BY prompt_id, pos, layer" "$d"
    sql_both "$db-run" "SELECT run_id, model_id, kind, settings, interventions, has_probs, has_stats, status, prompts_sha256 FROM run" "$d"
done

pycheck "$T" <<'PY'
import csv, json, math, sys
T = sys.argv[1]
def close(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))
def rows(p):
    with open(p, newline="") as f:
        return list(csv.reader(f))
for name in open(T + "/compared").read().split():
    a, b = rows(f"{T}/s-ref-{name}.csv"), rows(f"{T}/s-pg-{name}.csv")
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if len(x) != len(y) or not all(close(u, v) for u, v in zip(x, y))]
    same = len(a) == len(b) and not bad and len(a) > 1
    print(("ok" if same else "not ok") + f" - {name}: {len(a) - 1} rows from SQLite, {len(b) - 1} from PostgreSQL"
          + (f", first difference at row {bad[0]}: {a[bad[0]][:8]} vs {b[bad[0]][:8]}" if bad else ""))
def walk(x, y, path, out):
    if isinstance(x, dict) and isinstance(y, dict):
        if set(x) != set(y):
            out.append(f"{path}: keys {sorted(set(x) ^ set(y))}")
        for k in x:
            if k != "timing" and k in y:
                walk(x[k], y[k], f"{path}.{k}", out)
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            out.append(f"{path}: {len(x)} vs {len(y)} items")
        for i, (u, v) in enumerate(zip(x, y)):
            walk(u, v, f"{path}[{i}]", out)
    elif isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        if not (x == y or abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))):
            out.append(f"{path}: {x} vs {y}")
    elif x != y:
        out.append(f"{path}: {x!r} vs {y!r}")
for ref, pg in [("a-ref.json", "a-pg.json"), ("m-ref-npmi.json", "m-pg-npmi.json"),
                ("m-ref-riskdiff.json", "m-pg-riskdiff.json"), ("m-ref-crosslingual.json", "m-pg-crosslingual.json")]:
    try:
        x, y = json.load(open(f"{T}/{ref}")), json.load(open(f"{T}/{pg}"))
    except Exception as e:
        print(f"not ok - {pg}: {e}")
        continue
    out = []
    walk(x, y, "", out)
    mods = sorted(x.get("modules", {}).keys()) if isinstance(x, dict) else []
    print(("ok" if not out else "not ok") + f" - {pg} equals {ref} to 1e-9 {mods if mods else ''}"
          + (f": {len(out)} differences, first {out[:2]}" if out else ""))
PY

# --------------------------------------------- errors: one line, non-zero, nothing written
one_line_fail() {   # DESC PATTERN CMD...
    local d=$1 pat=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    check "$d: exit $rc, one line: $(head -c 160 "$T/err")" \
        test "$rc" -ne 0 -a "$(wc -l <"$T/err")" -le 1 -a -n "$(grep -E "$pat" "$T/err")"
}
one_line_fail "unreachable server" "cannot connect" "$M" sql --db "postgresql://ms@127.0.0.1:1/tr" "SELECT 1"
one_line_fail "unknown role" "nosuchrole" "$M" analyze load --db "postgresql://nosuchrole@127.0.0.1:$PGPORT_MS/tr"
one_line_fail "missing database" "nosuchdb" "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$PGURI/nosuchdb"
one_line_fail "malformed URI" "cannot connect" "$M" sql --db "postgresql://[::1" "SELECT 1"
one_line_fail "password not echoed" "cannot connect" "$M" sql --db "postgresql://ms:s3cret@127.0.0.1:1/tr" "SELECT 1"
check "the password is not in the message" test -z "$(grep s3cret "$T/err")"
pg_psql foreign_db -c "CREATE TABLE mine(a int)"
one_line_fail "a database with foreign tables" "not a moescope trace database" \
    "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$PGURI/foreign_db"
check "nothing written into the foreign database" test "$(pg_psql foreign_db -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 1
one_line_fail "reading a database without a schema" "no schema" "$M" analyze load --db "$PGURI/empty_db"
check "nothing written into the empty database" test "$(pg_psql empty_db -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0
# (export, import, experiment, sweep and migrations: db-pg2.sh)
one_line_fail "writes through sql are refused" "not read-only" "$M" sql --db "$U" "CREATE TABLE x(a int)"
one_line_fail "two statements through sql are refused" "one statement" "$M" sql --db "$U" "SELECT 1; SELECT 2"
pg_psql tr -c "UPDATE ms_meta SET value = '999' WHERE key = 'schema_version'"
one_line_fail "a newer schema version" "schema version 999 is newer" "$M" analyze load --db "$U"
one_line_fail "a newer schema version (trace)" "schema version 999 is newer" "${TRACE[@]}" --db "$U" --resume
check "nothing traced into it" test "$(pg_psql tr -c "SELECT count(*) FROM prompt")" = 60

echo "1..$n"
[ "$failed" -eq 0 ]
