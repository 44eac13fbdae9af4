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

cat >"$T/gguf.py" <<'PY'
import struct
def read(p):
    """(header bytes up to the tensor infos, alignment, [(name, ne, type, bytes)])"""
    b = open(p, "rb").read()
    o = 4
    def u32():
        nonlocal o; v = struct.unpack_from("<I", b, o)[0]; o += 4; return v
    def u64():
        nonlocal o; v = struct.unpack_from("<Q", b, o)[0]; o += 8; return v
    def s():
        n = u64(); nonlocal o; v = b[o:o + n]; o += n; return v.decode()
    SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def skip(t):
        nonlocal o
        if t == 8: s()
        elif t == 9:
            et = u32(); n = u64()
            for _ in range(n): skip(et)
        else: o += SZ[t]
    ver = u32(); nt = u64(); nkv = u64(); align = 32
    for _ in range(nkv):
        k = s(); t = u32()
        if k == "general.alignment": align = struct.unpack_from("<I", b, o)[0]
        skip(t)
    head = b[:o]
    infos = []
    for _ in range(nt):
        n = s(); nd = u32(); ne = [u64() for _ in range(nd)]; ty = u32(); off = u64(); infos.append((n, ne, ty, off))
    ds = o + (-o % align)
    BS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 39: (32, 17)}   # F32 F16 BF16 Q8_0 MXFP4
    out = []
    for n, ne, ty, off in infos:
        nel = 1
        for x in ne: nel *= x
        blk, bsz = BS[ty]
        out.append((n, ne, ty, b[ds + off: ds + off + nel // blk * bsz]))
    return head, align, out

def write(p, head, align, ts):
    o = bytearray(head)
    off = 0
    offs = []
    for n, ne, ty, data in ts:
        off += -off % align
        offs.append(off); off += len(data)
    for (n, ne, ty, data), of in zip(ts, offs):
        nb = n.encode()
        o += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne)
        o += struct.pack("<IQ", ty, of)
    o += b"\0" * (-len(o) % align)
    base = len(o)
    for (n, ne, ty, data), of in zip(ts, offs):
        o += b"\0" * (base + of - len(o)); o += data
    open(p, "wb").write(bytes(o))

def hf_blocks(data, rows, nb):
    """ggml MXFP4 rows (17-byte blocks) -> HF blocks (rows, nb, 16) and scales (rows, nb)"""
    bl, sc = bytearray(), bytearray()
    for i in range(rows * nb):
        blk = data[17 * i: 17 * i + 17]
        sc.append(blk[0])
        el = [blk[1 + j] & 15 for j in range(16)] + [blk[1 + j] >> 4 for j in range(16)]
        bl += bytes(el[2 * k] | el[2 * k + 1] << 4 for k in range(16))
    return bl, sc
PY

# the twin GGUF and the directory
"$PY" - "$T" "$F32" "$MX" "$SRC" <<'PY'
import json, os, shutil, struct, sys
sys.path.insert(0, sys.argv[1])
import gguf
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
import sys
sys.path.insert(0, sys.argv[1])
import gguf
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
