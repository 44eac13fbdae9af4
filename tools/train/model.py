"""Small OLMoE-layout mixture-of-experts language model in PyTorch.

Mirrors what the engine computes for GGUF arch "olmoe" (GGUF-MOE.md 5.1):
pre-norm blocks with RMSNorm, Q/K RMSNorm over the whole projection width
before RoPE, RoPE NEOX (rotate_half pairs i and i + head_dim/2), causal
attention scaled by 1/sqrt(head_dim), softmax router over all experts, top-k
without renormalisation, SiLU-GLU experts, final RMSNorm and an untied output
matrix.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _identity(x):
    return x


def rope_neox(x, base):
    """x: [B, H, T, hd]; rotate pairs (i, i + hd/2)."""
    hd = x.shape[-1]
    half = hd // 2
    inv = base ** (-torch.arange(0, half, dtype=torch.float32) * 2.0 / hd)
    pos = torch.arange(x.shape[2], dtype=torch.float32)
    ang = pos[:, None] * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, self.H = cfg["n_embd"], cfg["n_head"]
        self.hd = d // self.H
        E, Fw, eps = cfg["n_expert"], cfg["n_ff"], cfg["eps"]
        self.k, self.base = cfg["n_expert_used"], cfg["rope_base"]
        self.attn_norm = RMSNorm(d, eps)
        self.q = nn.Linear(d, d, bias=False)
        self.kk = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.q_norm = RMSNorm(d, eps)
        self.k_norm = RMSNorm(d, eps)
        self.ffn_norm = RMSNorm(d, eps)
        self.router = nn.Linear(d, E, bias=False)
        s = 1.0 / math.sqrt(d)
        self.w_gate = nn.Parameter(torch.randn(E, Fw, d) * s)
        self.w_up = nn.Parameter(torch.randn(E, Fw, d) * s)
        self.w_down = nn.Parameter(torch.randn(E, d, Fw) / math.sqrt(Fw))
        # rounding applied to the inputs of quantised matrix products; the
        # export check sets it to emulate the engine's Q8_0/F16 activations
        self.rnd = _identity

    def attn(self, x):
        B, T, d = x.shape
        x = self.rnd(x)
        q = self.q_norm(self.q(x)).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_norm(self.kk(x)).view(B, T, self.H, self.hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.H, self.hd).transpose(1, 2)
        q, k = rope_neox(q, self.base), rope_neox(k, self.base)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, d)
        return self.o(self.rnd(y))

    def moe(self, x, force=None):
        B, T, d = x.shape
        xf = x.reshape(-1, d)
        probs = self.router(xf).softmax(-1)                 # [N, E]
        if force is None:
            w, sel = probs.topk(self.k, dim=-1)              # no renormalisation
        else:  # replay a given selection (export check), weights still from probs
            sel = force
            w = probs.gather(1, sel)
        out = torch.zeros_like(xf)
        E = probs.shape[1]
        for e in range(E):
            tok, slot = (sel == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            h = self.rnd(xf.index_select(0, tok))
            h = F.silu(h @ self.w_gate[e].t()) * (h @ self.w_up[e].t())
            h = (self.rnd(h) @ self.w_down[e].t()) * w[tok, slot].unsqueeze(1)
            out.index_add_(0, tok, h)
        # Switch-style balance loss: E * sum_e (fraction routed to e) * (mean prob of e)
        frac = torch.zeros(E).index_add_(0, sel.reshape(-1), torch.ones(sel.numel())) / sel.numel()
        bal = E * (frac * probs.mean(0)).sum()
        self.last_probs = probs.detach()
        return out.view(B, T, d), bal, sel

    def forward(self, x, force=None):
        x = x + self.attn(self.attn_norm(x))
        h, bal, sel = self.moe(self.ffn_norm(x), force)
        return x + h, bal, sel


class MoELM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embd = nn.Embedding(cfg["n_vocab"], cfg["n_embd"])
        nn.init.normal_(self.embd.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["n_layer"]))
        self.norm = RMSNorm(cfg["n_embd"], cfg["eps"])
        self.out = nn.Linear(cfg["n_embd"], cfg["n_vocab"], bias=False)
        nn.init.normal_(self.out.weight, std=0.02)
        self.rnd = _identity

    def set_rounding(self, fn):
        """fn(x) rounds matrix-product inputs (None = exact); for export checks."""
        self.rnd = fn or _identity
        for b in self.blocks:
            b.rnd = self.rnd

    def forward(self, ids, force=None):
        """force: optional per-layer LongTensor [B*T, k] of experts to use
        instead of the router's top-k."""
        x = self.embd(ids)
        bal = x.new_zeros(())
        sels = []
        for i, b in enumerate(self.blocks):
            x, bl, sel = b(x, None if force is None else force[i])
            bal = bal + bl
            sels.append(sel)
        return self.out(self.rnd(self.norm(x))), bal / len(self.blocks), sels

    def gguf_tensors(self):
        """(name, tensor, ggml ne list, is_matrix) in GGUF naming; ne0 fastest,
        so a torch [out, in] weight has ne [in, out]."""
        c = self.cfg
        d, V, E, Fw = c["n_embd"], c["n_vocab"], c["n_expert"], c["n_ff"]
        t = [("token_embd.weight", self.embd.weight, [d, V], True)]
        for i, b in enumerate(self.blocks):
            p = f"blk.{i}."
            t += [
                (p + "attn_norm.weight", b.attn_norm.weight, [d], False),
                (p + "attn_q.weight", b.q.weight, [d, d], True),
                (p + "attn_k.weight", b.kk.weight, [d, d], True),
                (p + "attn_v.weight", b.v.weight, [d, d], True),
                (p + "attn_output.weight", b.o.weight, [d, d], True),
                (p + "attn_q_norm.weight", b.q_norm.weight, [d], False),
                (p + "attn_k_norm.weight", b.k_norm.weight, [d], False),
                (p + "ffn_norm.weight", b.ffn_norm.weight, [d], False),
                (p + "ffn_gate_inp.weight", b.router.weight, [d, E], False),  # router stays F32
                (p + "ffn_gate_exps.weight", b.w_gate, [d, Fw, E], True),
                (p + "ffn_up_exps.weight", b.w_up, [d, Fw, E], True),
                (p + "ffn_down_exps.weight", b.w_down, [Fw, d, E], True),
            ]
        t += [("output_norm.weight", self.norm.weight, [d], False),
              ("output.weight", self.out.weight, [d, V], True)]
        return t
