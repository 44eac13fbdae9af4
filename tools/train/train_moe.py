#!/usr/bin/python3
"""Train a small OLMoE-layout MoE language model on the moescope corpus and
write it as GGUF through the project's writer (tools/gguf-pack.c).

Deterministic given --seed and --threads (CPU, torch deterministic mode).

  train_moe.py --corpus CORPUS_DIR --out OUT_DIR --gguf-pack BUILD/gguf-pack [shape/training options]
  train_moe.py --export OUT_DIR/model.pt --out OUT_DIR --gguf-pack BUILD/gguf-pack [--type Q8_0]

CORPUS_DIR is what tools/corpus/build-corpus.sh writes: train/DOMAIN.jsonl and
heldout/DOMAIN.jsonl, one {"text": ...} document per line.
OUT_DIR receives tokenizer.json, model.pt, metrics.json, train.log and model.gguf.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

# OpenMP threads that spin while waiting collapse on a shared machine (15 s
# instead of 2.3 s per step measured with 2 threads and other jobs running);
# must be set before torch loads its OpenMP runtime
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
from model import MoELM  # noqa: E402


def log(msg, fh=None):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if fh:
        fh.write(line + "\n")
        fh.flush()


def read_docs(path, max_chars):
    docs, n = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if max_chars and n + len(t) > max_chars:
                t = t[:max(0, max_chars - n)]
            if t:
                docs.append(t)
                n += len(t)
            if max_chars and n >= max_chars:
                break
    return docs


def load_corpus(corpus, split, max_chars):
    d = os.path.join(corpus, split)
    out = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".jsonl"):
            out[name[:-6]] = read_docs(os.path.join(d, name), max_chars)
    return out


def encode_docs(tok, docs):
    ids = []
    for t in docs:
        ids.append(tok.eos)  # every document starts with the BOS/EOS separator
        ids.extend(tok.encode(t))
    return torch.tensor(ids, dtype=torch.long)


def export_gguf(model, tok, cfg, out_dir, pack, wtype, name, desc):
    """Write meta.json + tensors.f32 and run gguf-pack -> model.gguf."""
    meta_p = os.path.join(out_dir, "pack-meta.json")
    data_p = os.path.join(out_dir, "pack-tensors.f32")
    gguf_p = os.path.join(out_dir, "model.gguf")
    a = "olmoe"
    kv = [
        ("general.architecture", "str", a), ("general.type", "str", "model"),
        ("general.name", "str", name), ("general.description", "str", desc),
        ("general.file_type", "u32", {"F32": 0, "F16": 1, "Q8_0": 7}.get(wtype, 7)),
        ("general.quantization_version", "u32", 2),
        (a + ".context_length", "u32", cfg["n_ctx"]),
        (a + ".embedding_length", "u32", cfg["n_embd"]),
        (a + ".block_count", "u32", cfg["n_layer"]),
        (a + ".feed_forward_length", "u32", cfg["n_ff"]),
        (a + ".attention.head_count", "u32", cfg["n_head"]),
        (a + ".attention.head_count_kv", "u32", cfg["n_head"]),
        (a + ".attention.layer_norm_rms_epsilon", "f32", cfg["eps"]),
        (a + ".rope.freq_base", "f32", cfg["rope_base"]),
        (a + ".expert_count", "u32", cfg["n_expert"]),
        (a + ".expert_used_count", "u32", cfg["n_expert_used"]),
        (a + ".vocab_size", "u32", cfg["n_vocab"]),
        ("tokenizer.ggml.model", "str", "gpt2"),
        ("tokenizer.ggml.pre", "str", "olmo"),
        ("tokenizer.ggml.tokens", "arr_str", tok.tokens),
        ("tokenizer.ggml.token_type", "arr_i32",
         [3 if t in bpe.SPECIALS else 1 for t in tok.tokens]),
        ("tokenizer.ggml.merges", "arr_str", [f"{x} {y}" for x, y in tok.merges]),
        ("tokenizer.ggml.bos_token_id", "u32", tok.eos),
        ("tokenizer.ggml.eos_token_id", "u32", tok.eos),
        ("tokenizer.ggml.add_bos_token", "bool", True),
        ("tokenizer.ggml.add_eos_token", "bool", False),
    ]
    tensors, off = [], 0
    with open(data_p, "wb") as f:
        for tname, t, ne, is_mat in model.gguf_tensors():
            arr = t.detach().to(torch.float32).contiguous().numpy()
            assert arr.size == math.prod(ne), tname
            ty = wtype if is_mat and ne[0] % 32 == 0 else "F32"
            tensors.append({"name": tname, "type": ty, "ne": ne, "offset": off})
            b = arr.astype("<f4").tobytes()
            f.write(b)
            off += len(b)
    with open(meta_p, "w", encoding="utf-8") as f:
        json.dump({"kv": [{"key": k, "type": t, "value": v} for k, t, v in kv],
                   "tensors": tensors}, f, ensure_ascii=False)
    subprocess.run([pack, meta_p, data_p, gguf_p], check=True)
    os.remove(data_p)
    return gguf_p


@torch.no_grad()
def evaluate(model, ids, n_ctx, max_tokens, batch=16):
    """Mean next-token NLL over non-overlapping windows of the stream, full
    windows batched (per-window calls are dominated by the expert loop)."""
    model.eval()
    ids = ids[: max_tokens + 1] if max_tokens else ids
    wins = [ids[s:s + n_ctx + 1] for s in range(0, len(ids) - 1, n_ctx)]
    wins = [w for w in wins if len(w) >= 2]
    nll, n = 0.0, 0
    full = [w for w in wins if len(w) == n_ctx + 1]
    rest = [w for w in wins if len(w) != n_ctx + 1]
    groups = [torch.stack(full[i:i + batch]) for i in range(0, len(full), batch)] + [w.unsqueeze(0) for w in rest]
    for x in groups:
        logits, _, _ = model(x[:, :-1])
        nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                 reduction="sum").item()
        n += x[:, 1:].numel()
    model.train()
    return nll / max(n, 1), n


def unigram_nll(train_ids, ids, V):
    """Add-one smoothed unigram model from training tokens: the baseline."""
    c = torch.bincount(train_ids, minlength=V).double() + 1.0
    lp = (c / c.sum()).log()
    return -lp[ids[1:]].mean().item() if len(ids) > 1 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gguf-pack", required=True, help="path of the built tools/gguf-pack")
    ap.add_argument("--export", metavar="CKPT", help="only export an existing checkpoint")
    ap.add_argument("--tokenizer", help="reuse this tokenizer.json instead of training one")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=192)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--ff", type=int, default=256, help="expert FFN width")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--mix-alpha", type=float, default=0.5,
                    help="sample domains with probability ~ tokens^alpha (0 equal, 1 by size)")
    ap.add_argument("--balance", type=float, default=0.01, help="load-balancing loss coefficient")
    ap.add_argument("--max-chars", type=int, default=0, help="per-domain cap on corpus characters (0 = all)")
    ap.add_argument("--bpe-chars", type=int, default=2000000, help="per-domain characters used to learn BPE")
    ap.add_argument("--eval-tokens", type=int, default=50000, help="held-out tokens per domain")
    ap.add_argument("--type", default="Q8_0", help="GGUF type of 2-D weights (F32, F16, Q8_0, ...)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="moescope-default-moe")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)

    if a.export:
        ck = torch.load(a.export)
        model = MoELM(ck["cfg"])
        model.load_state_dict(ck["state"])
        tok = bpe.Tokenizer(ck["merges"])
        p = export_gguf(model, tok, ck["cfg"], a.out, a.gguf_pack, a.type, a.name, ck.get("desc", ""))
        print(p)
        return

    fh = open(os.path.join(a.out, "train.log"), "w", encoding="utf-8")
    log(f"args {vars(a)}", fh)
    train_docs = load_corpus(a.corpus, "train", a.max_chars)
    held_docs = load_corpus(a.corpus, "heldout", a.max_chars // 10 if a.max_chars else 0)
    for dname, docs in train_docs.items():
        log(f"corpus {dname}: {len(docs)} docs, {sum(map(len, docs))} chars", fh)

    if a.tokenizer:
        tok = bpe.Tokenizer.load(a.tokenizer)
    else:
        t0 = time.time()
        sample = []
        for docs in train_docs.values():  # equal share per domain so no language dominates the merges
            n = 0
            for t in docs:
                sample.append(t[: a.bpe_chars - n])
                n += len(sample[-1])
                if n >= a.bpe_chars:
                    break
        tok = bpe.Tokenizer(bpe.train(sample, a.vocab, log=lambda m: log(m, fh)))
        log(f"bpe: {len(tok)} tokens in {time.time() - t0:.0f}s", fh)
    tok.save(os.path.join(a.out, "tokenizer.json"))

    t0 = time.time()
    train_ids = {k: encode_docs(tok, v) for k, v in train_docs.items()}
    held_ids = {k: encode_docs(tok, v) for k, v in held_docs.items()}
    names = sorted(train_ids)
    stream = torch.cat([train_ids[k] for k in names])
    # domain mixture: p(domain) ~ tokens^alpha (0 = equal, 1 = by size), so a
    # small domain (the Spanish pages) is not drowned by the large ones
    for k in names:
        if len(train_ids[k]) < a.ctx + 2:
            sys.exit(f"train_moe: domain {k} has {len(train_ids[k])} tokens, fewer than --ctx + 2")
    sizes = torch.tensor([float(len(train_ids[k])) for k in names])
    mix = sizes.pow(a.mix_alpha)
    mix = mix / mix.sum()
    log("domain mixture " + " ".join(f"{k}={float(m):.3f}" for k, m in zip(names, mix)), fh)
    log(f"encoded {len(stream)} training tokens in {time.time() - t0:.0f}s "
        + " ".join(f"{k}={len(v)}" for k, v in train_ids.items()), fh)

    cfg = dict(n_vocab=len(tok), n_embd=a.embd, n_head=a.heads, n_layer=a.layers,
               n_expert=a.experts, n_expert_used=a.top_k, n_ff=a.ff, n_ctx=max(a.ctx, 512),
               eps=1e-5, rope_base=10000.0)
    model = MoELM(cfg)
    n_par = sum(p.numel() for p in model.parameters())
    log(f"model {cfg}, {n_par} parameters", fh)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(a.seed)
    E = a.experts
    t0 = time.time()
    for step in range(1, a.steps + 1):
        lr = a.lr * min(1.0, step / a.warmup) * 0.5 * (1 + math.cos(math.pi * min(step / a.steps, 1.0)))
        lr = max(lr, a.lr * 0.02) if step > a.warmup else lr
        for g in opt.param_groups:
            g["lr"] = lr
        doms = torch.multinomial(mix, a.batch, replacement=True, generator=gen).tolist()
        u = torch.rand(a.batch, generator=gen).tolist()
        rows = []
        for di, ui in zip(doms, u):
            ds = train_ids[names[di]]
            s0 = int(ui * max(1, len(ds) - a.ctx - 1))
            rows.append(ds[s0:s0 + a.ctx + 1])
        x = torch.stack(rows)
        logits, bal, sels = model(x[:, :-1])
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["n_vocab"]), x[:, 1:].reshape(-1))
        loss = ce + a.balance * bal
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == 1:
            use = torch.bincount(sels[-1].reshape(-1), minlength=E).float()
            log(f"step {step} lr {lr:.2e} ce {ce.item():.4f} bal {bal.item():.3f} "
                f"last-layer expert share max {use.max().item() / use.sum().item():.3f} "
                f"{(time.time() - t0) / step:.2f}s/step", fh)

    train_s = time.time() - t0
    log(f"trained {a.steps} steps in {train_s:.0f}s ({train_s / a.steps:.2f}s/step)", fh)
    metrics = {"train_seconds": round(train_s), "train_tokens_seen": a.steps * a.batch * a.ctx, "corpus_train_tokens": len(stream),
               "parameters": n_par, "heldout": {}}
    for k in sorted(held_ids):
        nll, n = evaluate(model, held_ids[k], a.ctx, a.eval_tokens, a.batch)
        uni = unigram_nll(train_ids[k] if k in train_ids else stream, held_ids[k][: n + 1], cfg["n_vocab"])
        metrics["heldout"][k] = {"tokens": n, "ppl": math.exp(nll), "unigram_ppl": math.exp(uni)}
        log(f"heldout {k}: {n} tokens, ppl {math.exp(nll):.2f}, unigram baseline {math.exp(uni):.2f}", fh)
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    desc = (f"trained by tools/train/train_moe.py (seed {a.seed}, {a.steps} steps x {a.batch} x {a.ctx} tokens) "
            "on text from Debian packages")
    torch.save({"cfg": cfg, "state": model.state_dict(), "merges": tok.merges, "desc": desc},
               os.path.join(a.out, "model.pt"))
    p = export_gguf(model, tok, cfg, a.out, a.gguf_pack, a.type, a.name, desc)
    log(f"wrote {p} ({os.path.getsize(p)} bytes)", fh)


if __name__ == "__main__":
    main()
