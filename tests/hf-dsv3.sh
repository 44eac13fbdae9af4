#!/bin/bash
# hf-dsv3.sh — the DeepSeek-V3 layout (`model_type: deepseek_v3`) from a
# Hugging Face directory, through the CLI (TAP).  There is no HF fixture for
# it, so the directory is written here from fixtures-dsv3's dsv3-tiny.F32.gguf
# in the hub's layout: per-expert `mlp.experts.N.{gate,up,down}_proj`,
# `mlp.shared_experts.*`, `mlp.gate.e_score_correction_bias`, q LoRA,
# `self_attn.kv_a_proj_with_mqa`, and `kv_b_proj` un-absorbed as HF stores it
# (per head: qk_nope key rows, then v_head_dim value rows; llama.cpp's
# converter splits it into attn_k_b / attn_v_b), config.json with n_group /
# topk_group, routed_scaling_factor, first_k_dense_replace, scoring_func
# sigmoid, topk_method noaux_tc.  The tokenizer files are fixtures-hf's
# deepseek2-tiny ones (the same tiny BPE, BOS added).  Checks:
#  * `dump` of the directory gives tokens, routing and logits bit-identical to
#    the GGUF's (whose conformance with llama.cpp test-conformance checks, so
#    the same rules hold for the directory);
#  * `convert DIR` gives back every tensor of the GGUF bit for bit;
#  * a deepseek_v3 directory without e_score_correction_bias is refused.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/msds.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"
[ -n "$SHARED" ] || skip_all "$SHARED_WHY"
GG=$SHARED/fixtures-dsv3/models/dsv3-tiny.F32.gguf
TOK=$SHARED/fixtures-hf/deepseek2-tiny.F32
for f in "$GG" "$TOK/tokenizer.json"; do [ -e "$f" ] || skip_all "no $f"; done
export TESTDIR=$(cd "$(dirname "$0")" && pwd)   # gguf_tiny.py

"$PY" - "$T/ck" "$GG" "$TOK" <<'PY'
import json, os, shutil, struct, sys
sys.path.insert(0, os.environ["TESTDIR"])
import gguf_tiny as gguf
ck, gg, tok = sys.argv[1:4]
os.mkdir(ck)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(tok + "/" + f, ck + "/" + f); os.chmod(ck + "/" + f, 0o644)
_, _, ts = gguf.read(gg)
kv = gguf.read.kv
A = "deepseek2."
g = lambda k: kv[A + k]
E, L, nH = g("embedding_length"), g("block_count"), g("attention.head_count")
NE, kvr, rope = g("expert_count"), g("attention.kv_lora_rank"), g("rope.dimension_count")
nope, vd = g("attention.key_length_mla") - rope, g("attention.value_length_mla")
T = {n: (ne, ty, d) for n, ne, ty, d in ts}
assert all(ty == 0 for ne, ty, d in T.values())
out = {}
def put(hf, name):   # a ggml tensor {ne0, ne1, ...} is the row-major [.., ne1, ne0] of PyTorch
    ne, ty, d = T.pop(name); out[hf] = (list(reversed(ne)), d)
put("model.embed_tokens.weight", "token_embd.weight")
put("model.norm.weight", "output_norm.weight")
put("lm_head.weight", "output.weight")
for il in range(L):
    b, p = "blk.%d." % il, "model.layers.%d." % il
    for gn, hn in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                   ("attn_q_a", "self_attn.q_a_proj"), ("attn_q_a_norm", "self_attn.q_a_layernorm"),
                   ("attn_q_b", "self_attn.q_b_proj"), ("attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa"),
                   ("attn_kv_a_norm", "self_attn.kv_a_layernorm"), ("attn_output", "self_attn.o_proj"),
                   ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
                   ("ffn_gate_inp", "mlp.gate"), ("ffn_gate_shexp", "mlp.shared_experts.gate_proj"),
                   ("ffn_up_shexp", "mlp.shared_experts.up_proj"), ("ffn_down_shexp", "mlp.shared_experts.down_proj")):
        if b + gn + ".weight" in T: put(p + hn + ".weight", b + gn + ".weight")
    if b + "exp_probs_b.bias" in T: put(p + "mlp.gate.e_score_correction_bias", b + "exp_probs_b.bias")
    for w, hn in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
        n = b + "ffn_%s_exps.weight" % w
        if n not in T: continue
        ne, ty, d = T.pop(n); per = len(d) // ne[2]
        for e in range(ne[2]): out[p + "mlp.experts.%d.%s.weight" % (e, hn)] = ([ne[1], ne[0]], d[e * per:(e + 1) * per])
    # kv_b_proj: per head, k_b transposed back (nope rows of kv_lora), then v_b's rows
    kb = gguf.floats(T.pop(b + "attn_k_b.weight")[2]); vb = gguf.floats(T.pop(b + "attn_v_b.weight")[2])
    rows = []
    for h in range(nH):
        for n in range(nope): rows += [kb[(h * kvr + r) * nope + n] for r in range(kvr)]
        rows += vb[h * vd * kvr:(h + 1) * vd * kvr]
    out[p + "self_attn.kv_b_proj.weight"] = ([nH * (nope + vd), kvr], gguf.pack(rows))
assert not T, "tensors left: %s" % list(T)[:5]
data, h = b"", {"__metadata__": {"format": "pt"}}
for k in sorted(out):
    sh, raw = out[k]; h[k] = {"dtype": "F32", "shape": sh, "data_offsets": [len(data), len(data) + len(raw)]}; data += raw
hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
open(ck + "/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + data)
cfg = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": g("vocab_size"),
       "hidden_size": E, "intermediate_size": g("feed_forward_length"), "moe_intermediate_size": g("expert_feed_forward_length"),
       "num_hidden_layers": L, "num_attention_heads": nH, "num_key_value_heads": nH, "n_shared_experts": g("expert_shared_count"),
       "n_routed_experts": NE, "num_experts_per_tok": g("expert_used_count"), "n_group": g("expert_group_count"),
       "topk_group": g("expert_group_used_count"), "routed_scaling_factor": g("expert_weights_scale"),
       "norm_topk_prob": g("expert_weights_norm"), "scoring_func": "sigmoid", "topk_method": "noaux_tc",
       "first_k_dense_replace": g("leading_dense_block_count"), "moe_layer_freq": 1, "q_lora_rank": g("attention.q_lora_rank"),
       "kv_lora_rank": kvr, "qk_nope_head_dim": nope, "qk_rope_head_dim": rope, "v_head_dim": vd,
       "hidden_act": "silu", "max_position_embeddings": g("context_length"), "rms_norm_eps": 1e-6,
       "rope_theta": g("rope.freq_base"), "rope_scaling": None, "attention_bias": False, "tie_word_embeddings": False,
       "bos_token_id": 557, "eos_token_id": 556, "torch_dtype": "float32"}
json.dump(cfg, open(ck + "/config.json", "w"), indent=1)
PY
check "the deepseek_v3 directory is written" test -s "$T/ck/model.safetensors"

run "$M" info "$T/ck"
check "info DIR: exit 0 ($err)" test "$rc" -eq 0
printf 'Hello there, how are you?\nThe capital of France is\n1 + 1 = 2, 2 + 2 =\n' >"$T/prompts.txt"
run "$M" dump "$T/ck" --prompts "$T/prompts.txt" --out "$T/dir" -t 1
check "dump DIR: exit 0 ($err)" test "$rc" -eq 0
run "$M" dump "$GG" --prompts "$T/prompts.txt" --out "$T/gguf" -t 1
check "dump GGUF: exit 0 ($err)" test "$rc" -eq 0
pycheck "$T/dir.json" "$T/gguf.json" <<'PY'
import json, sys
def load(p):
    j = json.load(open(p))
    j.pop("model", None)   # the model's path and the logits files' names differ, nothing else may
    for q in j.get("prompts", []): q.pop("logits", None)
    return j
a, b = load(sys.argv[1]), load(sys.argv[2])
n = sum(len(q.get("tokens", [])) for q in a.get("prompts", []))
print(("ok" if a == b and n > 0 else "not ok") + " - tokens (BOS included), group-limited routing, weights and router probabilities identical (%d tokens)" % n)
PY
same=1
for i in 0 1 2; do cmp -s "$T/dir.p$i.f32" "$T/gguf.p$i.f32" || same=0; done
check "logits bit-identical at every position of the 3 prompts" test "$same" -eq 1 -a -s "$T/dir.p0.f32"

# conformance with llama.cpp's reference, by the rules of the fixtures'
# README (F32): same tokens; same expert sets (unless the reference's k-th and
# (k+1)-th probabilities are within 1e-6); weights and probs within 1e-5;
# logits within 1e-4
REF=$SHARED/fixtures-dsv3/reference
"$PY" -c 'import json, sys; [print(json.dumps({"text": t})) for t in json.load(open(sys.argv[1]))]' \
    "$REF/prompts.json" >"$T/ref-prompts.jsonl"
run "$M" dump "$T/ck" --prompts "$T/ref-prompts.jsonl" --out "$T/ref" -t 1
check "dump DIR on the reference prompts: exit 0 ($err)" test "$rc" -eq 0
pycheck "$REF/dsv3-tiny.F32.json" "$T/ref.json" "$REF" "$T" <<'PY'
import json, struct, sys
ref, got = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rdir, gdir = sys.argv[3], sys.argv[4]
k = ref["n_expert_used"]
bad, nd, worst = [], 0, 0.0
for i, (r, g) in enumerate(zip(ref["prompts"], got["prompts"])):
    if r["tokens"] != g["tokens"]:
        bad.append("prompt %d tokens" % i); continue
    for rl, gl in zip(r["routing"], g["routing"]):
        for t in range(len(r["tokens"])):
            nd += 1
            re_, ge = rl["experts"][t], gl["experts"][t]
            if set(re_) != set(ge):
                pr = sorted(rl["probs"][t], reverse=True)
                if pr[k - 1] - pr[k] >= 1e-6: bad.append("prompt %d layer %d token %d experts" % (i, rl["layer"], t))
                continue
            rw, gw = dict(zip(re_, rl["weights"][t])), dict(zip(ge, gl["weights"][t]))
            if any(abs(rw[e] - gw[e]) > 1e-5 for e in rw) or any(abs(a - b) > 1e-5 for a, b in zip(rl["probs"][t], gl["probs"][t])):
                bad.append("prompt %d layer %d token %d weights/probs" % (i, rl["layer"], t))
    ra = open("%s/%s" % (rdir, r["logits"]), "rb").read(); ga = open("%s/%s" % (gdir, g["logits"]), "rb").read()
    if len(ra) != len(ga): bad.append("prompt %d logits size" % i); continue
    d = max(abs(a - b) for a, b in zip(struct.unpack("<%df" % (len(ra) // 4), ra), struct.unpack("<%df" % (len(ga) // 4), ga)))
    worst = max(worst, d)
    if d > 1e-4: bad.append("prompt %d logits %.3g" % (i, d))
ok = not bad and nd > 0 and len(got["prompts"]) == len(ref["prompts"]) == 6
print(("ok" if ok else "not ok") + " - DIR vs llama.cpp's dsv3 reference: 6 prompts, %d routing decisions, max logit difference %.2g (problems %s)" % (nd, worst, bad[:3]))
PY

run "$M" convert "$T/ck" "$T/conv.gguf" --type F32
check "convert DIR --type F32: exit 0 ($err)" test "$rc" -eq 0
pycheck "$GG" "$T/conv.gguf" <<'PY'
import os, sys
sys.path.insert(0, os.environ["TESTDIR"])
import gguf_tiny as gguf
a = {n: (ne, ty, d) for n, ne, ty, d in gguf.read(sys.argv[1])[2]}
ka = dict(gguf.read.kv)
c = {n: (ne, ty, d) for n, ne, ty, d in gguf.read(sys.argv[2])[2]}
kc = gguf.read.kv
bad = [n for n in a if c.get(n) != a[n]]
extra = [n for n in c if n not in a]
print(("ok" if a and not bad and not extra else "not ok") + " - convert DIR: %d tensors bit-identical to dsv3-tiny.F32.gguf (differing %s, extra %s)" % (len(a), bad[:3], extra[:3]))
keys = [k for k in ka if k.startswith("deepseek2.")]
diff = [k for k in keys if kc.get(k) != ka[k]]
print(("ok" if keys and not diff else "not ok") + " - convert DIR: the %d deepseek2.* keys equal the GGUF's (differing %s)" % (len(keys), [(k, ka[k], kc.get(k)) for k in diff[:3]]))
PY

# a multi-token-prediction layer after the last one (num_nextn_predict_layers,
# as the hub's V3 checkpoint has): left unused, same output; without the
# config field it is a tensor that does not belong
rm -rf "$T/mtp"; cp -r "$T/ck" "$T/mtp"
"$PY" - "$T/mtp" <<'PY'
import json, struct, sys
d = sys.argv[1]; p = d + "/model.safetensors"
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
c = json.load(open(d + "/config.json"))
k = "model.layers.%d.eh_proj.weight" % c["num_hidden_layers"]
h[k] = {"dtype": "F32", "shape": [2], "data_offsets": [len(data), len(data) + 8]}; data += b"\0" * 8
hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
c["num_nextn_predict_layers"] = 1; json.dump(c, open(d + "/config.json", "w"))
PY
run "$M" dump "$T/mtp" --prompts "$T/prompts.txt" --out "$T/mtp" -t 1
same=$rc
for i in 0 1 2; do cmp -s "$T/mtp.p$i.f32" "$T/gguf.p$i.f32" || same=1; done
check "an MTP layer (num_nextn_predict_layers 1) is left unused: same logits" test "$same" -eq 0
"$PY" -c 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); del c["num_nextn_predict_layers"]; json.dump(c, open(p, "w"))' "$T/mtp"
run "$M" info "$T/mtp"
check "  without num_nextn_predict_layers it is refused by name ($err)" test "$rc" -eq 1 -a -n "$(grep -F eh_proj "$T/err")"

# noaux_tc needs its correction bias
rm -rf "$T/bad"; cp -r "$T/ck" "$T/bad"
"$PY" - "$T/bad/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
k = "model.layers.2.mlp.gate.e_score_correction_bias"
a, e = h.pop(k)["data_offsets"]
data = data[:a] + data[e:]
for v in h.values():
    if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] >= e:
        v["data_offsets"] = [v["data_offsets"][0] - (e - a), v["data_offsets"][1] - (e - a)]
hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
PY
run "$M" info "$T/bad"
check "deepseek_v3 without e_score_correction_bias: exit 1, one line naming it ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F e_score_correction_bias "$T/err")"

echo "1..$n"
[ "$failed" -eq 0 ]
