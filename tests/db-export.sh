#!/bin/bash
# db-export.sh — export round trips through the real programs (TAP output):
#   a trace (two runs: plain-text prompts with multi-byte characters, JSONL
#   prompts with quotes, backslashes, newlines, CR LF, a lone CR and tabs;
#   --gen, --probs, --stats) plus import runs (one with a NUL in its text) is
#   exported as
#   * sql   -> loaded by Debian's sqlite3; every table and view hashed with the
#              shell's sha3_query and compared with the source,
#   * pgsql -> loaded by psql into a PostgreSQL server this test starts on
#              loopback in a temporary directory; per logical table the row
#              count and a checksum of exact value encodings (hex of UTF-8
#              bytes, bytea, IEEE-754 bits) are compared with the source,
#   * csv   -> row counts and exact piece bytes.
# Skips (with the reason) only when sqlite3 or the PostgreSQL binaries are missing.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msdbx.XXXXXX") || exit 99
PGPID_DIR=
cleanup() {
    if [ -n "$PGPID_DIR" ] && [ -f "$PGPID_DIR/data/postmaster.pid" ]; then
        pg_as "$PGBIN/pg_ctl" -D "$PGPID_DIR/data" -m immediate stop >/dev/null 2>&1
    fi
    rm -rf "$T"
}
trap cleanup EXIT

# ------------------------------------------------------------ the trace
"$M" synth --arch qwen2moe --layers 3 --embd 32 --heads 2 --experts 6 --used 2 --ff 16 --vocab 300 \
    --type F32 --seed 7 "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
printf 'plain caf\xc3\xa9 \xe2\x98\x83 bytes \\t and\\nnewline\nit'"'"'s "quoted" \\\\ back\n' > "$T/p.txt"
cat > "$T/p.jsonl" <<'J'
{"text": "tab\there, cr lf\r\nand a lone cr\r, quote ' and \" and \\ backslash\nnewline", "labels": {"domain": "code", "pair": 1}}
{"text": "caf\u00e9 \u2603 ok", "labels": {"language": "fr", "class": "x,y"}}
{"text": "x'); DROP TABLE prompt; --\n\\.\n\\N\t$$ E'\\\\' \"q\"", "labels": {"evil": "'); DROP TABLE run; --"}}
J
# every control character but NUL, alone and between quotes and backslashes,
# so that byte-level BPE makes token pieces of them (one character each)
"$PY" - "$T/p.jsonl" <<'EOF'
import json, sys
ctl = "".join(chr(c) for c in list(range(1, 32)) + [127])
text = "ctl " + ctl + " '" + ctl[::-1] + "' \\" + "\r\n".join(["a", "b'", "c\\"]) + "\x1b[31m red\x1b[0m \u2028\u2029 '); DROP TABLE token; --"
open(sys.argv[1], "a").write(json.dumps({"text": text, "labels": {"ctl": ctl}}) + "\n")
EOF
"$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/t.db" --gen 2 --probs --stats -t 1 2>"$T/err"
check "trace plain prompts (exit 0)" test $? -eq 0
"$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" --gen 1 -t 1 --silence 1:2 2>"$T/err"
check "trace JSONL prompts with an intervention (exit 0)" test $? -eq 0
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,3,\n0,0,0,1,1,\n0,1,2,0,5,0.25\n' > "$T/i.csv"
"$M" import --db "$T/t.db" --format csv "$T/i.csv" >"$T/out" 2>"$T/err"
check "import csv -> $(cat "$T/out")" grep -q '^run 3$' "$T/out"
# analysis result tables travel too (when the analysis module is available)
"$M" experiment "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" --silence 1:2 --gen 3 -t 1 >"$T/out" 2>"$T/err"
check "experiment into the same database (runs 4, 5): $(head -c 120 "$T/err")" grep -q '^baseline run 4, intervened run 5' "$T/out"
"$M" sweep "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" --silence-each 1 --random-controls 2 -t 1 >/dev/null 2>"$T/err"
check "sweep into the same database: $(head -c 120 "$T/err")" test "$(sqlite3 "$T/t.db" 'SELECT count(*) FROM sweep_candidate')" = 8
have_an=0
"$M" analyze load --db "$T/t.db" --run 1 >/dev/null 2>"$T/err" && have_an=1
[ "$have_an" = 1 ] || echo "# analyze load failed, result tables not covered: $(head -1 "$T/err")"
# token text that tries to leave its literal: quotes, a COPY terminator, \N, CR LF, a NUL
printf '%s\n' '{"prompt":0,"position":0,"experts":[[1,2]],"text":"nul\u0000byte","piece":"x\u0027); DROP TABLE token; --"}' \
    '{"prompt":0,"position":1,"experts":[[3,2]],"piece":"\\.\n\\N\r\n\u0000\t$$"}' > "$T/i.jsonl"
"$M" import --db "$T/t.db" --format jsonl "$T/i.jsonl" >"$T/out" 2>"$T/err"
check "import jsonl whose text holds a NUL -> $(cat "$T/out")" grep -q '^run 6$' "$T/out"
nul=$(sqlite3 "$T/t.db" "SELECT count(*) FROM prompt WHERE run_id = 6 AND instr(text_bytes, x'00') > 0")
check "an imported prompt holds a NUL byte in text_bytes" test "$nul" = 1
crlf=$(sqlite3 "$T/t.db" "SELECT count(*) FROM prompt WHERE run_id = 2 AND instr(text, char(13,10)) > 0 AND instr(text, char(13,44)) > 0")
check "a prompt holds CR LF and a lone CR in its text" test "$crlf" = 1
ctl=$(sqlite3 "$T/t.db" "SELECT count(DISTINCT unicode(piece)) FROM token WHERE run_id = 2 AND length(piece) = 1 AND (unicode(piece) < 32 OR unicode(piece) = 127)")
check "token pieces hold each control character but NUL (32 distinct, got $ctl)" test "$ctl" = 32
bad=$(sqlite3 "$T/t.db" "SELECT count(*) FROM token WHERE CAST(piece AS BLOB) <> piece_bytes")
check "some pieces are invalid UTF-8 (carried in piece_bytes): $bad" test "$bad" -gt 0

# ------------------------------------------------------------ sql -> sqlite3
"$M" export --db "$T/t.db" --format sql -o "$T/dump.sql" 2>"$T/err"
check "export sql (exit 0)" test $? -eq 0
sqlite3 "$T/re.db" < "$T/dump.sql" 2>"$T/err"
check "sqlite3 loads the sql export without errors" test $? -eq 0 -a ! -s "$T/err"
q="SELECT hex(text) FROM prompt WHERE run_id = 2 ORDER BY idx"
check "CR LF and a lone CR come back exactly through the sqlite3 shell" test "$(sqlite3 "$T/re.db" "$q")" = "$(sqlite3 "$T/t.db" "$q")"
for t in model intervention_set run prompt token routing_packed router_probs hidden_stats analysis ms_seq \
         routing expert_stats router_prob expert_load load_entropy routing_entropy prompt_label \
         an_compare_prompt an_compare_pos an_compare_layer an_compare an_compare_shift sweep sweep_candidate; do
    q="SELECT count(*), hex(sha3_query('SELECT * FROM $t')) FROM $t"
    a=$(sqlite3 "$T/t.db" "$q" 2>&1)
    b=$(sqlite3 "$T/re.db" "$q" 2>&1)
    case ${a%%|*} in ''|*[!0-9]*) a="error: $a" ;; esac
    check "sqlite round trip of $t: ${a%%|*} rows, same sha3" test "$a" = "$b"
done
check "user_version survives" test "$(sqlite3 "$T/re.db" 'PRAGMA user_version')" = "$(sqlite3 "$T/t.db" 'PRAGMA user_version')"
"$M" sql --db "$T/re.db" "SELECT count(*) FROM routing" >/dev/null 2>"$T/err"
check "the reloaded database opens as a trace" test $? -eq 0

# ------------------------------------------------------------ csv
"$M" export --db "$T/t.db" --format csv -o "$T/csv" 2>"$T/err"
check "export csv (exit 0)" test $? -eq 0
for t in model run prompt token routing expert_stats router_probs hidden_stats; do
    rows=$(sqlite3 "$T/t.db" "SELECT count(*) FROM $t")
    # the csv rows (records may span lines): count with sqlite3's own CSV reader
    got=$(sqlite3 :memory: ".import --csv '$T/csv/$t.csv' x" "SELECT count(*) FROM x" 2>&1)
    check "csv $t: $got rows (source $rows)" test "$got" = "$rows"
done
a=$(sqlite3 "$T/t.db" "SELECT group_concat(lower(hex(piece_bytes)), ',') FROM (SELECT piece_bytes FROM token ORDER BY prompt_id, pos)")
b=$(sqlite3 :memory: ".import --csv '$T/csv/token.csv' x" "SELECT group_concat(piece_bytes, ',') FROM (SELECT piece_bytes FROM x ORDER BY CAST(prompt_id AS INT), CAST(pos AS INT))")
check "csv piece_bytes exact (hex)" test "$a" = "$b"
# NULL and empty differ in CSV only by quotes: an empty unquoted field is
# NULL, "" is empty (here the empty piece_bytes of BOS tokens)
nempty=$(sqlite3 "$T/t.db" "SELECT count(*) FROM token WHERE piece_bytes IS NOT NULL AND length(piece_bytes) = 0")
qempty=$("$PY" - "$T/csv/token.csv" <<'EOF'
import sys
data = open(sys.argv[1], newline="").read()
rows, row, field, quoted, i = [], [], "", False, 0
while i < len(data):          # RFC 4180, keeping whether each field was quoted
    ch = data[i]
    if ch == '"' and not field and not quoted:
        j = i + 1
        while True:
            k = data.index('"', j)
            if data[k + 1:k + 2] == '"':
                field += data[j:k] + '"'; j = k + 2
            else:
                field += data[j:k]; i = k + 1; break
        quoted = True
        continue
    if ch in ",\n":
        row.append((field, quoted)); field, quoted = "", False
        if ch == "\n":
            rows.append(row); row = []
    else:
        field += ch
    i += 1
col = [f for f, q in rows[0]].index("piece_bytes")
print(sum(1 for r in rows[1:] if r[col] == ("", True)), sum(1 for r in rows[1:] if r[col] == ("", False)))
EOF
)
check "csv: the $nempty empty piece_bytes are \"\", none is an empty unquoted (NULL) field (got: $qempty)" \
    test "$nempty" -gt 0 -a "$qempty" = "$nempty 0"
"$M" export --db "$T/t.db" --format csv --tables routing > "$T/r.csv" 2>"$T/err"
check "csv of one table to stdout" test "$(head -1 "$T/r.csv")" = "run_id,prompt_id,pos,layer,rank,expert,weight"
"$M" export --db "$T/t.db" --format csv --tables nosuch > /dev/null 2>"$T/err"
check "unknown table named in the error" grep -q "nosuch" "$T/err"

# ------------------------------------------------------------ pgsql -> PostgreSQL
"$M" export --db "$T/t.db" --format pgsql -o "$T/dump.pgsql" 2>"$T/err"
check "export pgsql (exit 0)" test $? -eq 0
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! command -v psql >/dev/null; then
    echo "ok $((n + 1)) # SKIP PostgreSQL binaries not installed"
    n=$((n + 1))
    echo "1..$n"
    [ "$failed" -eq 0 ]
    exit
fi
# root cannot run postgres: run the server as the postgres system user
if [ "$(id -u)" = 0 ]; then
    PGUSER_OS=postgres
    pg_as() { runuser -u "$PGUSER_OS" -- "$@"; }
else
    pg_as() { "$@"; }
fi
PGD=$(mktemp -d "${TMPDIR:-/tmp}/mspg.XXXXXX") || exit 99
chmod 755 "$PGD"
[ "$(id -u)" = 0 ] && chown postgres "$PGD"
PGPID_DIR=$PGD
trap 'cleanup; rm -rf "$PGD"' EXIT
pg_as "$PGBIN/initdb" -D "$PGD/data" -U ms --auth=trust -E UTF8 --no-locale >"$T/initdb.log" 2>&1
check "initdb" test $? -eq 0
started=0
for try in 1 2 3 4 5; do
    PORT=$((20000 + (RANDOM % 20000)))
    if pg_as "$PGBIN/pg_ctl" -D "$PGD/data" -w -t 30 -l "$PGD/log" \
         -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGD -c fsync=off" start >/dev/null 2>&1; then
        started=1
        break
    fi
done
check "PostgreSQL server started on 127.0.0.1:$PORT" test "$started" = 1
PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U ms -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -f "$T/dump.pgsql" >"$T/psql.out" 2>&1
check "psql loads the pgsql export without errors" test $? -eq 0 -a -z "$(grep -i error "$T/psql.out")"
[ -s "$T/psql.out" ] && diag "$(head -3 "$T/psql.out")"

# per logical table: columns with their kind (i int, t text, b blob, r double, f float32)
declare -A COLS=(
  [model]="model_id:i file_name:t file_size:i sha256:t arch:t name:t n_layer:i n_expert:i n_expert_used:i n_expert_shared:i score_func:t norm_topk:i w_scale:r n_embd:i n_vocab:i n_ff_exp:i moe_layers:t"
  [intervention_set]="set_id:i spec:t"
  [run]="run_id:i model_id:i created:t kind:t settings:t interventions:t set_id:i program_version:t parent_run_id:i has_probs:i has_stats:i"
  [prompt]="prompt_id:i run_id:i idx:i text:t text_bytes:b labels:t n_tokens:i worker:t"
  [token]="run_id:i prompt_id:i pos:i token_id:i piece:t piece_bytes:b is_generated:i logprob:r entropy:r"
  [routing]="run_id:i prompt_id:i pos:i layer:i rank:i expert:i weight:f"
  [expert_stats]="run_id:i prompt_id:i pos:i layer:i rank:i expert:i maxabs:f l2:f"
  [router_probs]="run_id:i prompt_id:i pos:i layer:i probs:b logits:b"
  [hidden_stats]="run_id:i prompt_id:i pos:i layer:i maxabs:r"
  [analysis]="analysis_id:i run_id:i name:t table_name:t params:t created:t program_version:t"
  [an_compare_prompt]="run_id:i baseline_run_id:i idx:i n_tokens:i n_prompt_tokens:i kl_mean:r kl_max:r n_scored:i nll_baseline:r nll_run:r top1_agree:i first_divergence:i text_baseline:t text_run:t tokens_baseline:b tokens_run:b"
  [an_compare_pos]="run_id:i baseline_run_id:i idx:i pos:i kl:r lp_baseline:r lp_run:r top1_baseline:i top1_run:i"
  [an_compare_layer]="run_id:i baseline_run_id:i idx:i layer:i n_pos:i n_changed:i jaccard_sum:r"
  [sweep]="sweep_id:i baseline_run_id:i model_id:i created:t settings:t program_version:t"
  [sweep_candidate]="sweep_id:i cand:i kind:t label:t interventions:t n_experts:i n_positions:i kl_mean:r kl_max:r top1_agreement:r ppl_baseline:r ppl_run:r dppl:r changed_share:r jaccard_mean:r z_kl:r z_dppl:r rank:i"
)
declare -A ORDER=([model]=model_id [intervention_set]=set_id [run]=run_id [prompt]=prompt_id [token]="prompt_id,pos"
  [routing]="prompt_id,pos,layer,rank" [expert_stats]="prompt_id,pos,layer,rank" [router_probs]="prompt_id,pos,layer"
  [hidden_stats]="prompt_id,pos,layer" [analysis]=analysis_id [an_compare_prompt]="run_id,idx"
  [an_compare_pos]="run_id,idx,pos" [an_compare_layer]="run_id,idx,layer" [sweep]=sweep_id [sweep_candidate]="sweep_id,cand")
for t in model intervention_set run prompt token routing expert_stats router_probs hidden_stats analysis \
         an_compare_prompt an_compare_pos an_compare_layer sweep sweep_candidate; do
    sj= pj=
    for c in ${COLS[$t]}; do
        name=${c%%:*} kind=${c##*:}
        case $kind in
            i) s="CAST($name AS TEXT)"; p="$name::text" ;;
            t) s="lower(hex(CAST($name AS BLOB)))"; p="encode(convert_to($name,'UTF8'),'hex')" ;;
            b) s="lower(hex($name))"; p="encode($name,'hex')" ;;
            r|f) s="lower(hex(ieee754_to_blob($name)))"; p="encode(float8send($name::float8),'hex')" ;;
        esac
        sj+="${sj:+||'|'||}(CASE WHEN $name IS NULL THEN 'N' ELSE $s END)"
        pj+="${pj:+||'|'||}(CASE WHEN $name IS NULL THEN 'N' ELSE $p END)"
    done
    sqlite3 "$T/t.db" "SELECT $sj FROM $t ORDER BY ${ORDER[$t]}" > "$T/s.$t" 2>&1
    "${PSQL[@]}" -At -c "SELECT $pj FROM \"$t\" ORDER BY ${ORDER[$t]}" > "$T/p.$t" 2>&1
    ns=$(wc -l < "$T/s.$t") np=$(wc -l < "$T/p.$t")
    check "postgres $t: $np rows (source $ns), checksum $(md5sum < "$T/p.$t" | cut -c1-12)" \
        test "$ns" = "$np" -a "$(md5sum < "$T/s.$t")" = "$(md5sum < "$T/p.$t")"
done
for t in $(sqlite3 "$T/t.db" "SELECT table_name FROM analysis ORDER BY 1"); do
    a=$(sqlite3 "$T/t.db" "SELECT count(*) FROM $t")
    b=$("${PSQL[@]}" -At -c "SELECT count(*) FROM \"$t\"" 2>&1)
    check "postgres result table $t: $b rows (source $a)" test "$a" = "$b"
done
a=$("${PSQL[@]}" -At -c "SELECT layer, expert, n FROM expert_load WHERE run_id = 1 ORDER BY 1, 2" 2>&1)
b=$(sqlite3 "$T/t.db" "SELECT layer, expert, n FROM expert_load WHERE run_id = 1 ORDER BY 1, 2")
check "expert_load view agrees in PostgreSQL" test "$a" = "$b" -a -n "$a"
a=$("${PSQL[@]}" -At -c "SELECT n_prompts, n_positions, round(kl_mean::numeric, 12), round(ppl_run::numeric, 9), n_diverged FROM an_compare" 2>&1)
b=$(sqlite3 "$T/t.db" "SELECT n_prompts, n_positions, printf('%.12f', kl_mean), printf('%.9f', ppl_run), n_diverged FROM an_compare")
check "an_compare view agrees in PostgreSQL ($a)" test "$a" = "$b" -a -n "$a"

echo "1..$n"
[ "$failed" -eq 0 ]
