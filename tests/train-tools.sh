#!/bin/bash
# train-tools.sh — the training pipeline's pieces (TAP): the labelled prompt
# sets under data/prompts, gguf-pack's error handling, and (when Debian's
# python3-torch is installed) a micro training run whose GGUF the engine must
# reproduce: same tokens as the trainer's BPE, logits and experts as PyTorch.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
S=${MS_SOURCE_DIR:?}
P=${MS_BUILD_DIR:?}/gguf-pack
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/mstrain.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"

D=$S/data/prompts
# ---- prompt sets
check "all.jsonl is default + parallel + domains + riskdiff" \
    cmp -s <(cat "$D/default.jsonl" "$D/parallel.jsonl" "$D/domains.jsonl" "$D/riskdiff.jsonl") "$D/all.jsonl"
if [ -x $PY ]; then
    run $PY - "$D/all.jsonl" <<'EOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
err = []
if len(rows) < 200: err.append(f"only {len(rows)} prompts")
groups, rd = collections.defaultdict(list), collections.defaultdict(list)
for i, r in enumerate(rows):
    L = r.get("labels", {})
    if not r.get("text") or not all(k in L for k in ("domain", "language", "class")):
        err.append(f"line {i + 1}: needs text and labels domain, language, class")
    if L.get("language") not in ("en", "de", "fr", "es", "code"): err.append(f"line {i + 1}: language {L.get('language')}")
    if "pair_id" in L: groups[L["pair_id"]].append(L["language"])
    if "set" in L: rd[L["rd_pair"]].append(L["set"])
for g, langs in groups.items():
    if sorted(langs) != ["de", "en", "es", "fr"]: err.append(f"pair {g}: languages {langs}")
for g, sets in rd.items():
    if sorted(sets) != ["a", "b"]: err.append(f"risk pair {g}: sets {sets}")
if len(groups) < 30 or len(rd) < 20: err.append(f"{len(groups)} parallel groups, {len(rd)} risk pairs")
print("\n".join(err))
sys.exit(1 if err else 0)
EOF
    check "prompt labels: >= 200 prompts, complete en/de/fr/es pair groups, a/b risk pairs" test "$rc" -eq 0
    [ "$rc" -eq 0 ] || sed 's/^/# /' "$T/out"
else
    skip "no /usr/bin/python3"
fi
"$M" synth --arch olmoe --layers 1 --embd 32 --heads 2 --experts 4 --used 2 --ff 32 --vocab 300 --type F32 \
    "$T/s.gguf" >/dev/null 2>&1 || { echo "Bail out! synth failed"; exit 1; }
for f in default parallel domains riskdiff all; do
    run "$M" dump "$T/s.gguf" --prompts "$D/$f.jsonl" --out "$T/d-$f" -t 1
    check "moescope reads data/prompts/$f.jsonl" test "$rc" -eq 0
done

# ---- gguf-pack errors: exit 1, one line naming the file, no output left behind
run "$P"
check "gguf-pack without arguments: usage (2)" test "$rc" -eq 2
printf '{"kv": [], "tensors": [' > "$T/bad.json"
: > "$T/empty.f32"
run "$P" "$T/bad.json" "$T/empty.f32" "$T/o.gguf"
check "gguf-pack: malformed JSON is one line naming the file" \
    test "$rc" -eq 1 -a "$(wc -l < "$T/err")" -eq 1 -a -n "$(grep -F "$T/bad.json" "$T/err")" -a ! -e "$T/o.gguf"
printf '{"kv": [{"key": "general.architecture", "type": "str", "value": "olmoe"}], "tensors": [{"name": "a", "type": "F32", "ne": [4, 2], "offset": 0}]}' > "$T/far.json"
head -c 16 /dev/zero > "$T/short.f32"
run "$P" "$T/far.json" "$T/short.f32" "$T/o.gguf"
check "gguf-pack: tensor beyond the data file is refused" \
    test "$rc" -eq 1 -a -n "$(grep 'outside the data file' "$T/err")" -a ! -e "$T/o.gguf"
sed 's/"F32"/"Q8_0"/' "$T/far.json" > "$T/blk.json"
head -c 32 /dev/zero > "$T/ok.f32"
run "$P" "$T/blk.json" "$T/ok.f32" "$T/o.gguf"
check "gguf-pack: ne0 not a multiple of the quant block is refused" \
    test "$rc" -eq 1 -a -n "$(grep 'block size' "$T/err")" -a ! -e "$T/o.gguf"
sed 's/"type": "str"/"type": "nope"/' "$T/far.json" > "$T/kv.json"
run "$P" "$T/kv.json" "$T/ok.f32" "$T/o.gguf"
check "gguf-pack: unknown metadata type is refused in one line" \
    test "$rc" -eq 1 -a "$(wc -l < "$T/err")" -eq 1 -a -n "$(grep 'unknown kv type nope' "$T/err")" -a ! -e "$T/o.gguf"
run "$P" "$T/far.json" "$T/ok.f32" "$T/o.gguf"
run "$M" info "$T/o.gguf"
check "gguf-pack output is a GGUF the engine opens (and rejects as a model, one line)" \
    test -s "$T/o.gguf" -a "$rc" -ne 0 -a "$(wc -l < "$T/err")" -eq 1

# ---- micro training run: corpus -> BPE -> train -> gguf-pack -> engine agreement
if ! $PY -c 'import torch, regex, numpy' 2>/dev/null; then
    skip "python3-torch/python3-regex not installed (tools/corpus/install-deps.sh): no micro training run"
    echo "1..$n"
    [ "$failed" -eq 0 ]
    exit
fi
mkdir -p "$T/c/train" "$T/c/heldout"
$PY - "$D/all.jsonl" "$T/c" <<'EOF'
import json, sys
rows = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8")]
by = {}
for i, r in enumerate(open(sys.argv[1], encoding="utf-8")):
    by.setdefault(json.loads(r)["labels"]["language"], []).append(rows[i])
for lang, texts in by.items():
    with open(f"{sys.argv[2]}/train/{lang}.jsonl", "w", encoding="utf-8") as f:
        for t in texts[1:]: f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    with open(f"{sys.argv[2]}/heldout/{lang}.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"text": texts[0]}, ensure_ascii=False) + "\n")
EOF
TR="$S/tools/train"
args=(--corpus "$T/c" --gguf-pack "$P" --vocab 400 --layers 2 --embd 32 --heads 2 --experts 4 --top-k 2
      --ff 32 --ctx 32 --batch 4 --steps 12 --warmup 4 --eval-tokens 200 --type F32 --threads 1 --seed 7)
run $PY "$TR/train_moe.py" "${args[@]}" --out "$T/r1"
check "micro training run writes a GGUF" test "$rc" -eq 0 -a -s "$T/r1/model.gguf"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err" | tail -5
run $PY "$TR/train_moe.py" "${args[@]}" --out "$T/r2"
check "training is deterministic given the seed (identical GGUF)" cmp -s "$T/r1/model.gguf" "$T/r2/model.gguf"
run "$M" info "$T/r1/model.gguf"
check "moescope info: olmoe, 4 experts, 2 used, gpt2 tokenizer" \
    test "$rc" -eq 0 -a -n "$(grep 'arch: *olmoe' "$T/out")" -a -n "$(grep '4 routed, 2 used' "$T/out")" \
    -a -n "$(grep 'gpt2 (pre olmo)' "$T/out")"
run $PY "$TR/check_gguf.py" --ckpt "$T/r1/model.pt" --gguf "$T/r1/model.gguf" --moescope "$M" --type F32
check "F32 GGUF: engine tokens, logits (2e-3) and experts match PyTorch" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/out" | tail -4
run $PY "$TR/train_moe.py" --export "$T/r1/model.pt" --out "$T/q8" --gguf-pack "$P" --type Q8_0
run $PY "$TR/check_gguf.py" --ckpt "$T/r1/model.pt" --gguf "$T/q8/model.gguf" --moescope "$M" --type Q8_0
check "Q8_0 GGUF: engine matches PyTorch with Q8_0 rounding emulated" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/out" | tail -4
# the check must be able to fail: a perturbed checkpoint has to be reported
$PY - "$T/r1/model.pt" "$T/bad.pt" <<'EOF'
import sys, torch
ck = torch.load(sys.argv[1])
ck["state"]["blocks.1.w_down"] += 0.05
torch.save(ck, sys.argv[2])
EOF
run $PY "$TR/check_gguf.py" --ckpt "$T/bad.pt" --gguf "$T/r1/model.gguf" --moescope "$M" --type F32
check "the check reports a model that differs from its GGUF" test "$rc" -eq 1 -a -n "$(grep MISMATCH "$T/out")"
echo "1..$n"
[ "$failed" -eq 0 ]
