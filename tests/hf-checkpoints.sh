#!/bin/bash
# hf-checkpoints.sh — Hugging Face checkpoint directories through the CLI (TAP):
#  * `info DIR` says the format and the files it read; `tokenize` on DIR, on
#    its tokenizer.json and on the GGUF made from the same model gives the same ids;
#  * sharded weights (model.safetensors.index.json) load, and shards that
#    disagree with the index are refused;
#  * every kind of bad checkpoint (truncated or absurd safetensors header,
#    offsets out of range, overlapping tensors, a missing tensor, a shape
#    config.json contradicts, an unknown model_type, an unsupported dtype,
#    a tokenizer.json of an unsupported model type) exits 1 with one line
#    naming the file at fault.
# Uses a copy of fixtures-hf/olmoe-tiny.F32 (skipped without ../shared).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/mshf.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"
[ -n "$SHARED" ] || skip_all "$SHARED_WHY"
SRC=$SHARED/fixtures-hf/olmoe-tiny.F32
[ -d "$SRC" ] || skip_all "no $SRC"
GG=$SHARED/fixtures/models/olmoe-tiny.F32.gguf

fresh() { rm -rf "$T/ck"; mkdir "$T/ck"; cp "$SRC"/* "$T/ck/"; chmod u+w "$T/ck"/*; }

fresh
run "$M" info "$T/ck"
check "info DIR: exit 0" test "$rc" -eq 0
check "info DIR names the format and files read" grep -q "format: *safetensors (read $T/ck/config.json, $T/ck/model.safetensors, $T/ck/tokenizer.json" "$T/out"
run "$M" info "$T/ck/config.json"
check "info DIR/config.json: exit 0" test "$rc" -eq 0
run "$M" info --json "$T/ck"
check "info --json: format and files" grep -q '"format": "safetensors"' "$T/out"
TEXT="Hello world, it's 2026 and the experts route tokens."
run "$M" tokenize "$GG" "$TEXT"; ids_gguf=$out
run "$M" tokenize "$T/ck" "$TEXT"; ids_dir=$out
check "tokenize DIR = tokenize GGUF ($ids_dir)" test -n "$ids_dir" -a "$ids_dir" = "$ids_gguf"
run "$M" tokenize "$T/ck/tokenizer.json" "$TEXT"
check "tokenize tokenizer.json = tokenize GGUF" test "$out" = "$ids_gguf"
run "$M" generate "$T/ck" -p "Hello" -n 3 --seed 1
gen_dir=$out
run "$M" generate "$GG" -p "Hello" -n 3 --seed 1
check "generate DIR = generate GGUF" test -n "$gen_dir" -a "$gen_dir" = "$out"

# sharded: the same file as the only shard, with an index
fresh
mv "$T/ck/model.safetensors" "$T/ck/model-00001-of-00001.safetensors"
"$PY" - "$T/ck" <<'PY'
import json, struct, sys
d = sys.argv[1]
b = open(d + "/model-00001-of-00001.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
wm = {k: "model-00001-of-00001.safetensors" for k in h if k != "__metadata__"}
json.dump({"metadata": {}, "weight_map": wm}, open(d + "/model.safetensors.index.json", "w"))
PY
run "$M" info "$T/ck"
check "sharded checkpoint loads (index + shard)" test "$rc" -eq 0

bad() { # DESC FILE-NAMED-IN-ERROR: info must exit 1 with one line naming it
    local d=$1 f=$2 lines
    run "$M" info "$T/ck"
    lines=$(wc -l <"$T/err")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF "$f" "$T/err"; then
        ok "$d: exit 1, one line naming $(basename "$f")"
        diag "$err"
    else
        nok "$d: rc $rc (want 1), $lines lines, want $f: $err"
    fi
}
"$PY" - "$T/ck" <<'PY'
import json, sys
d = sys.argv[1]
ix = json.load(open(d + "/model.safetensors.index.json"))
ix["weight_map"]["model.layers.0.mlp.gate.weight"] = "model-00002-of-00002.safetensors"
json.dump(ix, open(d + "/model.safetensors.index.json", "w"))
PY
bad "index names a missing shard" "$T/ck/model.safetensors.index.json"

# two real shards (tensors split alternately, each shard with its own
# header): same generation as the GGUF
fresh
"$PY" - "$T/ck" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
b = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
names = sorted(k for k in h if k != "__metadata__")
wm = {}
for s in range(2):
    fn = "model-%05d-of-00002.safetensors" % (s + 1)
    nh, out = {"__metadata__": {"format": "pt"}}, b""
    for k in names[s::2]:
        a, e = h[k]["data_offsets"]
        nh[k] = {"dtype": h[k]["dtype"], "shape": h[k]["shape"], "data_offsets": [len(out), len(out) + e - a]}
        out += data[a:e]; wm[k] = fn
    hj = json.dumps(nh).encode(); hj += b" " * (-len(hj) % 8)
    open(os.path.join(d, fn), "wb").write(struct.pack("<Q", len(hj)) + hj + out)
os.remove(d + "/model.safetensors")
json.dump({"metadata": {"total_size": len(data)}, "weight_map": wm}, open(d + "/model.safetensors.index.json", "w"))
PY
run "$M" generate "$T/ck" -p "Hello" -n 3 --seed 1
check "two shards: generate = GGUF" test -n "$out" -a "$out" = "$gen_dir"
run "$M" info "$T/ck"
check "two shards: info lists both files" grep -q "model-00001-of-00002.safetensors, .*model-00002-of-00002.safetensors" "$T/out"
"$PY" - "$T/ck" <<'PY'
import json, sys
d = sys.argv[1]
ix = json.load(open(d + "/model.safetensors.index.json"))
k = sorted(ix["weight_map"])[0]
ix["weight_map"][k] = "model-00002-of-00002.safetensors" if ix["weight_map"][k].startswith("model-00001") else "model-00001-of-00002.safetensors"
json.dump(ix, open(d + "/model.safetensors.index.json", "w"))
PY
run "$M" info "$T/ck"
check "two shards: a tensor in the other shard than the index says is refused naming the shard ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F "of-00002.safetensors: tensor" "$T/err")$(grep -F "of-00001.safetensors: tensor" "$T/err")"


# edit DIR/model.safetensors with a Python snippet
st_edit() {
    fresh
    "$PY" - "$T/ck/model.safetensors" "$1" <<'PY'
import json, struct, sys
p, what = sys.argv[1], sys.argv[2]
b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(bytes(b[8:8 + n]))
data = b[8 + n:]
names = sorted(k for k in h if k != "__metadata__")
def write(h, data, n_override=None):
    hj = json.dumps(h).encode()
    hj += b" " * (-len(hj) % 8)
    open(p, "wb").write(struct.pack("<Q", n_override if n_override is not None else len(hj)) + hj + bytes(data))
if what == "truncate":
    open(p, "wb").write(bytes(b[:len(b) - 100]))
elif what == "absurd":
    open(p, "wb").write(struct.pack("<Q", 1 << 62) + bytes(b[8:]))
elif what == "short":
    open(p, "wb").write(bytes(b[:5]))
elif what == "json":
    i = bytes(b[8:8 + n]).index(b'"dtype":') + 8 + 7
    b[i] = ord("@"); open(p, "wb").write(bytes(b))
elif what == "offsets":
    h[names[0]]["data_offsets"] = [len(data), len(data) + 4 * 64 * 64]; write(h, data)
elif what == "overlap":
    o = h[names[1]]["data_offsets"]; sz = o[1] - o[0]
    h[names[1]]["data_offsets"] = [o[0] - 4, o[1] - 4]; write(h, data)
elif what == "missing":
    del h["model.layers.1.mlp.gate.weight"]
    # keep the data section tiled: drop that tensor's bytes too
    write(h, data)
elif what == "dtype":
    h[names[0]]["dtype"] = "I32"; write(h, data)
PY
}
st_edit truncate; bad "truncated model.safetensors" "$T/ck/model.safetensors"
st_edit absurd; bad "absurd header length" "$T/ck/model.safetensors"
st_edit short; bad "file shorter than the header length field" "$T/ck/model.safetensors"
st_edit json; bad "corrupt header JSON" "$T/ck/model.safetensors"
st_edit offsets; bad "data_offsets out of range" "$T/ck/model.safetensors"
st_edit overlap; bad "overlapping tensors" "$T/ck/model.safetensors"
st_edit missing; bad "a tensor dropped from the header" "$T/ck/model.safetensors"
st_edit dtype; bad "unsupported dtype I32" "$T/ck/model.safetensors"

cfg_edit() { # PYTHON-EXPR on c (config.json as a dict)
    fresh
    "$PY" - "$T/ck/$2" "$1" <<'PY'
import json, sys
p, expr = sys.argv[1], sys.argv[2]
c = json.load(open(p))
exec(expr)
json.dump(c, open(p, "w"))
PY
}
cfg_edit 'c["hidden_size"] = 32' config.json; bad "hidden_size contradicting the tensors" "$T/ck/model.safetensors"
cfg_edit 'c["model_type"] = "llama4_text"' config.json; bad "unknown model_type" "$T/ck/config.json"
cfg_edit 'del c["num_experts"]' config.json; bad "missing num_experts" "$T/ck/config.json"
cfg_edit 'c["model"]["type"] = "Unigram"' tokenizer.json; bad "tokenizer.json of model type Unigram" "$T/ck/tokenizer.json"
fresh; rm "$T/ck/config.json"; bad "no config.json" "$T/ck/config.json"
fresh; rm "$T/ck/model.safetensors"; bad "no weights" "$T/ck"
fresh; printf '{"model": ' >"$T/ck/tokenizer.json"; bad "truncated tokenizer.json" "$T/ck/tokenizer.json"
cfg_edit 'c["pre_tokenizer"] = {"type": "Whitespace"}' tokenizer.json
bad "tokenizer.json with a Whitespace pre-tokenizer" "$T/ck/tokenizer.json"
cfg_edit 'c["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}' tokenizer.json
bad "tokenizer.json with a Lowercase normalizer" "$T/ck/tokenizer.json"

# a pre-tokenizer without a llama.cpp equivalent (Digits before ByteLevel) and
# a Sequence of NFC: runs with the file's semantics, convert refuses it
cfg_edit 'c["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]}; c["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}' tokenizer.json
run "$M" tokenize "$T/ck" "x 12345"
ndig=$(echo "$out" | wc -w)
run "$M" tokenize "$GG" "x 12345"
check "Digits(individual) splits digits one by one ($ndig ids vs $(echo "$out" | wc -w) in the GGUF)" test "$ndig" -eq 7
run "$M" convert "$T/ck" "$T/nope.gguf"
check "convert refuses a tokenizer without a llama.cpp equivalent (one line, no file): $err" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a ! -e "$T/nope.gguf"

# BF16 weights: the checkpoint as BF16 (rounded to nearest even) loads, and
# gives exactly what the GGUF converted from it gives
fresh
"$PY" - "$T/ck" <<'PY'
import json, struct, sys
d = sys.argv[1]
b = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
out, nh = b"", {}
for k in sorted(x for x in h if x != "__metadata__"):
    a, e = h[k]["data_offsets"]
    f = struct.unpack("<%dI" % ((e - a) // 4), data[a:e])
    bf = struct.pack("<%dH" % len(f), *[((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF for x in f])
    nh[k] = {"dtype": "BF16", "shape": h[k]["shape"], "data_offsets": [len(out), len(out) + len(bf)]}
    out += bf
hj = json.dumps(nh).encode(); hj += b" " * (-len(hj) % 8)
open(d + "/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + out)
c = json.load(open(d + "/config.json")); c["torch_dtype"] = "bfloat16"; json.dump(c, open(d + "/config.json", "w"))
PY
run "$M" info "$T/ck"
check "BF16 checkpoint loads, weights BF16" grep -q "BF16" "$T/out"
run "$M" convert "$T/ck" "$T/bf16.gguf"
run "$M" generate "$T/ck" -p "Hello there" -n 4 --seed 3
gdir=$out
run "$M" generate "$T/bf16.gguf" -p "Hello there" -n 4 --seed 3
check "BF16 checkpoint = its converted GGUF ($gdir)" test -n "$gdir" -a "$gdir" = "$out"

mkdir -p "$T/empty"
run "$M" tokenize "$T/empty" hi
check "tokenize on a directory without tokenizer.json: exit 1 naming it" grep -q "$T/empty/tokenizer.json" "$T/err"

# convert: each fixtures-hf directory to F32 (mixtral-256: F16, and its own
# types) reproduces the original fixture's tensors bit for bit
for d in "$SHARED"/fixtures-hf/*/; do
    name=$(basename "$d")
    src=$SHARED/fixtures/models/$name.gguf
    [ -f "$src" ] || src=$SHARED/fixtures2/models/$name.gguf
    case $name in *.F16) types="F16 auto" ;; *) types="F32" ;; esac
    for ty in $types; do
        run "$M" convert "$d" "$T/conv.gguf" --type "$ty"
        check "convert $name --type $ty: exit 0" test "$rc" -eq 0
        pycheck "$src" "$T/conv.gguf" "$name --type $ty" <<'PY'
import struct, sys
def read(p):
    f = open(p, "rb"); b = f.read()
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
    ts = []
    for _ in range(nt):
        n = s(); nd = u32(); ne = [u64() for _ in range(nd)]; ty = u32(); off = u64(); ts.append((n, ne, ty, off))
    ds = o + (-o % align)
    offs = sorted(t[3] for t in ts) + [len(b) - ds]
    out = {}
    for n, ne, ty, off in ts:
        end = min(x for x in offs if x > off) if any(x > off for x in offs) else len(b) - ds
        nel = 1
        for x in ne: nel *= x
        size = nel * {0: 4, 1: 2, 30: 2}.get(ty, 0) if ty in (0, 1, 30) else end - off   # F32, F16, BF16: exact
        out[n] = (ne, ty, b[ds + off: ds + off + size])
    return out
a, c = read(sys.argv[1]), read(sys.argv[2])
what = sys.argv[3]
bad = [n for n in a if n not in c or a[n] != c[n]]
extra = [n for n in c if n not in a]
print(("ok" if not bad and not extra and a else "not ok") + " - convert %s: %d tensors bit-identical to the fixture (differing %s, extra %s)" % (what, len(a), bad[:3], extra[:3]))
PY
    done
done
run "$M" convert "$T/nonexistent" "$T/out.gguf"
check "convert of a missing directory: exit 1, no output file" test "$rc" -eq 1 -a ! -e "$T/out.gguf"
run "$M" convert "$SHARED/fixtures-hf/olmoe-tiny.F32" "$T/no-such-dir/out.gguf"
check "convert into a missing directory: exit 1, one line ($err)" test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1
run "$M" convert "$SHARED/fixtures-hf/olmoe-tiny.F32" "$T/x.gguf" --type Q9_9
check "convert --type Q9_9: usage error" test "$rc" -eq 2 -a ! -e "$T/x.gguf"
run "$M" convert "$SHARED/fixtures-hf/olmoe-tiny.F32" "$T/q.gguf" --type Q8_0
run2=$rc
run "$M" info "$T/q.gguf"
check "convert --type Q8_0 gives a loadable Q8_0 model" test "$run2" -eq 0 -a "$rc" -eq 0
check "  whose weights are Q8_0" grep -q "Q8_0" "$T/out"

echo "1..$n"
[ "$failed" -eq 0 ]
