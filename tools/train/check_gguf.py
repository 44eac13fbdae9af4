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


def q8_round(t):
    """Q8_0 round trip along ne0 (the last torch dim): blocks of 32 values share
    an fp16 scale max|x|/127, values are rounded to int8 (GGUF-MOE.md quant blocks)."""
    x = t.reshape(-1, 32).double()
    d = x.abs().max(dim=1, keepdim=True).values / 127.0
    q = torch.where(d > 0, x / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(x))
    q = q.sign() * (q.abs() + 0.5).floor()  # round half away from zero
    return (q * d.half().double()).reshape(t.shape).to(t.dtype)


q8_round.__doc__ += " Activations use the same Q8_0 blocks (the vec_dot type of Q8_0)."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--moescope", required=True)
    ap.add_argument("--tol", type=float,
                    help="max |logit difference| allowed (default 2e-3 for F32 and F16, 5e-2 for Q8_0, where an "
                         "activation value on a rounding boundary in float32 vs double can flip one int8 step)")
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
    if a.tol is None:
        a.tol = 5e-2 if a.type == "Q8_0" else 2e-3

    ck = torch.load(a.ckpt)
    model = MoELM(ck["cfg"])
    model.load_state_dict(ck["state"])
    model.eval()
    rnd = {"F32": None, "F16": lambda x: x.half().to(x.dtype), "Q8_0": q8_round}[a.type]
    if rnd:
        with torch.no_grad():
            for _, t, ne, is_mat in model.gguf_tensors():
                if is_mat and ne[0] % 32 == 0:
                    t.copy_(rnd(t))
        model.set_rounding(rnd)
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
        worst, agree, total, worst_gap = 0.0, 0, 0, 0.0
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
        print(f"worst max |dlogit| {worst:.3e} (tol {a.tol}); expert sets agree {agree}/{total} ({frac:.4f}); "
              f"largest router-probability gap at a disagreement {worst_gap:.2e} (tol {a.gap_tol})")
        if worst > a.tol or frac < a.min_expert_agree or worst_gap > a.gap_tol:
            ok = False
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
