"""Deterministic byte-level BPE trainer and encoder (GPT-2 byte-to-unicode form).

The vocabulary is 256 byte tokens in byte order, then one token per merge in
rank order, then control tokens.  Text is split with the GPT-2 pre-tokenizer
regex (GGUF tokenizer.ggml.pre "gpt-2"/"olmo"), so the engine's gpt2 tokenizer
splits it the same way.  Ties between equally frequent pairs are broken by the
pair's token strings, so training depends only on the corpus.
"""
import heapq
import json
from collections import Counter

import regex

# GPT-2 pattern, including the trailing \s+ alternative (GGUF-MOE.md 7.2, R1).
GPT2_PAT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """Byte -> printable code point map of GPT-2's byte-level BPE."""
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
U2B = {u: b for b, u in B2U.items()}
SPECIALS = ["<|endoftext|>"]  # eos, also used as bos (document separator)


def pretokenize(text):
    return GPT2_PAT.findall(text)


def to_symbols(piece):
    return "".join(B2U[b] for b in piece.encode("utf-8"))


def train(texts, vocab_size, min_freq=2, log=None):
    """Learn merges until the vocabulary (bytes + merges + specials) reaches
    vocab_size.  texts: iterable of str.  Returns list of (left, right)."""
    words = Counter()
    for t in texts:
        words.update(pretokenize(t))
    # symbol sequences of distinct pre-tokens, in a fixed (sorted) order
    items = sorted(words.items())
    seqs = [list(to_symbols(w)) for w, _ in items]
    freqs = [f for _, f in items]
    pair_count = Counter()
    pair_where = {}
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_count[(a, b)] += freqs[i]
            pair_where.setdefault((a, b), set()).add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    n_merges = vocab_size - 256 - len(SPECIALS)
    merges = []
    made = set(B2U.values())
    while len(merges) < n_merges and heap:
        negc, p = heapq.heappop(heap)
        if pair_count.get(p, 0) != -negc:
            continue  # stale entry
        if -negc < min_freq:
            break
        new = p[0] + p[1]
        if new in made:
            # a second route to an existing token would give duplicate strings
            # in the vocabulary; leave this pair unmerged
            pair_count.pop(p, None)
            pair_where.pop(p, None)
            continue
        made.add(new)
        merges.append(p)
        changed = Counter()
        for i in sorted(pair_where.pop(p, ())):
            s = seqs[i]
            f = freqs[i]
            for a, b in zip(s, s[1:]):
                changed[(a, b)] -= f
            j = 0
            out = []
            while j < len(s):
                if j + 1 < len(s) and s[j] == p[0] and s[j + 1] == p[1]:
                    out.append(new)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for a, b in zip(out, out[1:]):
                changed[(a, b)] += f
                pair_where.setdefault((a, b), set()).add(i)
        for q, d in changed.items():
            if d == 0:
                continue
            pair_count[q] += d
            if pair_count[q] <= 0:
                del pair_count[q]
            else:
                heapq.heappush(heap, (-pair_count[q], q))
        pair_count.pop(p, None)
        if log and len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges")
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.tokens = [B2U[b] for b in range(256)] + [a + b for a, b in self.merges] + SPECIALS
        self.ids = {}
        for i, t in enumerate(self.tokens):
            self.ids.setdefault(t, i)  # a merge may rebuild an existing string: keep the first
        self.rank = {m: r for r, m in enumerate(self.merges)}
        self.eos = len(self.tokens) - 1
        self.cache = {}

    def __len__(self):
        return len(self.tokens)

    def _bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        s = list(to_symbols(piece))
        while len(s) > 1:
            best = None
            for k in range(len(s) - 1):
                r = self.rank.get((s[k], s[k + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, k)
            if best is None:
                break
            k = best[1]
            s[k:k + 2] = [s[k] + s[k + 1]]
        ids = [self.ids[x] for x in s]
        if len(self.cache) < 200000:
            self.cache[piece] = ids
        return ids

    def encode(self, text):
        out = []
        for p in pretokenize(text):
            out.extend(self._bpe(p))
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in SPECIALS:
                continue
            bs.extend(U2B[c] for c in t)
        return bs.decode("utf-8", errors="replace")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"merges": [list(m) for m in self.merges]}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["merges"])
