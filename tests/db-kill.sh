#!/bin/bash
# db-kill.sh — crash safety of `moescope trace` (TAP output): a real trace
# process is killed with SIGKILL at seeded random moments several times and
# resumed with --resume.  After every kill PRAGMA integrity_check is ok and
# every committed prompt is complete (tokens x MoE layers x k routing rows);
# a second process reads the database while a trace runs; the finished
# resumed run equals an uninterrupted one (no duplicates, same routing).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbk.XXXXXX") || exit 99
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"' EXIT
RANDOM=20261122   # seeded: the same kill moments every run

"$M" synth --arch olmoe --layers 4 --embd 64 --heads 4 --experts 16 --used 4 --ff 64 --vocab 400 --type Q8_0 \
    "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
for i in $(seq 1 400); do
    echo "prompt $i: the router sends token number $((i * 7 % 31)) to a few experts, again and again"
done > "$T/p.txt"
TRACE=("$M" trace "$T/m.gguf" --prompts "$T/p.txt" --gen 3 --stats -t 1)

# committed prompts that are incomplete (0 = all complete)
incomplete() {
    sqlite3 "$1" "SELECT count(*) FROM prompt p WHERE
        (SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id) <> p.n_tokens OR
        (SELECT count(*) FROM routing_packed r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 4 OR
        (SELECT count(*) FROM routing r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * 4 * 4 OR
        (SELECT count(*) FROM hidden_stats h WHERE h.prompt_id = p.prompt_id) <> p.n_tokens * 4" 2>&1
}

# committed prompts, 0 before the schema exists
committed() {
    local c
    c=$(sqlite3 "$1" "SELECT count(*) FROM prompt" 2>/dev/null) || c=0
    echo "${c:-0}"
}

prev=0
reader_ok=0
for k in 1 2 3 4 5 6; do
    "${TRACE[@]}" --db "$T/k.db" --resume 2>"$T/err.$k" &
    PID=$!
    # wait until this process has committed a prompt (start-up is slow under
    # sanitizers), then kill it 0.00 .. 0.49 s later, mid-write
    for w in $(seq 1 600); do
        [ "$(committed "$T/k.db")" -gt "$prev" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$(printf '0.%02d' $((RANDOM % 50)))"
    if [ "$k" = 3 ]; then
        # a second process reads while the trace writes
        out=$("$M" sql --db "$T/k.db" "SELECT count(*) AS n FROM routing WHERE layer = 3" 2>&1) && reader_ok=1
        [ "$reader_ok" = 1 ] || echo "# reader: $out"
    fi
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
    ic=$(sqlite3 "$T/k.db" "PRAGMA integrity_check" 2>&1)
    check "kill $k: integrity_check = $ic" test "$ic" = ok
    bad=$(incomplete "$T/k.db")
    np=$(committed "$T/k.db")
    check "kill $k: $np prompts committed, $bad incomplete" test "$bad" = 0
    check "kill $k: progress kept (was $prev)" test "$np" -ge "$prev"
    prev=$np
done
check "a second process read the database during a trace" test "$reader_ok" = 1
"${TRACE[@]}" --db "$T/k.db" --resume 2>"$T/err.final"
check "resume to the end (exit 0)" test $? -eq 0
check "resume reports skipped prompts" grep -q "already present" "$T/err.final"
a=$(sqlite3 "$T/k.db" "SELECT count(*), count(DISTINCT idx), min(idx), max(idx), count(DISTINCT run_id) FROM prompt")
check "400 prompts, no duplicates, one run: $a" test "$a" = "400|400|0|399|1"
check "all complete after resume" test "$(incomplete "$T/k.db")" = 0
"${TRACE[@]}" --db "$T/ref.db" 2>"$T/err.ref"
check "uninterrupted reference trace" test $? -eq 0
q="SELECT hex(sha3_query('SELECT p.idx, r.pos, r.layer, r.experts, r.weights, r.out_maxabs, r.out_l2 FROM routing_packed r JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer'))"
check "resumed routing equals the uninterrupted run" test "$(sqlite3 "$T/k.db" "$q")" = "$(sqlite3 "$T/ref.db" "$q")"
q="SELECT hex(sha3_query('SELECT p.idx, t.pos, t.token_id, t.piece_bytes, t.is_generated, t.logprob, t.entropy FROM token t JOIN prompt p USING(prompt_id) ORDER BY p.idx, t.pos'))"
check "resumed tokens equal the uninterrupted run" test "$(sqlite3 "$T/k.db" "$q")" = "$(sqlite3 "$T/ref.db" "$q")"
# a different setting is a different run, not a resume
"$M" trace "$T/m.gguf" --prompts "$T/p.txt" --gen 1 -t 1 --db "$T/k.db" --resume 2>/dev/null
check "changed settings start a new run" test "$(sqlite3 "$T/k.db" 'SELECT count(*) FROM run')" = 2

echo "1..$n"
[ "$failed" -eq 0 ]
