#!/bin/bash
# hf-mxfp4.sh — gpt-oss's original checkpoint layout, experts as MXFP4
# (`mlp.experts.{gate_up,down}_proj_{blocks,scales}`, U8), through the CLI (TAP).
# The directory is written here: the non-expert tensors, config and tokenizer
# of fixtures-hf/gpt-oss-tiny.F32, the experts taken as MXFP4 from
# fixtures2's gpt-oss-tiny.MXFP4_MOE.gguf and packed the way the hub
# checkpoint packs them (gate/up interleaved by row, elements 2k/2k+1 in the
# low/high nibble of byte k, one E8M0 scale byte a block).  Its GGUF twin is
# gpt-oss-tiny.F32.gguf with those same MXFP4 expert tensors put in.  Checks:
#  * the directory loads with MXFP4 experts (not dequantised) and `dump` gives
#    byte-identical tokens, routing and logits to the twin GGUF;
#  * `convert DIR` (types kept) writes expert tensors bit-identical to the
#    MXFP4_MOE fixture's;
#  * blocks or scales of the wrong shape or dtype: one-line error naming the file.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/msmx.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"
[ -n "$SHARED" ] || skip_all "$SHARED_WHY"
SRC=$SHARED/fixtures-hf/gpt-oss-tiny.F32
F32=$SHARED/fixtures2/models/gpt-oss-tiny.F32.gguf
MX=$SHARED/fixtures2/models/gpt-oss-tiny.MXFP4_MOE.gguf
for f in "$SRC" "$F32" "$MX"; do [ -e "$f" ] || skip_all "no $f"; done
export TESTDIR=$(cd "$(dirname "$0")" && pwd)   # gguf_tiny.py


# the twin GGUF and the directory
"$PY" - "$T" "$F32" "$MX" "$SRC" <<'PY'
import json, os, shutil, struct, sys
sys.path.insert(0, os.environ["TESTDIR"])
import gguf_tiny as gguf
T, f32, mx, src = sys.argv[1:5]
head, align, ts = gguf.read(f32)
_, _, tm = gguf.read(mx)
mxd = {n: (ne, ty, d) for n, ne, ty, d in tm}
twin = []
for n, ne, ty, d in ts:
    if n.endswith("_exps.weight"):
        assert mxd[n][1] == 39, n
        twin.append((n, mxd[n][0], 39, mxd[n][2]))
    else:
        twin.append((n, ne, ty, d))
gguf.write(T + "/twin.gguf", head, align, twin)

ck = T + "/ck"
os.mkdir(ck)
for f in os.listdir(src):
    shutil.copy(src + "/" + f, ck + "/" + f)
    os.chmod(ck + "/" + f, 0o644)
b = open(ck + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
c = json.load(open(ck + "/config.json"))
NE, E, F = c["num_local_experts"], c["hidden_size"], c["intermediate_size"]
tensors = {}
for k, v in h.items():
    if k == "__metadata__" or k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj"): continue
    a, e = v["data_offsets"]; tensors[k] = (v["dtype"], v["shape"], data[a:e])
for il in range(c["num_hidden_layers"]):
    g = mxd["blk.%d.ffn_gate_exps.weight" % il][2]; u = mxd["blk.%d.ffn_up_exps.weight" % il][2]
    d = mxd["blk.%d.ffn_down_exps.weight" % il][2]
    row = E // 32 * 17
    gu = b"".join(g[(e * F + f) * row:(e * F + f + 1) * row] + u[(e * F + f) * row:(e * F + f + 1) * row]
                  for e in range(NE) for f in range(F))   # rows interleaved: gate, up, gate, up ...
    bl, sc = gguf.hf_blocks(gu, NE * 2 * F, E // 32)
    p = "model.layers.%d.mlp.experts." % il
    tensors[p + "gate_up_proj_blocks"] = ("U8", [NE, 2 * F, E // 32, 16], bytes(bl))
    tensors[p + "gate_up_proj_scales"] = ("U8", [NE, 2 * F, E // 32], bytes(sc))
    bl, sc = gguf.hf_blocks(d, NE * E, F // 32)
    tensors[p + "down_proj_blocks"] = ("U8", [NE, E, F // 32, 16], bytes(bl))
    tensors[p + "down_proj_scales"] = ("U8", [NE, E, F // 32], bytes(sc))
out, nh = b"", {"__metadata__": {"format": "pt"}}
for k in sorted(tensors):
    dt, sh, raw = tensors[k]
    nh[k] = {"dtype": dt, "shape": sh, "data_offsets": [len(out), len(out) + len(raw)]}
    out += raw
hj = json.dumps(nh).encode(); hj += b" " * (-len(hj) % 8)
open(ck + "/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + out)
c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn",
                            "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
json.dump(c, open(ck + "/config.json", "w"), indent=1)
PY
check "the MXFP4 directory and its twin GGUF are written" test -s "$T/ck/model.safetensors" -a -s "$T/twin.gguf"

run "$M" info "$T/ck"
check "info DIR: exit 0 ($err)" test "$rc" -eq 0
check "  experts are MXFP4 (kept, not dequantised)" grep -q "MXFP4" "$T/out"

printf 'Hello there, how are you?\nThe capital of France is\n1 + 1 = 2, 2 + 2 =\n' >"$T/prompts.txt"
run "$M" dump "$T/ck" --prompts "$T/prompts.txt" --out "$T/dir" -t 1
check "dump DIR: exit 0 ($err)" test "$rc" -eq 0
run "$M" dump "$T/twin.gguf" --prompts "$T/prompts.txt" --out "$T/gguf" -t 1
check "dump twin GGUF: exit 0 ($err)" test "$rc" -eq 0
pycheck "$T/dir.json" "$T/gguf.json" <<'PY'
import json, sys
def load(p):
    j = json.load(open(p))
    j.pop("model", None)   # the model's path and the logits files' names differ, nothing else may
    for q in j.get("prompts", []): q.pop("logits", None)
    return j
a, b = load(sys.argv[1]), load(sys.argv[2])
n = sum(len(q.get("tokens", [])) for q in a.get("prompts", []))
print(("ok" if a == b and n > 0 else "not ok") + " - tokens, selected experts, weights and router probabilities identical (%d tokens)" % n)
PY
same=1
for i in 0 1 2; do cmp -s "$T/dir.p$i.f32" "$T/gguf.p$i.f32" || same=0; done
check "logits bit-identical at every position of the 3 prompts" test "$same" -eq 1 -a -s "$T/dir.p0.f32"

run "$M" convert "$T/ck" "$T/conv.gguf"
check "convert DIR (types kept): exit 0 ($err)" test "$rc" -eq 0
pycheck "$T" "$MX" "$T/conv.gguf" <<'PY'
import os, sys
sys.path.insert(0, os.environ["TESTDIR"])
import gguf_tiny as gguf
a = {n: (ne, ty, d) for n, ne, ty, d in gguf.read(sys.argv[2])[2] if n.endswith("_exps.weight")}
c = {n: (ne, ty, d) for n, ne, ty, d in gguf.read(sys.argv[3])[2]}
bad = [n for n in a if c.get(n) != a[n]]
print(("ok" if a and not bad else "not ok") + " - convert DIR: %d MXFP4 expert tensors bit-identical to the MXFP4_MOE fixture's (differing %s)" % (len(a), bad[:3]))
PY

# bad MXFP4 checkpoints
edit() {   # edit EXPR: rewrite one tensor entry of a fresh copy's header (same data size)
    rm -rf "$T/bad"; cp -r "$T/ck" "$T/bad"
    "$PY" - "$T/bad/model.safetensors" "$1" <<'PY'
import json, struct, sys
p, expr = sys.argv[1], sys.argv[2]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
exec(expr)
hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
PY
}
bad() {
    run "$M" info "$T/bad"
    check "$1: exit 1, one line naming the file ($err)" \
        test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "$T/bad/model.safetensors" "$T/err")"
}
edit 'k = "model.layers.0.mlp.experts.gate_up_proj_scales"; s = h[k]["shape"]; h[k]["shape"] = [s[0], s[1] * s[2], 1]'
bad "gate_up_proj_scales of the wrong shape"
edit 'k = "model.layers.0.mlp.experts.down_proj_blocks"; h[k]["dtype"] = "I8"'
bad "down_proj_blocks of dtype I8"
edit 'k = "model.layers.1.mlp.experts.down_proj_bias"; s = h[k]["shape"]; h[k]["dtype"] = "U8"; h[k]["shape"] = [s[0], s[1] * 4]'
bad "a U8 bias"

echo "1..$n"
[ "$failed" -eq 0 ]
