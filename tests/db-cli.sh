#!/bin/bash
# db-cli.sh — the trace/export/import/sql commands as a user meets them (TAP):
# help and usage errors, malformed prompt files reported by line with nothing
# written, read-only sql, the aligned table, interventions and labels stored,
# the progress bar on a terminal only, bad databases reported in one line.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbc.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
oneline() { [ "$(wc -l < "$T/err")" -eq 1 ]; }

for c in trace export import sql; do
    run "$M" "$c" --help
    check "$c --help" test "$rc" -eq 0 -a -n "$(grep -m1 "^usage: moescope $c" "$T/out")"
    run "$M" "$c"
    check "$c without arguments: usage error (2)" test "$rc" -eq 2
done

"$M" synth --arch olmoe --layers 3 --embd 32 --heads 2 --experts 8 --used 2 --ff 16 --vocab 300 --type F32 \
    "$T/m.gguf" >/dev/null 2>&1 || { echo "Bail out! synth failed"; exit 1; }
printf '{"text": "good one", "labels": {"domain": "a"}}\n{"text": "second", "labels": {"domain": "b"}}\n{"text": broken\n' > "$T/bad.jsonl"
run "$M" trace "$T/m.gguf" --prompts "$T/bad.jsonl" --db "$T/bad.db"
check "malformed JSONL line: exit 1, one line naming FILE:3" test "$rc" -eq 1 -a -n "$(grep 'bad.jsonl:3' "$T/err")"
oneline && ok "malformed prompt file: one line on stderr" || nok "malformed prompt file: one line on stderr"
check "nothing written for a malformed prompt file" test ! -e "$T/bad.db"

printf '{"text": "hello there", "labels": {"domain": "code", "pair": 7}}\n{"text": "bonjour", "labels": {"language": "fr"}}\n' > "$T/p.jsonl"
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" --silence 1:3 --top-k 1:1 --gen 2
check "trace with interventions (exit 0; no progress bar when not a terminal, the run id and count only)" test "$rc" -eq 0 -a "$err" = "moescope trace: run 1: 2 prompts written, 0 already present"
run "$M" sql --db "$T/t.db" "SELECT spec FROM intervention_set"
check "intervention set stored: $(tail -2 "$T/out" | head -1)" grep -q "silence" "$T/out"
run "$M" sql --db "$T/t.db" "SELECT count(*) AS n FROM routing WHERE layer = 1 AND rank > 0" --csv
check "--top-k 1:1 leaves one expert at layer 1" test "$(tail -1 "$T/out")" = 0
run "$M" sql --db "$T/t.db" "SELECT count(*) FROM routing WHERE layer = 1 AND expert = 3"
check "--silence 1:3: expert 3 never selected at layer 1" grep -q "^       0$" "$T/out"
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/ser.db" --ser 1:1
check "trace --ser 1:1 (exit 0)" test "$rc" -eq 0
run "$M" sql --db "$T/ser.db" "SELECT count(*) AS n, max(rank) AS r FROM routing" --csv
check "--ser 1:1 stores one expert per token and layer: $(tail -1 "$T/out")" test "$(tail -1 "$T/out")" = "$(
    "$M" sql --db "$T/ser.db" "SELECT count(*) FROM token" --csv | tail -1 | awk '{print $1 * 3}'),0"
run "$M" sql --db "$T/ser.db" "SELECT interventions FROM run" --csv
check "the run records 'ser *:1:1'" test "$(tail -1 "$T/out")" = "ser *:1:1"
run "$M" sql --db "$T/t.db" "SELECT idx, key, value FROM prompt_label ORDER BY idx, key"
check "labels queryable (prompt_label)" test "$(grep -c 'code\|fr\|7' "$T/out")" -eq 3
run "$M" sql --db "$T/t.db" "SELECT 1 AS one, 'x' AS txt, NULL AS empty"
exp=$(printf 'one  txt  empty\n---  ---  -----\n  1  x     NULL\n(1 row)')
check "aligned table" test "$(cat "$T/out")" = "$exp"
run "$M" sql --db "$T/t.db" "SELECT * FROM run WHERE 0"
check "an empty result says (0 rows) ($out)" test "$rc" -eq 0 -a "$out" = "(0 rows)"
run "$M" sql --db "$T/t.db" "SELECT 'a,b' AS s, 2 AS n" --csv
check "--csv quoting" test "$(cat "$T/out")" = "$(printf 's,n\n"a,b",2')"
run "$M" sql --db "$T/t.db" "DELETE FROM token"
check "sql refuses writes (exit 1, one line)" test "$rc" -eq 1 -a "$(wc -l < "$T/err")" -eq 1
run "$M" sql --db "$T/t.db" "SELECT count(*) FROM token"
check "tokens still there" test "$(sed -n 3p "$T/out" | tr -d ' ')" -gt 0
run "$M" sql --db "$T/t.db" "PRAGMA query_only=0"
check "sql refuses to set a PRAGMA (exit $rc): $err" test "$rc" -eq 1 -a -n "$(grep 'cannot set a PRAGMA' "$T/err")"
run "$M" sql --db "$T/t.db" "PRAGMA user_version" --csv
check "and reads one ($(tail -1 "$T/out"))" test "$rc" -eq 0 -a "$(tail -1 "$T/out")" -gt 0
# a reader that closes last tidies up as a writer does: no -wal or -shm left
# beside the file (a read-only connection cannot checkpoint, so it left both)
check "sql leaves no -wal or -shm behind ($(cd "$T" && ls t.db* | tr '\n' ' '))" test ! -e "$T/t.db-wal" -a ! -e "$T/t.db-shm"
run "$M" compare --db "$T/t.db" --baseline 1 --run 1
check "nor does compare ($(cd "$T" && ls t.db* | tr '\n' ' '))" test ! -e "$T/t.db-wal" -a ! -e "$T/t.db-shm"
if [ "$(id -u)" -ne 0 ]; then   # root writes through file modes
    cp "$T/t.db" "$T/ro.db" && chmod 444 "$T/ro.db"
    run "$M" sql --db "$T/ro.db" "SELECT count(*) FROM run" --csv
    check "a database the user cannot write is still read (exit $rc)" test "$rc" -eq 0 -a "$(tail -1 "$T/out")" = 1
else
    skip "a read-only file: running as root, which writes through file modes"
fi
run "$M" sql --db "$T/nope.db" "SELECT 1"
check "missing database: exit 1, names the file" test "$rc" -eq 1 -a -n "$(grep 'nope.db' "$T/err")"
printf 'not a database at all, but long enough to look like a header of something.......................' > "$T/junk.db"
run "$M" sql --db "$T/junk.db" "SELECT 1"
check "junk database: exit 1, one line" test "$rc" -eq 1 -a "$(wc -l < "$T/err")" -eq 1
run "$M" export --db "$T/t.db" --format xml
check "unknown export format: usage (2)" test "$rc" -eq 2
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/junk.db"
check "trace into a non-trace file refused (1)" test "$rc" -eq 1 -a -n "$(grep 'junk.db' "$T/err")"

# import errors name FILE:LINE
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,1,oops,0.5\n' > "$T/bad.csv"
run "$M" import --db "$T/t.db" --format csv "$T/bad.csv"
check "import: malformed csv line reported (bad.csv:3)" test "$rc" -eq 1 -a -n "$(grep 'bad.csv:3' "$T/err")"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,1,6,0.5\n1,0,0,0,2,1\n' > "$T/ok.csv"
printf '{"prompt": 1, "labels": {"class": "neg"}}\n' > "$T/lab.jsonl"
run "$M" import --db "$T/t.db" --format csv "$T/ok.csv" --labels "$T/lab.jsonl" --experts 8 --top-k 2
check "import csv with labels: $(cat "$T/out")" test "$rc" -eq 0 -a "$(cat "$T/out")" = "run 2"
run "$M" sql --db "$T/t.db" "SELECT n_expert, n_expert_used FROM model JOIN run USING(model_id) WHERE run_id = 2" --csv
check "import stores --experts/--top-k" test "$(tail -1 "$T/out")" = "8,2"
run "$M" import --db "$T/t.db" --format csv "$T/ok.csv" --experts 4
check "import: expert id beyond --experts refused" test "$rc" -eq 1
# hostile import inputs: one line naming the file, exit 1, nothing stored, no new database
runs_before=$("$M" sql --db "$T/t.db" "SELECT count(*) FROM run" --csv | tail -1)
one_line() {   # DESC WANT
    if [ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qF -- "$2" "$T/err"; then ok "$1: $err"
    else nok "$1 (rc $rc): $err"; fi
}
printf '{"prompt": 1, "labels": {"a": 1}}\n{"prompt": 7, "labels": {"a": 2}}\n' > "$T/lab7.jsonl"
run "$M" import --db "$T/t.db" --format csv "$T/ok.csv" --labels "$T/lab7.jsonl"
one_line "labels naming a prompt the import lacks" "lab7.jsonl:2: labels for prompt 7"
printf '{"tokens":1,"layers":1,"top_k":1,"weights":true}\n\001\000\000\000\000\000\300\177' > "$T/nan.ids"
run "$M" import --db "$T/t.db" --format ids "$T/nan.ids"
one_line "ids weight NaN" "nan.ids: request 0: weight 0 is not a finite number"
run timeout 60 "$M" import --db "$T/t.db" --format csv /dev/zero
one_line "/dev/zero as an import file stops at once" "/dev/zero:1: NUL byte"
yes 0 2>/dev/null | tr -d '\n' | head -c 20000000 > "$T/long.csv"
run "$M" import --db "$T/t.db" --format jsonl "$T/long.csv"
one_line "a 20 MB line" "long.csv:1: line longer than 16777216 bytes"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1\0001,0.5\n' > "$T/nul.csv"
run "$M" import --db "$T/t.db" --format csv "$T/nul.csv"
one_line "a NUL byte inside a csv line" "nul.csv:2: NUL byte"
check "... none of them stored a run" test "$("$M" sql --db "$T/t.db" "SELECT count(*) FROM run" --csv | tail -1)" = "$runs_before"
run "$M" import --db "$T/new.db" --format csv "$T/missing.csv"
one_line "missing import file" "missing.csv: No such file or directory"
run "$M" import --db "$T/new.db" --format csv "$T/bad.csv"
check "... and neither it nor a failed import leaves a new database behind" test ! -e "$T/new.db" -a ! -e "$T/new.db-wal"
run "$M" import --db "$T" --format csv "$T/ok.csv"
one_line "a directory as --db" "is a directory, not a trace database"
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" --parent 99
one_line "--parent naming no run" "no run 99 (the parent run)"
"$PY" -c 'print("word " * 6000)' > "$T/long.txt"
run "$M" trace "$T/m.gguf" --prompts "$T/long.txt" --db "$T/long.db"
one_line "a prompt longer than the model's context" "long.txt:1: prompt of "
check "... is refused before anything is written (no database left)" test ! -e "$T/long.db"
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/long.db" --gen 5000
one_line "prompt + --gen past the context" "(+ 5000 generated) is longer than the model's context of 4096 tokens"
run "$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t2.db"
check "trace prints its run id when not on a terminal" grep -q '^moescope trace: run 1: 2 prompts written, 0 already present$' "$T/err"

# --resume knows the prompt set by its content: another name, spelling and format
mkdir -p "$T/sub"
printf '{"text": "hello there", "labels": {"domain": "code", "pair": 7}}\r\n\n{"text": "bonjour", "labels": {"language": "fr"}}\n' > "$T/sub/same.jsonl"
run "$M" trace "$T/m.gguf" --prompts "$T/sub/../sub/same.jsonl" --db "$T/t2.db" --resume
check "--resume with the prompt file renamed and spelled differently continues run 1 ($err)" \
    test "$rc" -eq 0 -a "$err" = "moescope trace: run 1: 0 prompts written, 2 already present"
check "... no second run, run 1 complete" test "$("$M" sql --db "$T/t2.db" "SELECT group_concat(run_id || ':' || status) FROM run" --csv | tail -1)" = "1:complete"

# progress bar only on a terminal
if command -v script >/dev/null; then
    script -qec "'$M' trace '$T/m.gguf' --prompts '$T/p.jsonl' --db '$T/tty.db'" /dev/null > "$T/tty.out" 2>&1
    check "progress bar on a terminal (prompts, tok/s, ETA)" grep -q "2/2 prompts.*tok/s.*ETA" "$T/tty.out"
else
    n=$((n + 1)); echo "ok $n # SKIP script(1) not installed"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
