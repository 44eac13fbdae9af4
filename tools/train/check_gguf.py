#!/usr/bin/python3
"""Check that the engine reproduces the PyTorch model it was exported from.

Runs `moescope dump` on a few prompts, then runs the PyTorch checkpoint on the
engine's token ids and compares, per prompt: the tokenization (the trainer's
BPE must give the engine's ids), the logits at every position (max absolute
difference against --tol), the arg-max token, and the selected experts per
MoE layer.  Exit status 0 only when everything agrees.

  check_gguf.py --ckpt OUT/model.pt --gguf OUT/model.gguf --moescope BUILD/app/moescope [--tol 2e-3]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--moescope", required=True)
    ap.add_argument("--tol", type=float, default=2e-3, help="max |logit difference| allowed")
    ap.add_argument("--min-expert-agree", type=float, default=0.99,
                    help="fraction of (token, layer) expert sets that must match")
    a = ap.parse_args()
    torch.set_num_threads(1)

    ck = torch.load(a.ckpt)
    model = MoELM(ck["cfg"])
    model.load_state_dict(ck["state"])
    model.eval()
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
        worst, agree, total = 0.0, 0, 0
        for i, pr in enumerate(dump["prompts"]):
            ids = pr["tokens"]
            mine = [tok.eos] + tok.encode(pr["text"])
            if mine != ids:
                print(f"prompt {i}: tokenization differs: engine {ids} trainer {mine}")
                ok = False
            eng = np.fromfile(os.path.join(td, os.path.basename(pr["logits"])), dtype="<f4")
            eng = eng.reshape(len(ids), -1)
            with torch.no_grad():
                logits, _, sels = model(torch.tensor([ids]))
            ref = logits[0].numpy()
            d = float(np.abs(ref - eng).max())
            worst = max(worst, d)
            am = int((ref.argmax(-1) == eng.argmax(-1)).sum())
            for L, r in enumerate(pr["routing"]):
                s_ref = sels[r["layer"]].reshape(len(ids), -1).tolist()
                for t, ex in enumerate(r["experts"]):
                    total += 1
                    agree += sorted(ex) == sorted(s_ref[t])
            print(f"prompt {i}: {len(ids)} tokens, max |dlogit| {d:.2e}, argmax agrees {am}/{len(ids)}")
        frac = agree / max(total, 1)
        print(f"worst max |dlogit| {worst:.3e} (tol {a.tol}); expert sets agree {agree}/{total} ({frac:.4f})")
        if worst > a.tol or frac < a.min_expert_agree:
            ok = False
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
