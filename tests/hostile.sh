#!/bin/bash
# hostile.sh — the malformed-input corpus (TAP, one line per case): model
# files, prompt files, foreign traces for `import`, databases, intervention
# files and command-line values, each given to the real moescope binary.
# Every case must give
#   * a non-zero exit status below 124 (1, or 2 for a usage error): no signal
#     and no timeout (124 and above),
#   * exactly one line on stderr that names the file (FILE:LINE where the
#     input has lines) and holds the expected words about the problem; no
#     sanitizer report,
#   * no hang: each run is killed after $LIMIT_S seconds (a failure),
#   * bounded memory: max RSS under $LIMIT_KB KiB (/usr/bin/time), which an
#     endless input read whole (/dev/zero) would pass within seconds,
#   * no partial output: outputs go to $T/o, which must stay empty, and a
#     database the case writes into must keep its bytes.
# Inputs are built here from a synth model and small text files; model
# variants come from tests/hostile/gguf-edit.py (one defect each).  The other
# tests keep the cases that check finer behaviour (test-model-errors.c,
# test-gguf.c's container defects, db-cli.sh, test-cli.sh).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
H=$(dirname "$0")/hostile
T=$(mktemp -d "${TMPDIR:-/tmp}/mshostile.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x /usr/bin/time ] || skip_all "/usr/bin/time (GNU time) not installed"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed (it crafts the database cases)"
LIMIT_S=60
# a whole-file read stops at its 256 MiB limit: about 0.28 GB of RSS, 0.9 GB
# under ASan (its quarantine keeps the buffers the read grew through)
LIMIT_KB=$((1536 * 1024))
mkdir -p "$T/o"

# hcase DESC WANT CMD...: WANT is a fixed string the one stderr line must hold
# (the file name, a line number, the problem).  KEEP (a file) must be unchanged.
KEEP=
hcase() {
    local d=$1 want=$2; shift 2
    local sum=
    [ -n "$KEEP" ] && sum=$(cksum <"$KEEP")
    /usr/bin/time -f %M -o "$T/rss" timeout -s KILL "$LIMIT_S" "$@" </dev/null >"$T/out" 2>"$T/err"
    local rc=$? why=
    local rss lines
    rss=$(tail -1 "$T/rss" 2>/dev/null)
    lines=$(wc -l <"$T/err")
    case $rss in ''|*[!0-9]*) rss=0 ;; esac
    if [ "$rc" -eq 0 ]; then why="exit 0"
    elif [ "$rc" -ge 124 ]; then why="exit $rc (signal, timeout or crash)"
    elif [ "$lines" -ne 1 ]; then why="$lines lines on stderr"
    elif ! grep -qF -- "$want" "$T/err"; then why="the line lacks '$want'"
    elif grep -qE 'Sanitizer|runtime error' "$T/err"; then why="sanitizer report"
    elif [ "$rss" -gt "$LIMIT_KB" ]; then why="max RSS $rss KiB"
    elif [ -n "$(ls -A "$T/o")" ]; then why="left output behind: $(ls -A "$T/o" | head -3 | tr '\n' ' ')"
    elif [ -n "$KEEP" ] && [ "$(cksum <"$KEEP")" != "$sum" ]; then why="$KEEP changed"
    fi
    rm -rf "${T:?}/o/"* "${T:?}/o/".[!.]* 2>/dev/null
    if [ -z "$why" ]; then ok "$d (exit $rc, ${rss} KiB): $(head -c 300 "$T/err")"
    else nok "$d: $why (exit $rc): $(head -c 300 "$T/err")"; fi
}

# ------------------------------------------------------------ the inputs
"$M" synth --arch olmoe --layers 2 --embd 32 --heads 2 --experts 4 --used 2 --ff 16 --vocab 300 --type F32 \
    --seed 1 "$T/m.gguf" >/dev/null 2>"$T/err" || { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
G=$T/m.gguf
printf 'hello world\nsecond prompt\n' >"$T/p.txt"
"$M" trace "$G" --prompts "$T/p.txt" --db "$T/t.db" -t 1 2>"$T/err" || { echo "Bail out! trace failed: $(cat "$T/err")"; exit 1; }
# a database another case must leave as it is
cp "$T/t.db" "$T/keep.db"
edit() { "$PY" "$H/gguf-edit.py" "$G" "$T/$1.gguf" "${@:2}" || echo "# gguf-edit $1 failed"; }

# ------------------------------------------------------------ model files
# container (info); test-gguf.c has more container defects in C
head -c 10 "$G" >"$T/short.gguf"
hcase "model: truncated inside the header" "short.gguf" "$M" info "$T/short.gguf"
head -c $(($(stat -c %s "$G") / 2)) "$G" >"$T/half.gguf"
hcase "model: tensor data cut in half" "half.gguf" "$M" info "$T/half.gguf"
{ printf 'GGML'; tail -c +5 "$G"; } >"$T/magic.gguf"
hcase "model: bad magic" "magic.gguf" "$M" info "$T/magic.gguf"
edit ver version 99
hcase "model: GGUF version 99" "ver.gguf" "$M" info "$T/ver.gguf"
edit ntens n-tensors 1099511627776
hcase "model: 2^40 tensors claimed" "ntens.gguf" "$M" info "$T/ntens.gguf"
edit nkv n-kv 4611686018427387904
hcase "model: 2^62 key/values claimed" "nkv.gguf" "$M" info "$T/nkv.gguf"
edit keylen key-len 0 4611686018427387904
hcase "model: a key of 2^62 bytes" "keylen.gguf" "$M" info "$T/keylen.gguf"
edit toff tensor blk.0.ffn_gate_exps.weight off 1099511627776
hcase "model: tensor offset past the end of the file" "toff.gguf" "$M" info "$T/toff.gguf"
edit tuna tensor blk.0.ffn_gate_exps.weight off 3
hcase "model: unaligned tensor offset" "tuna.gguf" "$M" info "$T/tuna.gguf"
edit ttype tensor blk.0.attn_q.weight type 9999
hcase "model: tensor type 9999" "ttype.gguf" "$M" info "$T/ttype.gguf"
edit tdim tensor blk.0.attn_q.weight dim0 4611686018427387904
hcase "model: a dimension of 2^62 (size overflow)" "tdim.gguf" "$M" info "$T/tdim.gguf"
edit tnd tensor blk.0.attn_q.weight ndims 9
hcase "model: 9 dimensions" "tnd.gguf" "$M" info "$T/tnd.gguf"
edit tshape tensor blk.1.ffn_down_exps.weight dim0 8
hcase "model: an expert tensor of the wrong shape" "tshape.gguf" "$M" info "$T/tshape.gguf"
edit vocab tensor token_embd.weight dim1 2147483647
hcase "model: a vocabulary of 2^31-1 rows (token_embd)" "vocab.gguf" "$M" info "$T/vocab.gguf"
# fuzz-gguf's finding: the expert FFN length times the shared-expert count
# overflowed an int before the range check (UBSan: signed overflow)
"$M" synth --arch deepseek2 --layers 2 --embd 32 --heads 2 --experts 4 --used 2 --ff 16 --vocab 300 --type F32 \
    --seed 1 "$T/ds.gguf" >/dev/null 2>"$T/err" || echo "# synth deepseek2 failed: $(cat "$T/err")"
"$PY" "$H/gguf-edit.py" "$T/ds.gguf" "$T/dsff.gguf" set-u32 deepseek2.expert_feed_forward_length 2113929224 \
    set-u32 deepseek2.expert_shared_count 2 || echo "# gguf-edit dsff failed"
hcase "model: deepseek2 expert FFN length 2113929224 with 2 shared experts" \
    "dsff.gguf: expert feed_forward_length = 2113929224 out of range" "$M" info "$T/dsff.gguf"
edit ntok arr-len tokenizer.ggml.tokens 1099511627776
hcase "model: 2^40 tokens claimed" "ntok.gguf" "$M" info "$T/ntok.gguf"
edit toktype arr-type tokenizer.ggml.tokens 4
hcase "model: the token array re-tagged as u32" "toktype.gguf" "$M" info "$T/toktype.gguf"
edit arch set-str general.architecture gpt9
hcase "model: unknown architecture" "gpt9" "$M" info "$T/arch.gguf"
edit used set-u32 olmoe.expert_used_count 9
hcase "model: 9 experts used of 4" "expert_used_count" "$M" info "$T/used.gguf"
edit nexp set-u32 olmoe.expert_count 0
hcase "model: expert_count 0" "expert_count" "$M" info "$T/nexp.gguf"
edit blocks set-u32 olmoe.block_count 100000
hcase "model: 100000 blocks for 2 blocks of tensors" "blocks.gguf" "$M" info "$T/blocks.gguf"
edit heads set-u32 olmoe.attention.head_count 0
hcase "model: head_count 0" "head_count" "$M" info "$T/heads.gguf"
edit ctx set-u32 olmoe.context_length 4294967295
hcase "model: a context of 2^32-1 tokens (no KV cache of that size)" "context_length" "$M" generate "$T/ctx.gguf" -p hi -n 2
edit kv3 set-u32 olmoe.attention.head_count_kv 3
hcase "model: 3 KV heads for 2 query heads" "head_count_kv" "$M" generate "$T/kv3.gguf" -p hi -n 2
edit rope set-u32 olmoe.rope.dimension_count 4095
hcase "model: RoPE over 4095 dimensions of a 16-wide head" "rope.dimension_count" "$M" generate "$T/rope.gguf" -p hi -n 2
edit align set-u32 general.alignment 3
hcase "model: alignment 3" "alignment" "$M" info "$T/align.gguf"
edit bos set-u32 tokenizer.ggml.bos_token_id 300
hcase "model: bos_token_id 300 of 300 tokens" "bos_token_id = 300" "$M" tokenize "$T/bos.gguf" hello
edit eos set-u32 tokenizer.ggml.eos_token_id 4000000000
hcase "model: eos_token_id 4e9" "eos_token_id = 4000000000" "$M" generate "$T/eos.gguf" -p hi -n 2
edit tokm set-str tokenizer.ggml.model nonesuch
hcase "model: unknown tokenizer model" "nonesuch" "$M" tokenize "$T/tokm.gguf" hello
# merges: llama.cpp keeps such entries inert, moescope refuses the file
edit mnosp arr-str tokenizer.ggml.merges 0 'nospace'
hcase "model: a merge without a space" "merges[0] is not two tokens separated by a space" "$M" tokenize "$T/mnosp.gguf" hello
edit mempty arr-str tokenizer.ggml.merges 5 'a '
hcase "model: a merge with an empty right side" "merges[5] is not two tokens" "$M" info "$T/mempty.gguf"
edit mutf arr-str tokenizer.ggml.merges 2 'a \xc3'
hcase "model: a merge that is not UTF-8" "merges[2] is not valid UTF-8" "$M" tokenize "$T/mutf.gguf" hello
edit mnul arr-str tokenizer.ggml.merges 1 'a \x00b'
KEEP=
hcase "model: a merge with a NUL byte (trace writes nothing)" "merges[1] is not valid UTF-8" \
    "$M" trace "$T/mnul.gguf" --prompts "$T/p.txt" --db "$T/o/x.db"
edit mtype arr-type tokenizer.ggml.merges 5
hcase "model: merges re-tagged as int32" "mtype.gguf" "$M" tokenize "$T/mtype.gguf" hello

# ------------------------------------------------------------ prompt files
trace_p() { hcase "$1" "$2" "$M" trace "$G" --prompts "$3" --db "$T/o/x.db" -t 1; }
printf 'fine\nalso fine\nbad \xff byte\n' >"$T/inv.txt"
trace_p "prompts: invalid UTF-8 on line 3" "inv.txt:3:5: invalid UTF-8" "$T/inv.txt"
printf 'fine\nnul\0here\n' >"$T/nul.txt"
trace_p "prompts: a NUL byte on line 2" "nul.txt:2:4: NUL" "$T/nul.txt"
printf 'caf\xc3\n' >"$T/cut.txt"
trace_p "prompts: a UTF-8 sequence cut at the end of the line" "cut.txt:1:4: invalid UTF-8" "$T/cut.txt"
printf '\xed\xa0\x80 surrogate\n' >"$T/sur.txt"
trace_p "prompts: an encoded surrogate (CESU)" "sur.txt:1:1: invalid UTF-8" "$T/sur.txt"
printf '\xc0\xaf overlong\n' >"$T/ovl.txt"
trace_p "prompts: an overlong encoding" "ovl.txt:1:1: invalid UTF-8" "$T/ovl.txt"
{ echo fine; head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' a; echo; } >"$T/long.txt"
trace_p "prompts: a 10 MB line" "long.txt:2: line longer than" "$T/long.txt"
trace_p "prompts: /dev/zero" "/dev/zero:1:1: NUL" /dev/zero
: >"$T/empty.txt"
trace_p "prompts: empty file" "empty.txt: no prompts" "$T/empty.txt"
printf '\n  \n\t\n\r\n' >"$T/blank.txt"
trace_p "prompts: blank lines only" "blank.txt: no prompts" "$T/blank.txt"
printf 'ok\nbad \\q escape\n' >"$T/esc.txt"
trace_p "prompts: unknown escape" "esc.txt:2:5: unknown escape \\q" "$T/esc.txt"
printf '{"text": "a"}\n{"text": 5}\n' >"$T/num.jsonl"
trace_p "prompts: JSONL text is a number" "num.jsonl:2:" "$T/num.jsonl"
printf '{"text": "a", "labels": ["x"]}\n' >"$T/lab.jsonl"
trace_p "prompts: JSONL labels not an object" "lab.jsonl:1:" "$T/lab.jsonl"
printf '{"text": "a"}\n{"txt": "b"}\n' >"$T/miss.jsonl"
trace_p "prompts: JSONL without text" "miss.jsonl:2:" "$T/miss.jsonl"
printf '{"text": "a"}\n["text", "b"]\n' >"$T/arr.jsonl"
trace_p "prompts: JSONL line that is an array" "arr.jsonl:2:" "$T/arr.jsonl"
printf '{"text": "a"}\n{"text": "b"\n{"text": "c"}\n' >"$T/cut.jsonl"
trace_p "prompts: JSONL object cut short" "cut.jsonl:2:" "$T/cut.jsonl"
printf '{"text": "a\\u0000b"}\n' >"$T/u0.jsonl"
trace_p "prompts: JSONL text with \\u0000" "u0.jsonl:1:" "$T/u0.jsonl"
printf '{"text": "a"}\n{"text": "b", "labels": {"lang": ["x", "c\\u0000ode"]}}\n' >"$T/lu0.jsonl"
trace_p "prompts: JSONL label with \\u0000" 'lu0.jsonl:2: "labels" hold a NUL' "$T/lu0.jsonl"
printf '{"text": "a \xff b"}\n' >"$T/ff.jsonl"
trace_p "prompts: JSONL string with a raw invalid byte" "ff.jsonl:1:" "$T/ff.jsonl"
printf '{"text": "\\ud800"}\n' >"$T/lone.jsonl"
trace_p "prompts: JSONL lone surrogate escape" "lone.jsonl:1:" "$T/lone.jsonl"
trace_p "prompts: a directory" "$T/o" "$T/o"
trace_p "prompts: a missing file" "nope.txt" "$T/nope.txt"
"$PY" -c 'print("word " * 6000)' >"$T/ctx.txt"
trace_p "prompts: a prompt longer than the model's context" "ctx.txt:1: prompt of " "$T/ctx.txt"
printf 'short one\n' >>"$T/ctx.txt"
hcase "prompts: dump of a file whose line 1 is too long writes no file" "ctx.txt:1: prompt of " \
    "$M" dump "$G" --prompts "$T/ctx.txt" --out "$T/o/d"

# ------------------------------------------------------------ one UTF-8 rule for every command
printf 'good text\n\xfe\xff\n' >"$T/u.txt"
hcase "utf-8 rule: trace rejects line 2" "u.txt:2:1: invalid UTF-8" "$M" trace "$G" --prompts "$T/u.txt" --db "$T/o/x.db"
hcase "utf-8 rule: dump rejects line 2" "u.txt:2:1: invalid UTF-8" "$M" dump "$G" --prompts "$T/u.txt" --out "$T/o/d"
hcase "utf-8 rule: tokenize --file rejects line 2" "u.txt:2:1: invalid UTF-8" "$M" tokenize "$G" --file "$T/u.txt"
hcase "utf-8 rule: perplexity --file rejects line 2" "u.txt:2:1: invalid UTF-8" "$M" perplexity "$G" --file "$T/u.txt" --ctx 8
hcase "utf-8 rule: experiment rejects line 2" "u.txt:2:1: invalid UTF-8" \
    "$M" experiment "$G" --prompts "$T/u.txt" --db "$T/o/x.db" --silence 0:1
hcase "utf-8 rule: generate -p rejects the argument" "invalid UTF-8" "$M" generate "$G" -p $'ok \xff' -n 2
hcase "utf-8 rule: tokenize TEXT rejects the argument" "invalid UTF-8" "$M" tokenize "$G" $'\xc3('
hcase "unbounded: tokenize --file /dev/zero" "/dev/zero" "$M" tokenize "$G" --file /dev/zero
hcase "unbounded: perplexity --file /dev/zero" "/dev/zero" "$M" perplexity "$G" --file /dev/zero

# ------------------------------------------------------------ foreign traces (import)
imp() { hcase "$1" "$2" "$M" import --db "$T/o/x.db" "${@:3}"; }
printf 'prompt,pos,layer\n0,0,0\n' >"$T/hdr.csv"
imp "import csv: wrong header" "hdr.csv:1" --format csv "$T/hdr.csv"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,-1,1,2,0.5\n' >"$T/neg.csv"
imp "import csv: negative layer on line 3" "neg.csv:3" --format csv "$T/neg.csv"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,nan\n' >"$T/nan.csv"
imp "import csv: NaN weight" "nan.csv:2" --format csv "$T/nan.csv"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,99999999999,1\n' >"$T/big.csv"
imp "import csv: expert id beyond int32" "big.csv:2" --format csv "$T/big.csv"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,0,2,0.5\n' >"$T/dup.csv"
imp "import csv: the same rank twice" "dup.csv:3" --format csv "$T/dup.csv"
: >"$T/empty.csv"
imp "import csv: empty file" "empty.csv" --format csv "$T/empty.csv"
printf '{"prompt":0,"position":0,"experts":[[1,2]]}\n{"prompt":0,"position":1,"experts":"x"}\n' >"$T/t.jsonl"
imp "import jsonl: experts is a string" "t.jsonl:2" --format jsonl "$T/t.jsonl"
printf '{"prompt":0,"position":0,"experts":[[1,2]],"piece":"\xff"}\n' >"$T/pc.jsonl"
imp "import jsonl: raw invalid UTF-8 in the JSON" "pc.jsonl:1" --format jsonl "$T/pc.jsonl"
printf '{"prompt":-3,"position":0,"experts":[[1,2]]}\n' >"$T/np.jsonl"
imp "import jsonl: negative prompt index" "np.jsonl:1" --format jsonl "$T/np.jsonl"
printf '{"tokens":2,"layers":1,"top_k":1}\n\001\000\000\000' >"$T/short.ids"
imp "import ids: expert data cut short" "short.ids" --format ids "$T/short.ids"
printf '{"tokens":1099511627776,"layers":1000,"top_k":1000}\n' >"$T/huge.ids"
imp "import ids: a header claiming 10^18 ids" "huge.ids" --format ids "$T/huge.ids"
printf '{"tokens":1,"layers":1,"top_k":-2}\n' >"$T/negk.ids"
imp "import ids: top_k -2" "negk.ids" --format ids "$T/negk.ids"
printf '{"tokens":1,"layers":1,"top_k":1}\n\377\377\377\177' >"$T/eid.ids"
imp "import ids: expert id 2^31-1 without --experts" "eid.ids" --format ids "$T/eid.ids" --experts 8
imp "import ids: /dev/zero" "/dev/zero" --format ids /dev/zero
printf '{"tokens":1,"layers":1,"top_k":1,"weights":true}\n\001\000\000\000\000\000\300\177' >"$T/nanw.ids"
imp "import ids: a NaN weight" "nanw.ids: request 0: weight 0 is not a finite number" --format ids "$T/nanw.ids"
imp "import: a missing file (no database created)" "missing.csv: No such file or directory" --format csv "$T/missing.csv"
printf 'prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n' >"$T/ok.csv"
printf '{"prompt": 0, "labels": {"a": 1}}\n{"prompt": 7, "labels": {"a": 2}}\n' >"$T/lab7.jsonl"
imp "import --labels naming a prompt the import lacks" "lab7.jsonl:2: labels for prompt 7" --format csv "$T/ok.csv" --labels "$T/lab7.jsonl"
printf '{"prompt": 0, "labels": 5}\n' >"$T/lab5.jsonl"
imp "import --labels: labels is a number" "lab5.jsonl:1" --format csv "$T/ok.csv" --labels "$T/lab5.jsonl"
imp "import --experts 0" "--experts" --format csv "$T/ok.csv" --experts 0
imp "import --top-k -1" "--top-k" --format csv "$T/ok.csv" --top-k -1

# ------------------------------------------------------------ databases
printf 'SQLite format 3\0this is not really a database, only its first sixteen bytes are' >"$T/fake.db"
hcase "db: SQLite magic then junk (sql)" "fake.db" "$M" sql --db "$T/fake.db" "SELECT 1"
head -c 4096 /dev/urandom >"$T/rand.db"
hcase "db: random bytes (export)" "rand.db" "$M" export --db "$T/rand.db" --format sql -o "$T/o/x.sql"
sqlite3 "$T/other.db" "CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('x');"
cp "$T/other.db" "$T/other0.db"
KEEP=$T/other.db
hcase "db: a SQLite file with other tables (trace refuses it)" "other.db" \
    "$M" trace "$G" --prompts "$T/p.txt" --db "$T/other.db"
hcase "db: other tables (analyze)" "other.db" "$M" analyze load --db "$T/other.db" --run 1
hcase "db: other tables (export)" "other.db" "$M" export --db "$T/other.db" --format csv -o "$T/o/csv"
KEEP=
cp "$T/t.db" "$T/newer.db"
sqlite3 "$T/newer.db" "PRAGMA user_version = 99"
cp "$T/newer.db" "$T/newer0.db"
KEEP=$T/newer.db
hcase "db: a newer schema (trace)" "newer.db" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/newer.db"
hcase "db: a newer schema (sql)" "newer.db" "$M" sql --db "$T/newer.db" "SELECT 1"
KEEP=
cp "$T/t.db" "$T/appid.db"
sqlite3 "$T/appid.db" "PRAGMA application_id = 1234"
KEEP=$T/appid.db
hcase "db: another program's application id (sql)" "appid.db" "$M" sql --db "$T/appid.db" "SELECT 1"
hcase "db: another program's application id (import)" "appid.db" "$M" import --db "$T/appid.db" --format csv "$T/ok.csv"
for c in trace export analyze experiment; do
    case $c in
    trace) args=(trace "$G" --prompts "$T/p.txt" --db "$T/appid.db") ;;
    export) args=(export --db "$T/appid.db" --format sql -o "$T/o/x.sql") ;;
    analyze) args=(analyze load --db "$T/appid.db" --run 1) ;;
    experiment) args=(experiment "$G" --prompts "$T/p.txt" --db "$T/appid.db" --silence 0:1) ;;
    esac
    hcase "db: another program's application id ($c)" "appid.db: not a moescope trace database" "$M" "${args[@]}"
done
KEEP=
head -c 3000 "$T/t.db" >"$T/trunc.db"
hcase "db: truncated to 3000 bytes (sql)" "trunc.db" "$M" sql --db "$T/trunc.db" "SELECT count(*) FROM routing"
hcase "db: truncated (export writes nothing)" "trunc.db" "$M" export --db "$T/trunc.db" --format sql -o "$T/o/x.sql"
hcase "db: truncated (export csv leaves no directory)" "trunc.db" "$M" export --db "$T/trunc.db" --format csv -o "$T/o/csv"
hcase "db: truncated (plot writes no figure)" "trunc.db" "$M" plot load --db "$T/trunc.db" --run 1 -o "$T/o/x.png"
# a page near the end overwritten: the header reads fine and the export
# fails midway, after much of its output is written (to a temporary file)
"$PY" -c '
for i in range(40): print("prompt number %d about rivers and mills and the students who wrote notes" % i)' >"$T/many.txt"
"$M" trace "$G" --prompts "$T/many.txt" --db "$T/corrupt.db" --probs -t 1 2>/dev/null
pc=$(sqlite3 "$T/corrupt.db" "PRAGMA page_count")
ps=$(sqlite3 "$T/corrupt.db" "PRAGMA page_size")
"$PY" -c '
import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); f.write(b"\x0d\xff\xff\xff\xff\xff\xff\xff" * (int(sys.argv[3]) // 8))' \
    "$T/corrupt.db" $(( (pc - 3) * ps )) "$ps"
hcase "db: a corrupt page near the end (export sql fails midway, no file left)" "corrupt.db: export: database disk image is malformed" \
    "$M" export --db "$T/corrupt.db" --format sql -o "$T/o/x.sql"
hcase "db: a corrupt page near the end (export csv, no directory left)" "corrupt.db" \
    "$M" export --db "$T/corrupt.db" --format csv -o "$T/o/csv"
hcase "db: a corrupt page near the end (export pgsql)" "corrupt.db" \
    "$M" export --db "$T/corrupt.db" --format pgsql -o "$T/o/x.pgsql"
hcase "db: a directory as --db" "is a directory" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/o"
hcase "db: a missing database (sql)" "missing.db" "$M" sql --db "$T/o/missing.db" "SELECT 1"
KEEP=$T/keep.db
hcase "db: --parent 99" "no run 99" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/keep.db" --parent 99
hcase "db: --run 99 (analyze)" "99" "$M" analyze load --db "$T/keep.db" --run 99
hcase "db: sql that writes" "keep.db" "$M" sql --db "$T/keep.db" "DROP TABLE token"
KEEP=

# ------------------------------------------------------------ intervention files
ivf() { hcase "$1" "$2" "$M" generate "$G" -p hi -n 2 --interventions "$3"; }
printf 'silence 0:1\n# c\nfrobnicate 0:1\n' >"$T/iv1.txt"
ivf "interventions: unknown verb on line 3" "iv1.txt:3" "$T/iv1.txt"
printf 'silence 5:1\n' >"$T/iv2.txt"
ivf "interventions: layer 5 of 2" "iv2.txt" "$T/iv2.txt"
printf 'silence 0:4\n' >"$T/iv3.txt"
ivf "interventions: expert 4 of 4" "iv3.txt" "$T/iv3.txt"
printf 'steer 0:1:nan\n' >"$T/iv4.txt"
ivf "interventions: steer by NaN" "iv4.txt:1" "$T/iv4.txt"
printf 'silence 0:3-1\n' >"$T/iv5.txt"
ivf "interventions: reversed expert range" "iv5.txt:1" "$T/iv5.txt"
printf 'top-k 0\n' >"$T/iv6.txt"
ivf "interventions: top-k 0" "iv6.txt:1" "$T/iv6.txt"
printf 'silence 0:1 \xff\n' >"$T/iv7.txt"
ivf "interventions: invalid UTF-8" "iv7.txt:1:13: invalid UTF-8" "$T/iv7.txt"
ivf "interventions: /dev/zero" "/dev/zero" /dev/zero
ivf "interventions: a missing file" "nope.iv" "$T/nope.iv"
printf 'silence 0:*\n' >"$T/iv8.txt"
ivf "interventions: every expert of a layer silenced" "iv8.txt" "$T/iv8.txt"

# ------------------------------------------------------------ command-line values
gen() { hcase "$1" "$2" "$M" generate "$G" -p hi "${@:3}"; }
gen "cli: --silence layer 2 of 2" "--silence" --silence 2:0
gen "cli: --silence expert 4 of 4" "--silence" --silence 0:4
gen "cli: --force expert -1" "--force" --force 0:-1
gen "cli: --silence reversed layer range" "--silence" --silence 1-0:1
gen "cli: --top-k 0" "--top-k" --top-k 0
gen "cli: --top-k 5 of 4 experts" "top-k" --top-k 5
gen "cli: -n -1" "-n" -n -1
gen "cli: -n 10^20" "-n" -n 100000000000000000000
gen "cli: --temp nan" "--temp" --temp nan
gen "cli: --temp inf" "--temp" --temp inf
gen "cli: --top-p 1.5" "--top-p" --top-p 1.5
gen "cli: --steer by inf" "--steer" --steer 0:1:inf
gen "cli: --scale by nan" "--scale" --scale 0:1:nan
gen "cli: -t -1" "-t" -t -1
gen "cli: -t 100000" "-t" -t 100000
hcase "cli: trace --gen -3" "--gen" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/o/x.db" --gen -3
hcase "cli: trace --temp nan" "--temp" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/o/x.db" --temp nan --gen 2
hcase "cli: trace --shard 3/2" "--shard" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/o/x.db" --shard 3/2
hcase "cli: trace --top-k 0" "--top-k" "$M" trace "$G" --prompts "$T/p.txt" --db "$T/o/x.db" --top-k 0
hcase "cli: perplexity --ctx 10^12" "--ctx" "$M" perplexity "$G" --file "$T/p.txt" --ctx 1000000000000
hcase "cli: perplexity --ctx -8" "--ctx" "$M" perplexity "$G" --file "$T/p.txt" --ctx -8
hcase "cli: bench -p -1" "-p" "$M" bench "$G" -p -1
hcase "cli: synth --experts -4" "--experts" "$M" synth --arch olmoe --layers 1 --embd 16 --heads 2 --experts -4 \
    --used 2 --ff 8 --vocab 300 "$T/o/s.gguf"
hcase "cli: synth --vocab 10^12" "--vocab" "$M" synth --arch olmoe --layers 1 --embd 16 --heads 2 --experts 4 \
    --used 2 --ff 8 --vocab 1000000000000 "$T/o/s.gguf"
hcase "cli: synth --layers 100000 --embd 100000 (refused before writing)" "synth" "$M" synth --arch olmoe \
    --layers 100000 --embd 100000 --heads 2 --experts 4 --used 2 --ff 8 --vocab 300 "$T/o/s.gguf"

echo "1..$n"
[ "$failed" -eq 0 ]
