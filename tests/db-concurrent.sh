#!/bin/bash
# db-concurrent.sh — two processes on one trace database (TAP output), with
# real `moescope` processes:
#   * a second writer with other settings (a new run) while a trace runs:
#     it waits for the write lock (busy timeout) and both runs complete;
#   * a second writer resuming the same run while it is traced: the two
#     share the prompts, no prompt twice, both exit 0;
#   * a reader (`moescope sql`) polled during a trace sees only whole
#     prompts: in every snapshot the token and routing rows match the
#     committed prompts' token counts;
#   * PRAGMA integrity_check ok and the content equals a trace made alone.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbc.XXXXXX") || exit 99
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

"$M" synth --arch olmoe --layers 4 --embd 64 --heads 4 --experts 16 --used 4 --ff 64 --vocab 400 --type Q8_0 \
    "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
for i in $(seq 1 150); do
    echo "prompt $i: the router sends token number $((i * 7 % 31)) to a few experts, again and again"
done > "$T/p.txt"
TRACE=("$M" trace "$T/m.gguf" --prompts "$T/p.txt" --gen 3 --stats -t 1)
committed() {
    local c
    c=$(sqlite3 "$1" "SELECT count(*) FROM prompt" 2>/dev/null) || c=0
    echo "${c:-0}"
}
# start a trace in the background and wait until it has committed a prompt
start_trace() {
    local db=$1; shift
    "${TRACE[@]}" --db "$db" "$@" >"$T/out.a" 2>"$T/err.a" &
    A=$!
    PIDS+=("$A")
    for w in $(seq 1 600); do
        [ "$(committed "$db")" -gt 0 ] && break
        kill -0 "$A" 2>/dev/null || break
        sleep 0.05
    done
}
same_content() {   # same_content DB RUN REFDB REFRUN: the routing of two runs, row by row
    local q="SELECT p.idx, p.n_tokens, r.pos, r.layer, hex(r.experts), hex(r.weights), hex(r.out_maxabs)
        FROM routing_packed r JOIN prompt p USING(prompt_id) WHERE p.run_id = %d ORDER BY p.idx, r.pos, r.layer"
    local a b
    a=$(sqlite3 "$1" "$(printf "$q" "$2")" | md5sum)
    b=$(sqlite3 "$3" "$(printf "$q" "$4")" | md5sum)
    [ "$a" = "$b" ] && [ "$(sqlite3 "$1" "SELECT count(*) FROM prompt WHERE run_id = $2")" -gt 0 ]
}

"${TRACE[@]}" --db "$T/ref.db" 2>"$T/err.ref"
check "a trace alone (the reference)" test $? -eq 0
"${TRACE[@]}" --gen 1 --db "$T/ref1.db" 2>"$T/err.ref1"

# ------------------------------------------- a second writer, another run
start_trace "$T/a.db"
during=$(committed "$T/a.db")
"${TRACE[@]}" --gen 1 --db "$T/a.db" >"$T/out.b" 2>"$T/err.b"
rcb=$?
running=0; kill -0 "$A" 2>/dev/null && running=1
wait "$A"; rca=$?
diag "second writer started after $during prompts; first still running when it ended: $running"
check "second writer (another run) while a trace runs: exit 0 ($(head -c 200 "$T/err.b"))" test "$rcb" -eq 0
check "... and the first trace completes too ($(head -c 200 "$T/err.a"))" test "$rca" -eq 0
check "the first one was still writing when the second started" test "$during" -lt 150
ic=$(sqlite3 "$T/a.db" "PRAGMA integrity_check")
check "integrity_check after two writers: $ic" test "$ic" = ok
r=$(sqlite3 "$T/a.db" "SELECT group_concat(run_id || ':' || status || ':' || (SELECT count(*) FROM prompt p WHERE p.run_id = run.run_id), ' ') FROM run")
check "two complete runs of 150 prompts: $r" test "$r" = "1:complete:150 2:complete:150"
check "run 1 equals the trace made alone" same_content "$T/a.db" 1 "$T/ref.db" 1
check "run 2 equals its trace made alone" same_content "$T/a.db" 2 "$T/ref1.db" 1

# --------------------------------- a second writer resuming the same run
start_trace "$T/b.db"
"${TRACE[@]}" --db "$T/b.db" --resume >"$T/out.b" 2>"$T/err.b"
rcb=$?
wait "$A"; rca=$?
check "second writer resuming the running trace's run: exit 0 ($(head -c 200 "$T/err.b"))" test "$rcb" -eq 0
check "... and the first trace completes too ($(head -c 200 "$T/err.a"))" test "$rca" -eq 0
diag "first: $(tail -n 1 "$T/err.a"); second: $(tail -n 1 "$T/err.b")"
r=$(sqlite3 "$T/b.db" "SELECT count(*), count(DISTINCT idx), (SELECT count(*) FROM run), (SELECT status FROM run) FROM prompt")
check "one run, 150 prompts, none twice, complete: $r" test "$r" = "150|150|1|complete"
check "integrity_check ok" test "$(sqlite3 "$T/b.db" "PRAGMA integrity_check")" = ok
check "the shared run equals the trace made alone" same_content "$T/b.db" 1 "$T/ref.db" 1

# ------------------------------------------------------ a reader polling
"${TRACE[@]}" --db "$T/c.db" >/dev/null 2>"$T/err.c" &
A=$!
PIDS+=("$A")
polls=0; bad=0; seen=""; errs=0
while kill -0 "$A" 2>/dev/null; do
    # one statement: one snapshot of the database
    line=$("$M" sql --db "$T/c.db" --csv "SELECT count(*), coalesce(sum(n_tokens), 0),
        (SELECT count(*) FROM token), (SELECT count(*) FROM routing_packed), (SELECT count(*) FROM hidden_stats)
        FROM prompt" 2>"$T/err.r" | tail -n 1)
    if [ -z "$line" ]; then
        # before the schema exists the reader is refused with a message
        grep -q . "$T/err.r" || bad=$((bad + 1))
        errs=$((errs + 1))
        continue
    fi
    polls=$((polls + 1))
    IFS=, read -r np nt tok rp hs <<<"$line"
    if [ "$tok" != "$nt" ] || [ "$rp" != $((nt * 4)) ] || [ "$hs" != $((nt * 4)) ]; then
        bad=$((bad + 1))
        diag "partial snapshot: $line"
    fi
    case " $seen " in *" $np "*) ;; *) seen="$seen $np" ;; esac
done
wait "$A"
check "the polled trace completes" test $? -eq 0
nseen=$(wc -w <<<"$seen")
diag "reader: $polls snapshots ($errs refused before the schema), $nseen distinct prompt counts:$(echo "$seen" | tr ' ' '\n' | tail -n 5 | tr '\n' ' ')"
check "the reader saw the trace progress ($nseen distinct counts in $polls snapshots)" test "$nseen" -ge 3
check "every snapshot holds whole prompts only (tokens = sum of n_tokens, routing and hidden rows = 4 x that)" test "$bad" -eq 0
check "integrity_check ok after the polled trace" test "$(sqlite3 "$T/c.db" "PRAGMA integrity_check")" = ok

echo "1..$n"
[ "$failed" -eq 0 ]
