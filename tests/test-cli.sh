#!/bin/bash
# test-cli.sh — drives the real moescope binary (TAP output).
#   --help and usage errors of every engine command; synth of every
#   architecture and weight type then info; tokenize against llama.cpp's
#   vocabulary test vectors; dump, generate (determinism, interventions,
#   routing table), perplexity, bench --json; malformed model files give one
#   line naming the file and exit status 1 (never a crash).
# Environment (set by tests/meson.build): MOESCOPE; MS_SHARED_DIR / MS_SHARED_DEFAULT (tap.sh).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/mscli.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/tap.sh"

# ---------------------------------------------------------------- help
# every command listed by `moescope --help`
cmds=$("$M" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
check "moescope --help lists the engine commands" test -n "$(echo "$cmds" | grep -x synth)" -a -n "$(echo "$cmds" | grep -x perplexity)"
for c in $cmds; do
    run "$M" "$c" --help
    check "$c --help exits 0 with usage text" test "$rc" -eq 0 -a -n "$(grep -m1 '^usage: moescope' "$T/out")"
done
run "$M" --help
check "moescope --help exits 0" test "$rc" -eq 0

# --------------------------------------------------------- usage errors
usage_case() { # DESC ARGS...
    local d=$1; shift
    run "$M" "$@"
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q "^moescope[ :]" "$T/err"; then
        ok "usage error exits 2 with one line: $d"
    else
        nok "usage error exits 2 with one line: $d (rc $rc, $lines lines: $err)"
    fi
}
usage_case "info without MODEL" info
usage_case "info unknown option" info --bogus x.gguf
usage_case "tokenize without text" tokenize x.gguf
usage_case "tokenize TEXT and --file" tokenize x.gguf hello --file y
usage_case "dump without --out" dump x.gguf --prompts p.txt
usage_case "generate without -p" generate x.gguf
usage_case "generate -n not a number" generate x.gguf -p hi -n abc
usage_case "generate --temp negative" generate x.gguf -p hi --temp -1
usage_case "generate --steer without value" generate x.gguf -p hi --steer
usage_case "perplexity without --file" perplexity x.gguf
usage_case "perplexity --ctx too small" perplexity x.gguf --file f --ctx 1
usage_case "synth missing --embd" synth --arch olmoe --layers 1 --heads 2 --experts 4 --used 2 --ff 8 --vocab 300 "$T/x.gguf"
usage_case "synth unknown arch" synth --arch gpt3 --layers 1 --embd 16 --heads 2 --experts 4 --used 2 --ff 8 --vocab 300 "$T/x.gguf"
usage_case "synth unknown type" synth --arch olmoe --layers 1 --embd 16 --heads 2 --experts 4 --used 2 --ff 8 --vocab 300 --type Q9_9 "$T/x.gguf"
usage_case "synth used > experts" synth --arch olmoe --layers 1 --embd 16 --heads 2 --experts 4 --used 5 --ff 8 --vocab 300 "$T/x.gguf"
usage_case "bench -r 0" bench x.gguf -r 0
usage_case "bench --mmap with --no-mmap" bench x.gguf --mmap --no-mmap
usage_case "unknown command" frobnicate

# ------------------------------------------------ synth + info, all archs
synth() { # OUT ARCH TYPE EMBD [extra...]
    local out=$1 arch=$2 type=$3 embd=$4; shift 4
    "$M" synth --arch "$arch" --layers 2 --embd "$embd" --heads 4 --experts 8 --used 2 --ff 32 \
        --vocab 600 --type "$type" --seed 3 "$@" "$out"
}
for a in olmoe qwen2moe llama granitemoe deepseek2; do
    kv=(); [ "$a" = llama ] || [ "$a" = qwen2moe ] || [ "$a" = granitemoe ] && kv=(--kv-heads 2)
    run synth "$T/$a.gguf" "$a" F32 64 "${kv[@]}"
    check "synth $a F32 (rc $rc: $err)" test "$rc" -eq 0 -a -s "$T/$a.gguf"
    run "$M" info "$T/$a.gguf"
    check "info on synth $a names the arch" test "$rc" -eq 0 -a -n "$(grep -m1 "^arch: *$a" "$T/out")"
    check "info on synth $a: 8 routed experts, 2 used" grep -q "8 routed, 2 used" "$T/out"
    run "$M" info --json "$T/$a.gguf"
    check "info --json on synth $a parses" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["arch"] == sys.argv[2] and d["n_expert"] == 8 and d["n_vocab"] == 600, d' "$T/out" "$a"
done
for ty in F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K; do
    run "$M" synth --arch llama --layers 1 --embd 256 --heads 4 --experts 4 --used 2 --ff 256 \
        --vocab 400 --type "$ty" "$T/t-$ty.gguf"
    if [ "$rc" -ne 0 ]; then nok "synth llama $ty ($err)"; continue; fi
    run "$M" info "$T/t-$ty.gguf"
    check "synth llama $ty then info reports weights $ty" test "$rc" -eq 0 -a -n "$(grep -m1 "^weights: *$ty " "$T/out")"
done

# --------------------------------------------------------------- tokenize
if [ -n "$SHARED" ]; then
    V=$SHARED/fixtures/vocab
    # split the .inp files into one file per test string (exact bytes)
    python3 - "$V" "$T/vec" <<'EOF'
import os, sys
vdir, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
for f in sorted(os.listdir(vdir)):
    if not f.endswith(".inp"):
        continue
    base = f[:-4]
    data = open(os.path.join(vdir, f), "rb").read()
    parts = data.split(b"\n__ggml_vocab_test__\n")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    exp = open(os.path.join(vdir, base + ".out"), "rb").read().split(b"\n")
    for i, p in enumerate(parts):
        open(os.path.join(out, "%s.%02d.txt" % (base, i)), "wb").write(p)
        open(os.path.join(out, "%s.%02d.exp" % (base, i)), "wb").write(exp[i].strip() + b"\n")
EOF
    tok_case() { # VOCAB_GGUF BASE: every 5th vector plus the first 3
        local g=$1 base=$2 bad=0 total=0
        for e in "$T/vec/$base".*.exp; do
            local i=${e%.exp}; i=${i##*.}
            [ $((10#$i % 5)) -eq 0 ] || [ $((10#$i)) -lt 3 ] || continue
            total=$((total + 1))
            if ! "$M" tokenize "$g" --no-bos --file "${e%.exp}.txt" >"$T/tok.out" 2>"$T/tok.err" ||
                ! cmp -s "$T/tok.out" "$e"; then
                bad=$((bad + 1))
                [ $bad -le 2 ] && diag "$base vector $i: want $(head -c 200 "$e") got $(head -c 200 "$T/tok.out") $(head -c 200 "$T/tok.err")"
            fi
        done
        check "tokenize $base: $((total - bad))/$total llama.cpp vectors match" test "$bad" -eq 0 -a "$total" -gt 0
    }
    for v in gpt-2 llama-spm bert-bge deepseek-llm qwen2 phi-3 starcoder; do
        [ -f "$V/ggml-vocab-$v.gguf" ] && tok_case "$V/ggml-vocab-$v.gguf" "ggml-vocab-$v.gguf"
    done
    tok_case "$SHARED/fixtures/models/olmoe-tiny.F32.gguf" tiny-bpe
    # BOS follows the metadata; --no-bos drops it
    run "$M" tokenize "$SHARED/fixtures/models/mixtral-256.F16.gguf" "Hello world"
    bos_on=$out
    run "$M" tokenize "$SHARED/fixtures/models/mixtral-256.F16.gguf" --no-bos "Hello world"
    check "tokenize adds BOS 557 per metadata, --no-bos removes it ($bos_on / $out)" \
        test "$bos_on" = "557 $out"
    run "$M" tokenize "$SHARED/fixtures/models/olmoe-tiny.F32.gguf" --pieces "Hello world"
    check "tokenize --pieces prints id<TAB>piece lines" test "$rc" -eq 0 -a -n "$(grep -P '^\d+\t' "$T/out")"
else
    skip "tokenize vs llama.cpp vectors: $SHARED_WHY"
fi
# tokenize on the project's own models: BOS as the metadata says, --no-bos,
# --file byte for byte, --pieces (escaped) concatenating back to the text
tok_own() { # DESC MODEL BOS
    local d=$1 g=$2 bos=$3
    printf 'Gr\xc3\xbc\xc3\x9fe, world!\tline two\n  x = 42 \\ end\r\n\xf0\x9f\x98\x80' >"$T/own.txt"
    run "$M" tokenize "$g" --file "$T/own.txt"
    local with=$out rc1=$rc
    run "$M" tokenize "$g" --no-bos --file "$T/own.txt"
    check "tokenize $d: BOS $bos first, --no-bos drops only it (rc $rc1/$rc)" \
        test "$rc1" -eq 0 -a "$rc" -eq 0 -a -n "$out" -a "$with" = "$bos $out"
    printf '%s' "$out" >"$T/own.ids"
    run "$M" tokenize "$g" --no-bos "Hello world"
    local arg=$out
    printf 'Hello world' >"$T/hw.txt"
    run "$M" tokenize "$g" --no-bos --file "$T/hw.txt"
    check "tokenize $d: TEXT argument and --file give the same ids ($arg)" test "$rc" -eq 0 -a -n "$arg" -a "$out" = "$arg"
    run "$M" tokenize "$g" --no-bos --pieces --file "$T/own.txt"
    check "tokenize $d --pieces: ids as without --pieces, unescaped pieces concatenate to the file" python3 -c '
import re, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", lines[-1]
ids, text = [], b""
esc = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"\\": b"\\"}
for l in lines[:-1]:
    i, piece = l.split(b"\t", 1)
    ids.append(i.decode())
    text += re.sub(rb"\\(x[0-9a-fA-F]{2}|[ntr\\])",
                   lambda m: bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x" else esc[m.group(1)], piece)
assert " ".join(ids) == open(sys.argv[2]).read().strip(), (ids, open(sys.argv[2]).read())
assert text == open(sys.argv[3], "rb").read(), text
' "$T/out" "$T/own.ids" "$T/own.txt"
}
tok_own "on synth olmoe" "$T/olmoe.gguf" 599
tok_own "on the default model" "${MS_SOURCE_DIR:-.}/data/models/default.gguf" 4095

# ------------------------------------------------- dump / generate / ppl
G=$T/olmoe.gguf
printf 'The quick brown fox\nprint(add(2, 3))\\n\n' >"$T/prompts.txt"
run "$M" dump "$G" --prompts "$T/prompts.txt" --out "$T/d" -t 2
check "dump on synth model exits 0 ($err)" test "$rc" -eq 0
check "dump writes JSON in the fixture schema and logits files of n_tokens x n_vocab floats" python3 -c '
import json, os, sys
p = sys.argv[1]
d = json.load(open(p + ".json"))
assert d["n_vocab"] == 600 and d["n_expert"] == 8 and len(d["prompts"]) == 2
for i, pr in enumerate(d["prompts"]):
    n = len(pr["tokens"])
    assert pr["tokens"][0] == 599                       # add_bos true
    assert len(pr["routing"]) == 2
    for r in pr["routing"]:
        assert len(r["experts"]) == n and len(r["experts"][0]) == 2 and len(r["probs"][0]) == 8
        assert abs(sum(r["probs"][0]) - 1) < 1e-4
    assert os.path.getsize(p + ".p%d.f32" % i) == n * 600 * 4
assert d["prompts"][1]["text"] == "print(add(2, 3))\n"
' "$T/d"

printf 'fine\nbad \\q escape\n' >"$T/badesc.txt"
run "$M" dump "$G" --prompts "$T/badesc.txt" --out "$T/e"
check "dump with an unknown escape: exit 1, one line naming FILE:2 ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "$T/badesc.txt:2:" "$T/err")"
printf 'fine\n\xff\xfe not utf-8\n' >"$T/badutf.txt"
run "$M" dump "$G" --prompts "$T/badutf.txt" --out "$T/e"
check "dump with a non-UTF-8 prompt: exit 1, one line naming FILE:2 ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "$T/badutf.txt:2:" "$T/err")"

run "$M" generate "$G" -p "The students" -n 16 -t 2
g1=$out
run "$M" generate "$G" -p "The students" -n 16 -t 2
check "generate greedy twice gives identical text" test "$rc" -eq 0 -a "$out" = "$g1"
check "generate produced text" test -n "$g1"
run "$M" generate "$G" -p "The students" -n 16 --temp 1.0 --seed 5
s5=$out
run "$M" generate "$G" -p "The students" -n 16 --temp 1.0 --seed 5
check "generate --seed 5 twice gives identical text" test "$rc" -eq 0 -a "$out" = "$s5"
run "$M" generate "$G" -p "The students" -n 16 --temp 1.0 --seed 6
check "generate --seed 6 differs from --seed 5" test "$rc" -eq 0 -a "$out" != "$s5"
run "$M" generate "$G" -p "The students" -n 16 --silence '*:0-3'
check "generate --silence '*:0-3' changes the output" test "$rc" -eq 0 -a "$out" != "$g1"
run "$M" generate "$G" -p "The students" -n 16 --top-k 1
check "generate --top-k 1 changes the output" test "$rc" -eq 0 -a "$out" != "$g1"
run "$M" generate "$G" -p "The students" -n 16 --ser 1:0
check "generate --ser 1:0 (T = 0) gives the plain output" test "$rc" -eq 0 -a "$out" = "$g1"
run "$M" generate "$G" -p "The students" -n 4 --ser 1:1 --routing
check "generate --ser 1:1 --routing: one nonzero weight per layer and token" python3 -c '
import sys
rows = [l for l in open(sys.argv[1], encoding="latin-1") if "| L0:" in l]
assert rows
for l in rows:
    for seg in l.split("| L")[1:]:
        ws = [float(x.rsplit(":", 1)[1]) for x in seg.split(":", 1)[1].split()]
        assert sum(w != 0 for w in ws) == 1, seg
' "$T/out"
run "$M" generate "$G" -p "The students" -n 4 --ser 1:1.5
check "--ser with T outside 0..1: usage error, one line naming the spec ($err)" \
    test "$rc" -eq 2 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F -- "--ser 1:1.5" "$T/err")"
run "$M" generate "$G" -p "The students" -n 4 --ser 3:0.5
check "--ser KMIN above the model's k: one line naming ser ($err)" \
    test "$rc" -ne 0 -a "$rc" -lt 128 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "ser" "$T/err")"
printf '# a saved set\nsilence *:0   # comment\n\nser 1:1 ; top-k 1:2\n' >"$T/iv.txt"
run "$M" generate "$G" -p "The students" -n 4 --interventions "$T/iv.txt"
check "--interventions FILE with '#' comments accepted ($err)" test "$rc" -eq 0
printf 'silence *:0\n# fine\nsteer 0:1:abc\n' >"$T/ivbad.txt"
run "$M" generate "$G" -p "The students" -n 4 --interventions "$T/ivbad.txt"
check "--interventions FILE with a bad line 3: one line naming the file and line 3 ($err)" \
    test "$rc" -ne 0 -a "$rc" -lt 128 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "$T/ivbad.txt:3: " "$T/err")"
run "$M" generate "$G" -p "The students" -n 16 --steer '0,1:5:+8' --scale '1:2:0.5'
check "generate --steer/--scale change the output" test "$rc" -eq 0 -a "$out" != "$g1"
run "$M" generate "$G" -p "The students" -n 4 --silence 9:0
check "generate --silence with a layer out of range fails with one line (rc $rc)" \
    test "$rc" -ne 0 -a "$rc" -lt 128 -a "$(wc -l <"$T/err")" -eq 1
run "$M" generate "$G" -p "The students" -n 4 --force 1:1,2,3,4,5
check "--force of more experts than top-k: usage error (exit 2) naming the flag as typed ($err)" \
    eval '[ "$rc" -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qF -- "--force 1:1,2,3,4,5: layer 1: " "$T/err"'
run "$M" generate "$G" -p "The students" -n 4 --routing
check "generate --routing prints a table with both layers" \
    test "$rc" -eq 0 -a -n "$(grep -E '^ +0 +599 .*\| L0:.*\| L1:' "$T/out")"
run "$M" generate "$G" -p "The students" -n 4 --force '*:7' --routing
check "--force '*:7' puts expert 7 first in every routing row" python3 -c '
import re, sys
rows = [l for l in open(sys.argv[1], encoding="latin-1") if "| L0:" in l]  # pieces may be partial UTF-8
assert rows
for l in rows:
    for seg in l.split("| L")[1:]:
        assert seg.split(":", 1)[1].split()[0].startswith("7:"), seg
' "$T/out"

python3 -c '
import sys
words = "the river ran past the old mill and the students wrote notes about water and stone".split()
out = []
for i in range(400):
    out.append(words[(i * 7 + i // 3) % len(words)])
open(sys.argv[1], "w").write(" ".join(out) + "\n")' "$T/text.txt"
run "$M" perplexity "$G" --file "$T/text.txt" --ctx 64 -t 2
check "perplexity prints a finite PPL ($out)" test "$rc" -eq 0 -a -n "$(echo "$out" | grep -E '^PPL = [0-9]+\.[0-9]+ ')"
p1=$(echo "$out" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
run "$M" perplexity "$G" --file "$T/text.txt" --ctx 64 --drop '*:0-7'
p2=$(echo "$out" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
check "perplexity with every expert dropped differs ($p1 vs $p2)" test "$rc" -eq 0 -a -n "$p2" -a "$p1" != "$p2"
# nothing runs past the model's trained context (the default model's is 512), as in trace
D=${MS_SOURCE_DIR:-.}/data/models/default.gguf
for i in 1 2 3 4; do cat "$T/text.txt"; done >"$T/long.txt"
run "$M" perplexity "$D" --file "$T/long.txt" --ctx 1000 -t 1
check "perplexity --ctx beyond the context is refused in one line ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "chunks of 1000 tokens are longer than the model's context of 512" "$T/err")"
run "$M" perplexity "$D" --file "$T/long.txt" -t 1
check "perplexity's default chunk is the context's 512 tokens ($out)" test "$rc" -eq 0 -a -n "$(echo "$out" | grep ' ctx = 512 ')"
run "$M" tokenize "$D" --pieces "Hello"
check "tokenize --pieces shows BOS by its vocabulary entry, not as an empty text ($(head -1 "$T/out"))" \
    test "$rc" -eq 0 -a "$(head -1 "$T/out")" = "$(printf '4095\t<|endoftext|>')"
run "$M" generate "$D" -p "Hallo" -n 600 -t 1
check "generate -n beyond the context is refused in one line ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "(+ 600 generated) is longer than the model's context of 512" "$T/err")"
# a bad value is named as typed, and an intervention flag's value is a usage error with the hint
run "$M" generate "$D" -p hi -n -1
check "-n -1 is reported as -n, the name --help shows ($err)" test "$rc" -eq 2 -a "${err#moescope generate: -n: -1 is out of range}" != "$err"
run "$M" generate "$D" -p hi --top-k 0 -t 1
check "--top-k 0: exit 2, one line with the --help hint ($err)" \
    test "$rc" -eq 2 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F -- "--top-k 0: k 0 out of range 1..16 (try moescope generate --help)" "$T/err")"
printf 'silence 1:2\nsilence 9:1\n' >"$T/bad.iv"
run "$M" generate "$D" -p hi --interventions "$T/bad.iv" -t 1
check "an intervention file's error: exit 1, its line named ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "bad.iv:2: " "$T/err")"

run "$M" bench "$G" -p 16 -n 4 -r 2 -t 1 --json
check "bench --json has prefill_tps and decode_tps > 0" python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert d["prefill_tps"] > 0 and d["decode_tps"] > 0, d' "$T/out"
run "$M" bench "$G" -p 16 -n 4 -r 2 -t 1 --observer
check "bench --observer prints the table" test "$rc" -eq 0 -a -n "$(grep -E '\| *pp16 ' "$T/out")"
# where the weights live: a small model is copied by default, --mmap keeps the mapping
check "bench says the weights of a small model are a private copy" grep -q '^weights: a private copy in memory' "$T/out"
run "$M" bench "$G" -p 0 -n 2 -r 1 -t 1 --mmap --json
check "bench --mmap: weights mapped" python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert d["weights"] == "mapped" and d["weights_huge_bytes"] == 0, d' "$T/out"
run "$M" bench "$G" -p 0 -n 2 -r 1 -t 1 --no-mmap --json
check "bench --no-mmap: weights copied" python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert d["weights"] == "copied" and 0 <= d["weights_huge_bytes"] <= d["file_size"], d' "$T/out"
run "$M" generate "$G" -p hello -n 3 --mmap
g1=$(cat "$T/out")
run "$M" generate "$G" -p hello -n 3 --no-mmap
check "generate: the same text mapped and copied" test "$rc" -eq 0 -a -n "$g1" -a "$g1" = "$(cat "$T/out")"

# ------------------------------------------------------- malformed files
bad_case() { # DESC FILE: info/generate/tokenize must exit 1 with one line naming FILE
    local d=$1 f=$2 c
    for c in info generate tokenize; do
        case $c in
        info) run "$M" info "$f" ;;
        generate) run "$M" generate "$f" -p hi -n 2 ;;
        tokenize) run "$M" tokenize "$f" hi ;;
        esac
        local lines
        lines=$(wc -l <"$T/err")
        if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF "moescope $c: $f" "$T/err"; then
            ok "$c on $d: exit 1, one line naming the file"
        else
            nok "$c on $d: rc $rc (want 1), $lines lines: $err"
        fi
    done
}
head -c 2000 "$G" >"$T/truncated-header.gguf"
sz=$(stat -c %s "$G")
head -c $((sz - 1000)) "$G" >"$T/truncated-data.gguf"
python3 -c '
import random, sys
r = random.Random(1234)
open(sys.argv[1], "wb").write(bytes(r.randrange(256) for _ in range(5000)))' "$T/garbage.gguf"
{ printf 'GGUX'; tail -c +5 "$G"; } >"$T/magic.gguf"
: >"$T/empty.gguf"
mkdir -p "$T/dir.gguf"
bad_case "truncated header" "$T/truncated-header.gguf"
bad_case "truncated tensor data" "$T/truncated-data.gguf"
bad_case "random garbage" "$T/garbage.gguf"
bad_case "wrong magic" "$T/magic.gguf"
bad_case "empty file" "$T/empty.gguf"
bad_case "directory" "$T/dir.gguf"
bad_case "missing file" "$T/does-not-exist.gguf"
run "$M" info "$T/truncated-data.gguf"
diag "truncated data: $err"

echo "1..$n"
[ "$failed" -eq 0 ]
