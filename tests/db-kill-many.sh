#!/bin/bash
# db-kill-many.sh — SIGKILL at random points of every kind of database write
# (TAP output): `trace`, `experiment`, `import` and `analyze all`, 26 kills in
# all, at seeded random moments spread over each command's own measured run
# time (so the schedule scales with the machine and the sanitizers).  After
# every kill: PRAGMA integrity_check ok and no partial prompt (tokens and
# routing rows match every committed prompt's token count), an import is
# there whole or not at all, each analysis result table is whole (equal to
# an unkilled run's).  Then the resume (trace/experiment --resume, the import
# or the analysis run again) completes to the content of an unkilled run.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbkm.XXXXXX") || exit 99
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"' EXIT
RANDOM=20261204   # seeded: the same kill schedule every run

"$M" synth --arch olmoe --layers 4 --embd 64 --heads 4 --experts 16 --used 4 --ff 64 --vocab 400 --type Q8_0 \
    "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
for i in $(seq 1 120); do
    echo "prompt $i: the router sends token number $((i * 7 % 31)) to a few experts, again and again"
done > "$T/p.txt"
# an import of 300 prompts x 24 positions, 4 layers of k = 4 out of 16
# (distinct experts by construction: e, e+4, e+8, e+12)
awk 'BEGIN { for (p = 0; p < 300; p++) for (t = 0; t < 24; t++) {
        printf "{\"prompt\":%d,\"position\":%d,\"token_id\":%d,\"piece\":\"w%d\",\"experts\":[", p, t, (p * 7 + t) % 50, t
        for (l = 0; l < 4; l++) { e = (p + t * 3 + l) % 4; printf "%s[%d,%d,%d,%d]", l ? "," : "", e, e + 4, e + 8, e + 12 }
        printf "]}\n" } }' >"$T/imp.jsonl"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed CMD...: runs it, sets D (its wall time in ms) and rc
timed() { local t0; t0=$(now_ms); "$@" >"$T/out" 2>"$T/err"; rc=$?; D=$(( $(now_ms) - t0 )); }
# a random moment within the first D ms (at least 20 ms in)
pause() { local ms=$(( 20 + RANDOM * ($1 > 21 ? $1 - 20 : 1) / 32768 )); sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"; }
# killrun MS CMD...: start CMD, kill -9 it at a random moment within MS ms
# (unless it ended first: killed=0)
killrun() {
    local ms=$1; shift
    "$@" >"$T/kout" 2>"$T/kerr" &
    PID=$!
    pause "$ms"
    killed=0
    kill -0 "$PID" 2>/dev/null && kill -9 "$PID" 2>/dev/null && killed=1
    wait "$PID" 2>/dev/null
    PID=
}
# committed prompts whose token or routing rows do not match their n_tokens
incomplete() {
    sqlite3 "$1" "SELECT count(*) FROM prompt p WHERE
        (SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id) <> p.n_tokens OR
        (SELECT count(*) FROM routing_packed r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 4" 2>&1
}
integrity() { sqlite3 "$1" "PRAGMA integrity_check" 2>&1; }
# md5 of a query's rows
rows_md5() { sqlite3 "$1" "$2" | md5sum | cut -c1-32; }
ROUTING="SELECT r.kind, p.idx, x.pos, x.layer, hex(x.experts), hex(x.weights), hex(x.out_maxabs) FROM routing_packed x
    JOIN prompt p USING(prompt_id) JOIN run r USING(run_id) ORDER BY r.kind, p.idx, x.pos, x.layer"
TOKENS="SELECT r.kind, p.idx, t.pos, t.token_id, hex(t.piece_bytes), t.logprob FROM token t JOIN prompt p USING(prompt_id)
    JOIN run r USING(run_id) ORDER BY r.kind, p.idx, t.pos"
total_kills=0

# kill_series NAME DB N MS CMD...: N kills of CMD (a resumable command) and
# the checks after each.  Each kill comes within 3 MS / N of the start, so
# the kills spread over a whole run; a run that ends before its kill leaves
# the next one nothing to do, so then the database starts afresh.
kill_series() {
    local name=$1 db=$2 k=$3 ms=$4; shift 4
    local i bad_ic=0 bad_part=0 hit=0 prev=0 np
    for i in $(seq 1 "$k"); do
        killrun $((3 * ms / k)) "$@"
        hit=$((hit + killed))
        if [ "$killed" = 0 ]; then
            rm -f "$db" "$db-wal" "$db-shm"
            prev=0
            continue
        fi
        [ -f "$db" ] || continue
        # killed before the schema was made: an empty database, nothing to check
        [ "$(sqlite3 "$db" "SELECT count(*) FROM sqlite_schema WHERE name = 'prompt'")" = 1 ] || continue
        [ "$(integrity "$db")" = ok ] || { bad_ic=$((bad_ic + 1)); diag "$name kill $i: $(integrity "$db")"; }
        [ "$(incomplete "$db")" = 0 ] || { bad_part=$((bad_part + 1)); diag "$name kill $i: $(incomplete "$db") partial"; }
        np=$(sqlite3 "$db" "SELECT count(*) FROM prompt" 2>/dev/null || echo 0)
        [ "${np:-0}" -ge "$prev" ] || { bad_part=$((bad_part + 1)); diag "$name kill $i: prompts went from $prev to $np"; }
        prev=${np:-0}
    done
    total_kills=$((total_kills + hit))
    diag "$name: $hit of $k processes killed mid-run (the rest had ended), $prev prompts committed by then"
    check "$name: $hit kills hit a running process" test "$hit" -ge $((k / 2))
    check "$name: integrity_check ok after every kill ($bad_ic not)" test "$bad_ic" -eq 0
    check "$name: no partial prompt, nothing committed lost after any kill ($bad_part not)" test "$bad_part" -eq 0
}

# ------------------------------------------------------------------ trace
TRACE=("$M" trace "$T/m.gguf" --prompts "$T/p.txt" --gen 2 --stats -t 1)
timed "${TRACE[@]}" --db "$T/tref.db"
check "unkilled trace" test "$rc" -eq 0
kill_series trace "$T/t.db" 8 "$D" "${TRACE[@]}" --db "$T/t.db" --resume
run "${TRACE[@]}" --db "$T/t.db" --resume
check "trace --resume completes after the kills ($(tail -n 1 "$T/err"))" test "$rc" -eq 0
a=$(sqlite3 "$T/t.db" "SELECT count(*), count(DISTINCT idx), count(DISTINCT run_id), (SELECT group_concat(status) FROM run) FROM prompt")
check "trace: 120 prompts, none twice, one complete run: $a" test "$a" = "120|120|1|complete"
check "trace: routing equals the unkilled run" test "$(rows_md5 "$T/t.db" "$ROUTING")" = "$(rows_md5 "$T/tref.db" "$ROUTING")"
check "trace: tokens equal the unkilled run" test "$(rows_md5 "$T/t.db" "$TOKENS")" = "$(rows_md5 "$T/tref.db" "$TOKENS")"

# ------------------------------------------------------------- experiment
head -n 40 "$T/p.txt" >"$T/pe.txt"
EXP=("$M" experiment "$T/m.gguf" --prompts "$T/pe.txt" --silence 1:3 --gen 2 -t 1)
COMPARE="SELECT idx, n_tokens, kl_mean, kl_max, top1_agree, nll_baseline, nll_run FROM an_compare_prompt ORDER BY idx"
timed "${EXP[@]}" --db "$T/eref.db"
check "unkilled experiment" test "$rc" -eq 0
kill_series experiment "$T/e.db" 6 "$D" "${EXP[@]}" --db "$T/e.db" --resume
run "${EXP[@]}" --db "$T/e.db" --resume
check "experiment --resume completes after the kills ($(tail -n 1 "$T/err"))" test "$rc" -eq 0
a=$(sqlite3 "$T/e.db" "SELECT group_concat(kind || ':' || status || ':' || (SELECT count(*) FROM prompt p WHERE p.run_id = run.run_id), ' ') FROM run")
check "experiment: one baseline and one intervened run, complete: $a" test "$a" = "baseline:complete:40 intervened:complete:40"
check "experiment: routing of both runs equals the unkilled pair" test "$(rows_md5 "$T/e.db" "$ROUTING")" = "$(rows_md5 "$T/eref.db" "$ROUTING")"
check "experiment: the comparison equals the unkilled pair's" test "$(rows_md5 "$T/e.db" "$COMPARE")" = "$(rows_md5 "$T/eref.db" "$COMPARE")"

# ----------------------------------------------------------------- import
IMP=("$M" import --format jsonl "$T/imp.jsonl")
timed "${IMP[@]}" --db "$T/iref.db"
check "unkilled import" test "$rc" -eq 0
bad_ic=0; bad_part=0; hit=0
for i in 1 2 3 4 5 6; do
    killrun "$D" "${IMP[@]}" --db "$T/i.db"
    hit=$((hit + killed))
    [ "$killed" = 1 ] || rm -f "$T/i.db" "$T/i.db-wal" "$T/i.db-shm"   # finished: start the next one afresh
    [ -f "$T/i.db" ] || continue
    [ "$(sqlite3 "$T/i.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'prompt'")" = 1 ] || continue
    [ "$(integrity "$T/i.db")" = ok ] || bad_ic=$((bad_ic + 1))
    # all or nothing: no run, or runs of 300 whole prompts
    a=$(sqlite3 "$T/i.db" "SELECT count(*) FROM run WHERE (SELECT count(*) FROM prompt p WHERE p.run_id = run.run_id) <> 300" 2>/dev/null || echo 0)
    [ "${a:-0}" = 0 ] && [ "$(incomplete "$T/i.db")" = 0 ] || { bad_part=$((bad_part + 1)); diag "import kill $i: a partial run"; }
done
total_kills=$((total_kills + hit))
diag "import: $hit of 6 processes killed mid-run"
check "import: $hit kills hit a running process" test "$hit" -ge 3
check "import: integrity_check ok after every kill ($bad_ic not)" test "$bad_ic" -eq 0
check "import: all or nothing after every kill ($bad_part not)" test "$bad_part" -eq 0
n_before=$(sqlite3 "$T/i.db" "SELECT count(*) FROM run" 2>/dev/null || echo 0)
run "${IMP[@]}" --db "$T/i.db"
check "import again after the kills completes" test "$rc" -eq 0
check "import: one run more ($n_before before)" test "$(sqlite3 "$T/i.db" "SELECT count(*) FROM run")" = $((n_before + 1))
LAST="${ROUTING/ORDER BY/WHERE r.run_id = (SELECT max(run_id) FROM run) ORDER BY}"
check "import: the imported routing equals the unkilled import" test \
    "$(rows_md5 "$T/i.db" "$LAST")" = "$(rows_md5 "$T/iref.db" "$LAST")"

# ---------------------------------------------------------- analysis writes
cp "$T/tref.db" "$T/aref.db"
AN=("$M" analyze all --format json)
timed "${AN[@]}" --db "$T/aref.db"
check "unkilled analyze all" test "$rc" -eq 0
TABLES=$(sqlite3 "$T/aref.db" "SELECT table_name FROM analysis ORDER BY table_name")
check "analyze all wrote result tables ($(echo $TABLES | wc -w))" test "$(echo $TABLES | wc -w)" -ge 5
cp "$T/tref.db" "$T/a.db"
bad_ic=0; bad_part=0; hit=0
for i in 1 2 3 4 5 6; do
    killrun $((D * 2 / 3)) "${AN[@]}" --db "$T/a.db"
    hit=$((hit + killed))
    [ "$(integrity "$T/a.db")" = ok ] || bad_ic=$((bad_ic + 1))
    # every registered table is there and whole
    for t in $(sqlite3 "$T/a.db" "SELECT table_name FROM analysis"); do
        [ "$(rows_md5 "$T/a.db" "SELECT * FROM \"$t\"")" = "$(rows_md5 "$T/aref.db" "SELECT * FROM \"$t\"")" ] ||
            { bad_part=$((bad_part + 1)); diag "analysis kill $i: table $t differs"; }
    done
done
total_kills=$((total_kills + hit))
diag "analysis: $hit of 6 processes killed mid-run"
check "analysis: $hit kills hit a running process" test "$hit" -ge 3
check "analysis: integrity_check ok after every kill ($bad_ic not)" test "$bad_ic" -eq 0
check "analysis: every registered result table whole after every kill ($bad_part not)" test "$bad_part" -eq 0
run "${AN[@]}" --db "$T/a.db"
check "analyze all again after the kills completes" test "$rc" -eq 0
same=1
for t in $TABLES; do
    [ "$(rows_md5 "$T/a.db" "SELECT * FROM \"$t\"")" = "$(rows_md5 "$T/aref.db" "SELECT * FROM \"$t\"")" ] || { same=0; diag "table $t differs"; }
done
check "analysis: the re-run's result tables equal the unkilled run's" test "$same" = 1
check "the trace under the analyses is unchanged" test "$(rows_md5 "$T/a.db" "$ROUTING")" = "$(rows_md5 "$T/tref.db" "$ROUTING")"

diag "$total_kills processes killed with SIGKILL in all"
check "at least 18 kills hit running processes ($total_kills)" test "$total_kills" -ge 18
echo "1..$n"
[ "$failed" -eq 0 ]
