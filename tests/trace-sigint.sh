#!/bin/bash
# trace-sigint.sh — Ctrl+C on `moescope trace` (TAP output): a real SIGINT
# while the bundled default model traces a long prompt set.  The process
# stops promptly with exit status 130, says how many prompts are committed
# and how to resume; the database is consistent and holds only whole
# prompts; running the printed resume command completes the run, and the
# result equals an uninterrupted trace.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
SRC=${MS_SOURCE_DIR:?}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/mssig.XXXXXX") || exit 99
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"' EXIT

MODEL=$SRC/data/models/default.gguf
for i in 1 2 3 4; do cat "$SRC/data/prompts/all.jsonl"; done > "$T/p.jsonl"
total=$(wc -l < "$T/p.jsonl")

committed() { sqlite3 "$1" "SELECT count(*) FROM prompt" 2>/dev/null || echo 0; }

"$M" trace "$MODEL" --prompts "$T/p.jsonl" --db "$T/t.db" --gen 2 -t 1 >"$T/out" 2>"$T/err" &
PID=$!
for _ in $(seq 1 600); do   # up to 60 s for the first commits (sanitizer builds are slow)
    [ "$(committed "$T/t.db")" -ge 3 ] 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
t0=$(date +%s.%N)
kill -INT "$PID"
wait "$PID"
rc=$?
t1=$(date +%s.%N)
PID=
err=$(cat "$T/err")
check "exit status 130 after SIGINT (got $rc)" [ "$rc" -eq 130 ]
lat=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
check "stopped ${lat} s after the signal (< 1 s)" python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 1.0 else 1)"
k=$(committed "$T/t.db")
diag "$err"
case $err in
    *"interrupted: run 1 has $k of $total prompts committed"*) ok "message says $k of $total prompts are committed" ;;
    *) nok "message names the committed prompts: $err" ;;
esac
check "some but not all prompts committed ($k of $total)" [ "$k" -gt 0 ] && [ "$k" -lt "$total" ]
check "integrity_check ok" [ "$(sqlite3 "$T/t.db" 'PRAGMA integrity_check')" = ok ]
bad=$(sqlite3 "$T/t.db" "SELECT count(*) FROM prompt p WHERE
    (SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id) <> p.n_tokens OR
    (SELECT count(*) FROM routing_packed r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 4")
check "every committed prompt is whole (incomplete: $bad)" [ "$bad" = 0 ]
check "no routing rows of the dropped prompt" \
    [ "$(sqlite3 "$T/t.db" 'SELECT count(*) FROM routing_packed WHERE prompt_id NOT IN (SELECT prompt_id FROM prompt)')" = 0 ]

# the printed command completes the run
resume=${err##*To complete the run: moescope }
check "the message ends with a command that has --resume" [ "${resume% --resume}" != "$resume" ]
eval "set -- $resume"
run "$M" "$@"
check "the resume command succeeds (rc $rc: $(head -c 300 "$T/err"))" [ "$rc" -eq 0 ]
check "all $total prompts committed after resume ($(committed "$T/t.db"))" [ "$(committed "$T/t.db")" -eq "$total" ]
check "still one run" [ "$(sqlite3 "$T/t.db" 'SELECT count(*) FROM run')" = 1 ]
case $err in
    *"$k already present"*) ok "resume reports the $k prompts already present" ;;
    *) nok "resume summary: $err" ;;
esac

# the same as an uninterrupted trace
run "$M" trace "$MODEL" --prompts "$T/p.jsonl" --db "$T/full.db" --gen 2 -t 1
q="SELECT group_concat(x, ';') FROM (SELECT p.idx || ':' || r.pos || ':' || r.layer || ':' || hex(r.experts) || ':' ||
   hex(r.weights) AS x FROM routing_packed r JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer)"
check "interrupted + resumed routing equals an uninterrupted trace" \
    [ "$(sqlite3 "$T/t.db" "$q" | md5sum)" = "$(sqlite3 "$T/full.db" "$q" | md5sum)" ]
echo "1..$n"
[ "$failed" -eq 0 ]
