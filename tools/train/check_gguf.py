#!/usr/bin/python3
"""Check that the engine reproduces the PyTorch model it was exported from.

Runs `moescope dump` on a few prompts, then runs the PyTorch checkpoint on the
engine's token ids and compares, per prompt: the tokenization (the trainer's
BPE must give the engine's ids), the logits at every position (max absolute
difference against --tol), the arg-max token, and the selected experts per
MoE layer.  Exit status 0 only when everything agrees.

  check_gguf.py --ckpt OUT/model.pt --gguf OUT/model.gguf --moescope BUILD/app/moescope [--type Q8_0] [--tol T]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
from model import MoELM  # noqa: E402

PROMPTS = [
    "The file could not be opened because it does not exist.",
    "Die Datei konnte nicht geöffnet werden, weil sie nicht existiert.",
    "Le fichier n'a pas pu être ouvert car il n'existe pas.",
    "El archivo no se pudo abrir porque no existe.",
    "static int parse_header(const char *buf, size_t len)\n{\n    if (len < 4) return -1;",
    "def read_config(path):\n    with open(path) as f:\n        return json.load(f)",
    "Version 2.14.3 was released on 2023-08-17 with 1,024 fixes.",
]


def _q8_blocks(t):
    x = t.reshape(-1, 32).float()
    return x, x.abs().max(dim=1, keepdim=True).values


def q8_round_weights(t):
    """Q8_0 round trip of a weight row as the project's quantiser (and ggml's
    reference) does it, in float32: d = amax/127, q = roundf(x * (1/d)) (half
    away from zero), the scale stored as fp16 (GGUF-MOE.md quant blocks)."""
    x, amax = _q8_blocks(t)
    d = amax / 127.0
    idv = torch.where(d > 0, 1.0 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
    q = (x * idv).double()                      # the float32 product, rounded exactly below
    q = q.sign() * (q.abs() + 0.5).floor()
    return (q * d.half().double()).reshape(t.shape).to(t.dtype)


def q8_round_acts(t):
    """Q8_0 round trip of a matrix-product input as the engine's activation
    converter (ggml's x86 path) does it: d = amax/127, q = round-half-even(x *
    (127/amax)) in float32, the scale stored as fp16."""
    x, amax = _q8_blocks(t)
    d = amax / 127.0
    idv = torch.where(amax > 0, 127.0 / torch.where(amax > 0, amax, torch.ones_like(amax)), torch.zeros_like(amax))
    q = torch.round(x * idv)                    # torch.round is round-half-to-even
    return (q.double() * d.half().double()).reshape(t.shape).to(t.dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--moescope", required=True)
    ap.add_argument("--tol", type=float,
                    help="max |logit difference| allowed (default 2e-3 for F32 and F16; for Q8_0 the larger of 5e-2 "
                         "and 1.5 x the reference's own float32-vs-float64 difference: a value on a rounding "
                         "boundary can flip one int8 step of an activation either way)")
    ap.add_argument("--relative", action="store_true", help="divide the difference by max(1, max |logit|)")
    ap.add_argument("--type", default="F32", choices=["F32", "F16", "Q8_0"],
                    help="type of the GGUF's matrices: the reference then rounds weights and "
                         "matrix-product inputs as the engine does (F16: to half, Q8_0: Q8_0 blocks)")
    ap.add_argument("--gap-tol", type=float,
                    help="an expert set may differ only where the router probabilities of the two choices "
                         "differ by at most this (default 1e-5 for F32, 2e-3 otherwise)")
    ap.add_argument("--min-expert-agree", type=float, default=0.98,
                    help="fraction of (token, layer) expert sets that must match")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.gap_tol is None:
        a.gap_tol = 1e-5 if a.type == "F32" else 2e-3
    auto_tol = a.tol is None and a.type == "Q8_0"
    if a.tol is None:
        a.tol = 5e-2 if a.type == "Q8_0" else 2e-3

    ck = torch.load(a.ckpt)
    model = MoELM(ck["cfg"])
    model.load_state_dict(ck["state"])
    model.eval()
    half = lambda x: x.half().to(x.dtype)  # noqa: E731
    wrnd = {"F32": None, "F16": half, "Q8_0": q8_round_weights}[a.type]
    arnd = {"F32": None, "F16": half, "Q8_0": q8_round_acts}[a.type]
    if wrnd:
        with torch.no_grad():
            for _, t, ne, is_mat in model.gguf_tensors():
                if is_mat and ne[0] % 32 == 0:
                    t.copy_(wrnd(t))
        model.set_rounding(arnd)
    # the same reference in float64 (rounding still in float32, as the
    # engine's): how far the reference moves under a 1-ulp change of its own
    # arithmetic, which bounds what can be asked of the engine
    ref64 = None
    if auto_tol:
        ref64 = MoELM(ck["cfg"])
        ref64.load_state_dict(model.state_dict())
        ref64 = ref64.double().eval()
        ref64.set_rounding(lambda x: arnd(x.float()).double())
    tok = bpe.Tokenizer(ck["merges"])
    ok = True
    with tempfile.TemporaryDirectory() as td:
        pf = os.path.join(td, "prompts.jsonl")
        with open(pf, "w", encoding="utf-8") as f:
            for p in PROMPTS:
                f.write(json.dumps({"text": p}, ensure_ascii=False) + "\n")
        subprocess.run([a.moescope, "dump", a.gguf, "--prompts", pf, "--out", os.path.join(td, "d"), "-t", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(td, "d.json"), encoding="utf-8") as f:
            dump = json.load(f)
        worst, agree, total, worst_gap, floor = 0.0, 0, 0, 0.0, 0.0
        for i, pr in enumerate(dump["prompts"]):
            ids = pr["tokens"]
            mine = [tok.eos] + tok.encode(pr["text"])
            if mine != ids:
                print(f"prompt {i}: tokenization differs: engine {ids} trainer {mine}")
                ok = False
            eng = np.fromfile(os.path.join(td, os.path.basename(pr["logits"])), dtype="<f4")
            eng = eng.reshape(len(ids), -1)
            # The reference replays the engine's expert choice, so one flipped
            # near-tie does not spoil every later logit; each disagreement
            # with the reference's own top-k must then be a near-tie.
            force = [torch.tensor(r["experts"], dtype=torch.long) for r in pr["routing"]]
            with torch.no_grad():
                logits, _, _ = model(torch.tensor([ids]), force)
            probs = [b.last_probs for b in model.blocks]
            ref = logits[0].numpy()
            if ref64 is not None:
                with torch.no_grad():
                    l64, _, _ = ref64(torch.tensor([ids]), force)
                floor = max(floor, float(np.abs(l64[0].numpy() - ref).max()))
            d = float(np.abs(ref - eng).max()) / max(1.0, float(np.abs(ref).max())) if a.relative \
                else float(np.abs(ref - eng).max())
            worst = max(worst, d)
            am = int((ref.argmax(-1) == eng.argmax(-1)).sum())
            for r in pr["routing"]:
                p = probs[r["layer"]]
                for t, ex in enumerate(r["experts"]):
                    total += 1
                    mine_k = p[t].topk(len(ex)).indices.tolist()
                    if sorted(ex) == sorted(mine_k):
                        agree += 1
                        continue
                    gap = float(p[t][mine_k].min() - p[t][ex].min())
                    worst_gap = max(worst_gap, gap)
            print(f"prompt {i}: {len(ids)} tokens, max |dlogit| {d:.2e}, argmax agrees {am}/{len(ids)}")
        frac = agree / max(total, 1)
        if ref64 is not None:
            print(f"reference float32 vs float64: max |dlogit| {floor:.3e}")
            if not a.relative:
                a.tol = max(a.tol, 1.5 * floor)
        print(f"worst max |dlogit| {worst:.3e} (tol {a.tol:.3g}); expert sets agree {agree}/{total} ({frac:.4f}); "
              f"largest router-probability gap at a disagreement {worst_gap:.2e} (tol {a.gap_tol})")
        if worst > a.tol or frac < a.min_expert_agree or worst_gap > a.gap_tol:
            ok = False
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
