/* synth.c — random-weight MoE models (see synth.h).
 *
 * Weights are normal draws scaled by 1/sqrt(fan_in) (fan_in = ne0, the
 * length of the dot products), so activations stay O(1) and the routers
 * spread tokens over all experts; token embeddings have unit variance and
 * the output / router matrices gains 3 / 2, as in the reference fixtures.  Each row of each tensor has its own
 * PRNG stream derived from (seed, tensor index, row), so the output does not
 * depend on how many threads generate it.  Tensors are generated, quantised
 * and written one at a time: a multi-GB model never sits in memory.
 *
 * The tokenizer is byte-level BPE (tokenizer.ggml.model "gpt2"): 256 byte
 * tokens in GPT-2 byte-to-unicode form (id = byte value), merges learned
 * greedily from a small built-in text, filler tokens of type 5 (unused) when
 * the vocabulary is larger than what the text teaches, and two control tokens
 * at the end: <|endoftext|> (eos) and <|startoftext|> (bos). */
#include "synth.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ms-rng.h"
#include "quant.h"

MsSynthParams ms_synth_default_params(void)
{
    MsSynthParams p = {
        .arch = "olmoe", .n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 0, .head_dim = 0,
        .n_expert = 8, .n_expert_used = 2, .n_ff = 32, .n_vocab = 512,
        .type = MS_TYPE_F32, .seed = 42, .n_threads = 0,
    };
    return p;
}

/* ------------------------------------------------------------------ PRNG */

/* n standard normal floats (Box-Muller, both outputs used). */
static void rng_normal(MsRng *r, float *out, int64_t n)
{
    int64_t i = 0;
    while (i < n) {
        uint64_t a = ms_rng_next(r), b = ms_rng_next(r);
        float u1 = (float)((a >> 40) + 1) * (1.0f / 16777216.0f);  /* (0, 1] */
        float u2 = (float)(b >> 40) * (1.0f / 16777216.0f);        /* [0, 1) */
        float rad = sqrtf(-2.0f * logf(u1));
        float s, c;
        sincosf(6.2831853f * u2, &s, &c);
        out[i++] = rad * c;
        if (i < n) out[i++] = rad * s;
    }
}

/* -------------------------------------------------------------- tokenizer */

/* Built-in training text for the merges: plain English and some code, our
 * own words.  Only its statistics matter. */
static const char synth_text[] =
    "The weather in the valley was calm that morning, and the river ran slowly past the old mill. "
    "A group of students walked along the path, talking about their work and the questions they "
    "wanted to answer before the end of the term. One of them had brought a notebook full of "
    "measurements, another carried a small camera, and the third was reading aloud from a paper "
    "about how water moves through soil and stone. They stopped near the bridge to compare their "
    "notes. The numbers did not agree, which made the discussion more interesting than anyone had "
    "expected. After an hour they decided to repeat the experiment in the afternoon, when the light "
    "would be better and the wind would have changed direction. In the village, the market was "
    "already open. People were selling bread, cheese, apples, and fresh fish from the coast. "
    "Children played between the stalls while their parents argued about prices in a friendly way. "
    "The baker said that the new oven was the best thing that had happened to the town in years, "
    "and most of his customers agreed with him. When the students returned, they wrote a short "
    "report that explained what they had found, what they still did not understand, and what they "
    "would try next time. The teacher read it carefully and wrote three questions in the margin. "
    "Every answer leads to another question, she said, and that is how we learn anything at all. "
    "Models of language are trained on large amounts of text. A mixture of experts model sends each "
    "token to a small number of expert networks chosen by a router, so that only part of the model "
    "is used for any one token. The router computes a score for every expert, keeps the best ones, "
    "and mixes their outputs with weights. Researchers study which experts are chosen for which "
    "kinds of input, how often each expert is used, and what happens when an expert is removed. "
    "They measure the effect on the loss, on the perplexity of held out text, and on the quality "
    "of the generated answers.\n"
    "def mean(values):\n"
    "    if not values:\n"
    "        return 0.0\n"
    "    return sum(values) / len(values)\n"
    "\n"
    "def count_words(text):\n"
    "    counts = {}\n"
    "    for word in text.split():\n"
    "        counts[word] = counts.get(word, 0) + 1\n"
    "    return counts\n"
    "\n"
    "class Router:\n"
    "    def __init__(self, n_expert, k):\n"
    "        self.n_expert = n_expert\n"
    "        self.k = k\n"
    "\n"
    "    def select(self, scores):\n"
    "        order = sorted(range(self.n_expert), key=lambda i: -scores[i])\n"
    "        return order[:self.k]\n"
    "\n"
    "for i in range(10):\n"
    "    print(i, mean([i, i + 1, i + 2]))\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    int total = 0;\n"
    "    for (int i = 0; i < argc; i++) {\n"
    "        total += (int)strlen(argv[i]);\n"
    "    }\n"
    "    printf(\"%d arguments, %d bytes\\n\", argc, total);\n"
    "    return 0;\n"
    "}\n"
    "static const char *name_of(const struct item *it) { return it ? it->name : \"none\"; }\n"
    "The year 2024 had 366 days; the price rose from $19.99 to $24.50, about 22.6% higher. "
    "Call 555-0142 before 9:30 or write to the office at 12 Main Street. "
    "Is it true? Yes! It is, and it isn't what we thought: we'll see, they're sure, you've heard.\n";

/* GPT-2 byte -> unicode code point. */
static uint32_t byte_to_cp(int b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
        return (uint32_t)b;
    /* the others take 256, 257, ... in byte order */
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))) n++;
    return 256u + (uint32_t)n;
}

static int put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    o[0] = (char)(0xe0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

typedef struct {
    int n_tok, cap_tok;
    char **tok;          /* token texts */
    int n_merge;
    char **merge;        /* "left right" */
} Vocab;

static void vocab_free(Vocab *v)
{
    for (int i = 0; i < v->n_tok; i++) free(v->tok[i]);
    for (int i = 0; i < v->n_merge; i++) free(v->merge[i]);
    free(v->tok);
    free(v->merge);
}

static int vocab_add(Vocab *v, char *s)
{
    if (!s) return MS_ENOMEM;
    if (v->n_tok == v->cap_tok) {
        int nc = v->cap_tok ? v->cap_tok * 2 : 1024;
        char **nt = realloc(v->tok, (size_t)nc * sizeof *nt);
        if (!nt) { free(s); return MS_ENOMEM; }
        v->tok = nt;
        v->cap_tok = nc;
    }
    v->tok[v->n_tok++] = s;
    return v->n_tok - 1;
}

static int char_class(unsigned char c)
{
    if ((c | 32) >= 'a' && (c | 32) <= 'z') return 1;
    if (c >= '0' && c <= '9') return 2;
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') return 3;
    return 4;
}

typedef struct { int *sym; int n; int freq; } Word;

/* Learn up to max_merges merges from synth_text (pieces split roughly as
 * the GPT-2 pre-tokenizer does: optional space + letters / digits /
 * punctuation, whitespace runs).  Deterministic: most frequent pair, ties
 * to the lowest (left, right) id pair; a pair whose concatenation is already
 * a token is never merged (token texts must stay unique). */
static int learn_merges(Vocab *v, int max_merges)
{
    const char *t = synth_text;
    size_t tl = strlen(t);
    Word *w = NULL;
    int nw = 0, capw = 0, rc = 0;
    for (size_t i = 0; i < tl;) {
        size_t j = i;
        int cls = char_class((unsigned char)t[i]);
        if (t[i] == ' ' && i + 1 < tl && char_class((unsigned char)t[i + 1]) != 3) {
            j = i + 1;
            cls = char_class((unsigned char)t[j]);
        }
        while (j < tl && char_class((unsigned char)t[j]) == cls) j++;
        if (j == i) j = i + 1;
        /* dedupe identical pieces (the text is small: linear search) */
        int found = -1;
        for (int k = 0; k < nw && found < 0; k++) {
            if (w[k].n != (int)(j - i)) continue;
            int same = 1;
            for (int q = 0; q < w[k].n && same; q++) same = w[k].sym[q] == (unsigned char)t[i + q];
            if (same) found = k;
        }
        if (found >= 0) {
            w[found].freq++;
        } else {
            if (nw == capw) {
                capw = capw ? capw * 2 : 256;
                Word *nwp = realloc(w, (size_t)capw * sizeof *nwp);
                if (!nwp) { rc = MS_ENOMEM; goto out; }
                w = nwp;
            }
            w[nw].n = (int)(j - i);
            w[nw].freq = 1;
            w[nw].sym = malloc((size_t)w[nw].n * sizeof(int));
            if (!w[nw].sym) { rc = MS_ENOMEM; goto out; }
            for (int q = 0; q < w[nw].n; q++) w[nw].sym[q] = (unsigned char)t[i + q];
            nw++;
        }
        i = j;
    }

    /* pair counts in an open-addressing table keyed by (a << 32 | b) */
    size_t hcap = 1 << 15;
    uint64_t *hk = malloc(hcap * sizeof *hk);
    int *hv = malloc(hcap * sizeof *hv);
    if (!hk || !hv) { free(hk); free(hv); rc = MS_ENOMEM; goto out; }
    while (v->n_merge < max_merges) {
        memset(hk, 0xff, hcap * sizeof *hk);
        memset(hv, 0, hcap * sizeof *hv);
        for (int k = 0; k < nw; k++)
            for (int q = 0; q + 1 < w[k].n; q++) {
                uint64_t key = (uint64_t)w[k].sym[q] << 32 | (uint32_t)w[k].sym[q + 1];
                size_t h = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 49) & (hcap - 1);
                while (hk[h] != key && hk[h] != UINT64_MAX) h = (h + 1) & (hcap - 1);
                hk[h] = key;
                hv[h] += w[k].freq;
            }
        /* best pair not creating a duplicate token */
        uint64_t best = UINT64_MAX;
        int bestc = 0;
        char *cat = NULL;
        for (;;) {
            best = UINT64_MAX;
            bestc = 0;
            for (size_t h = 0; h < hcap; h++)
                if (hk[h] != UINT64_MAX && hv[h] > 0 &&
                    (hv[h] > bestc || (hv[h] == bestc && hk[h] < best))) {
                    best = hk[h];
                    bestc = hv[h];
                }
            if (!bestc) break;
            const char *l = v->tok[best >> 32], *r = v->tok[(uint32_t)best];
            size_t ll = strlen(l), rl = strlen(r);
            cat = malloc(ll + rl + 1);
            if (!cat) { rc = MS_ENOMEM; break; }
            memcpy(cat, l, ll);
            memcpy(cat + ll, r, rl + 1);
            int dup = 0;
            for (int q = 0; q < v->n_tok && !dup; q++) dup = !strcmp(v->tok[q], cat);
            if (!dup) break;
            free(cat);
            cat = NULL;
            for (size_t h = 0; h < hcap; h++) /* ban it for this round */
                if (hk[h] == best) hv[h] = 0;
        }
        if (rc < 0 || !bestc) break;
        int a = (int)(best >> 32), b = (int)(uint32_t)best;
        size_t ml = strlen(v->tok[a]) + strlen(v->tok[b]) + 2;
        char *m = malloc(ml);
        if (!m) { free(cat); rc = MS_ENOMEM; break; }
        snprintf(m, ml, "%s %s", v->tok[a], v->tok[b]);
        int id = vocab_add(v, cat);
        if (id < 0) { free(m); rc = id; break; }
        v->merge[v->n_merge++] = m;
        for (int k = 0; k < nw; k++) {
            int o = 0;
            for (int q = 0; q < w[k].n; q++) {
                if (q + 1 < w[k].n && w[k].sym[q] == a && w[k].sym[q + 1] == b) {
                    w[k].sym[o++] = id;
                    q++;
                } else {
                    w[k].sym[o++] = w[k].sym[q];
                }
            }
            w[k].n = o;
        }
    }
    free(hk);
    free(hv);
out:
    for (int k = 0; k < nw; k++) free(w[k].sym);
    free(w);
    return rc;
}

/* Whether a token text (GPT-2 byte-to-unicode form) decodes to digits and
 * whitespace only, with at least one digit: the "digit" class of the
 * analyses (docs/analysis.md, npmi --by text). */
static bool text_is_digit(const char *t)
{
    int digits = 0;
    for (const unsigned char *u = (const unsigned char *)t; *u;) {
        uint32_t cp;
        if (*u < 0x80) { cp = *u; u += 1; }
        else if ((*u & 0xe0) == 0xc0 && u[1]) { cp = (uint32_t)(*u & 0x1f) << 6 | (u[1] & 0x3f); u += 2; }
        else return false;  /* byte tokens never need 3 bytes */
        if (cp >= '0' && cp <= '9') digits++;
        /* bytes 0..0x20 are not printable: they map to 256 + byte */
        else if (!(cp == 256 + ' ' || (cp >= 256 + '\t' && cp <= 256 + '\r'))) return false;
    }
    return digits > 0;
}

/* Build the full vocabulary of n_vocab tokens and write the tokenizer keys.
 * digit (n_vocab entries, may be NULL) receives 1 for the digit tokens. */
static int write_tokenizer(MsGgufWriter *w, const char *pre, int n_vocab, uint8_t *digit, MsError *err)
{
    Vocab v = { 0 };
    int rc = 0;
    int32_t *types = NULL;
    int max_merges = n_vocab - 256 - 2;
    v.merge = malloc((size_t)(max_merges > 0 ? max_merges : 1) * sizeof *v.merge);
    if (!v.merge) return ms_error_set(err, MS_ENOMEM, "synth: out of memory");
    for (int b = 0; b < 256 && rc >= 0; b++) {
        char *s = malloc(4);
        if (s) s[put_utf8(s, byte_to_cp(b))] = 0;
        rc = vocab_add(&v, s);
    }
    if (rc >= 0) rc = learn_merges(&v, max_merges);
    int n_normal = v.n_tok;
    for (int i = n_normal; rc >= 0 && i < n_vocab - 2; i++) {
        char *s = malloc(32);
        if (s) snprintf(s, 32, "<|unused_%d|>", i - n_normal);
        rc = vocab_add(&v, s);
    }
    if (rc >= 0) rc = vocab_add(&v, strdup("<|endoftext|>"));
    if (rc >= 0) rc = vocab_add(&v, strdup("<|startoftext|>"));
    if (rc >= 0) {
        types = malloc((size_t)n_vocab * sizeof *types);
        if (!types) rc = MS_ENOMEM;
    }
    if (rc < 0) {
        vocab_free(&v);
        free(types);
        return ms_error_set(err, MS_ENOMEM, "synth: out of memory");
    }
    for (int i = 0; i < n_vocab; i++)
        types[i] = i < n_normal ? 1 : i < n_vocab - 2 ? 5 : 3;
    if (digit)
        for (int i = 0; i < n_vocab; i++) digit[i] = i < n_normal && text_is_digit(v.tok[i]);
    rc = 0;
    rc |= ms_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= ms_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    rc |= ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, (uint64_t)v.n_tok);
    rc |= ms_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MS_GGUF_INT32, types, (uint64_t)n_vocab);
    rc |= ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merge, (uint64_t)v.n_merge);
    rc |= ms_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n_vocab - 2));
    rc |= ms_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n_vocab - 1));
    rc |= ms_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    rc |= ms_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    vocab_free(&v);
    free(types);
    return rc ? ms_error_set(err, MS_EIO, "synth: cannot add tokenizer metadata") : 0;
}

/* ---------------------------------------------------------------- tensors */

typedef enum { INIT_MATRIX, INIT_NORM, INIT_BIAS } Init;

typedef struct {
    char name[64];
    uint32_t n_dims;
    int64_t ne[3];
    int type;
    Init init;
    float gain;    /* matrices: sd = gain / sqrt(ne0) */
    int kind;      /* TK_*: what a plant may change in it */
    int layer;     /* block index (TK_* other than TK_OTHER/TK_EMBD) */
    int seed_index;/* tensor index of the PRNG streams; -1 = its own */
} TSpec;

/* Tensor roles the plants act on. */
enum {
    TK_OTHER, TK_EMBD, TK_ROUTER, TK_FFN_NORM,
    TK_OUTW,       /* 2-D matrix writing the residual stream: row = channel */
    TK_GATE_EXPS, TK_UP_EXPS, TK_DOWN_EXPS,
    TK_OUTB,       /* bias added to the residual stream: element = channel */
    TK_DOWN_B,     /* expert output biases [expert][channel] */
    TK_ROUTER_B,   /* router logit bias (gpt-oss) */
    TK_FFN_NORM_B, /* pre-FFN norm bias (phimoe): feeds the routers */
};

typedef struct {
    TSpec *v;
    int n, cap;
    int wtype;     /* requested weight type */
    int bad;       /* allocation failure while adding */
} TList;

/* A weight type that can store rows of ne0 elements: the requested one, or
 * llama-quantize-like fallbacks for rows that are not whole K blocks. */
int ms_synth_fit_type(int type, int64_t ne0)
{
    if (ne0 % ms_type_block_elems(type) == 0) return type;
    switch (type) {
    case MS_TYPE_Q2_K: case MS_TYPE_Q3_K: type = MS_TYPE_IQ4_NL; break;   /* as llama-quantize */
    case MS_TYPE_Q4_K: type = MS_TYPE_Q5_0; break;
    case MS_TYPE_Q5_K: type = MS_TYPE_Q5_1; break;
    case MS_TYPE_Q6_K: type = MS_TYPE_Q8_0; break;
    default: break;
    }
    return ne0 % ms_type_block_elems(type) == 0 ? type : MS_TYPE_F16;
}

static void add_t(TList *l, Init init, int n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
                  const char *fmt, int layer)
{
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        TSpec *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) { l->bad = 1; return; }
        l->v = nv;
        l->cap = nc;
    }
    TSpec *t = &l->v[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->n_dims = (uint32_t)n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->init = init;
    t->gain = 1.0f;
    /* MXFP4: llama-quantize's MXFP4_MOE mix (experts MXFP4, other matrices Q8_0) */
    int want = l->wtype == MS_TYPE_MXFP4 && n_dims < 3 ? MS_TYPE_Q8_0 : l->wtype;
    t->type = init == INIT_MATRIX ? ms_synth_fit_type(want, ne0) : MS_TYPE_F32;
    t->kind = TK_OTHER;
    t->layer = layer;
    t->seed_index = -1;
}

static void set_kind(TList *l, int kind)
{
    if (!l->bad && l->n > 0) l->v[l->n - 1].kind = kind;
}

static void set_gain(TList *l, float g)
{
    if (!l->bad && l->n > 0) l->v[l->n - 1].gain = g;
}

/* 2-D weight {in, out} in the weight type. */
#define MAT(l, in, out, fmt, il) add_t(l, INIT_MATRIX, 2, in, out, 1, fmt, il)
#define EXPS(l, in, out, ne, fmt, il) add_t(l, INIT_MATRIX, 3, in, out, ne, fmt, il)
#define NORM(l, n, fmt, il) add_t(l, INIT_NORM, 1, n, 1, 1, fmt, il)
#define BIAS(l, n, fmt, il) add_t(l, INIT_BIAS, 1, n, 1, 1, fmt, il)

typedef struct {
    int arch;        /* index into arch_names */
    int E, H, Hkv, hd, L, X, K, F, V;
    int n_rot;       /* rotated dims per head (phimoe: its LongRoPE factors are n_rot/2) */
    /* deepseek2 */
    int q_lora, kv_lora, rope, nope, vdim, dense_lead, n_shared, ff_dense;
    bool lite;
    bool v3;         /* DeepSeek-V3 layout (synth.h) */
    int groups, group_used;
    int ff_shexp;    /* qwen2moe */
} Shape;

enum { A_OLMOE, A_QWEN2MOE, A_LLAMA, A_GRANITEMOE, A_DEEPSEEK2, A_QWEN3MOE, A_GPTOSS, A_PHIMOE, A_COUNT };
static const char *const arch_names[A_COUNT] = { "olmoe", "qwen2moe", "llama", "granitemoe", "deepseek2",
                                                 "qwen3moe", "gpt-oss", "phimoe" };

static void build_tensors(TList *l, const Shape *s)
{
    const int E = s->E;
    /* Gains as in the fixtures: embeddings of unit variance (token identity
     * must survive the residual stream), output and router a little sharper
     * so logits and routing are not flat. */
    const bool phi = s->arch == A_PHIMOE, oss = s->arch == A_GPTOSS;
    MAT(l, E, s->V, "token_embd.weight", 0);
    set_gain(l, sqrtf((float)E));
    set_kind(l, TK_EMBD);
    NORM(l, E, "output_norm.weight", 0);
    if (phi) BIAS(l, E, "output_norm.bias", 0);
    if (s->arch != A_GRANITEMOE) { /* granite: tied */
        MAT(l, E, s->V, "output.weight", 0);
        set_gain(l, 3.0f);
    }
    if (phi) {
        BIAS(l, s->V, "output.bias", 0);
        /* LongRoPE: per-pair frequency divisors around 1 */
        NORM(l, s->n_rot / 2, "rope_factors_long.weight", 0);
        NORM(l, s->n_rot / 2, "rope_factors_short.weight", 0);
    }
    for (int i = 0; i < s->L; i++) {
        NORM(l, E, "blk.%d.attn_norm.weight", i);
        if (phi) BIAS(l, E, "blk.%d.attn_norm.bias", i);
        if (s->arch == A_DEEPSEEK2) {
            int qk = s->nope + s->rope;
            if (s->lite) {
                MAT(l, E, s->H * qk, "blk.%d.attn_q.weight", i);
            } else {
                NORM(l, s->q_lora, "blk.%d.attn_q_a_norm.weight", i);
                MAT(l, E, s->q_lora, "blk.%d.attn_q_a.weight", i);
                MAT(l, s->q_lora, s->H * qk, "blk.%d.attn_q_b.weight", i);
            }
            NORM(l, s->kv_lora, "blk.%d.attn_kv_a_norm.weight", i);
            MAT(l, E, s->kv_lora + s->rope, "blk.%d.attn_kv_a_mqa.weight", i);
            if (s->v3) {   /* kv_b split per head as 2025+ converters write it */
                EXPS(l, s->nope, s->kv_lora, s->H, "blk.%d.attn_k_b.weight", i);
                EXPS(l, s->kv_lora, s->vdim, s->H, "blk.%d.attn_v_b.weight", i);
            } else {
                MAT(l, s->kv_lora, s->H * (s->nope + s->vdim), "blk.%d.attn_kv_b.weight", i);
            }
            MAT(l, s->H * s->vdim, E, "blk.%d.attn_output.weight", i);
            set_kind(l, TK_OUTW);
        } else {
            const bool qkv_b = s->arch == A_QWEN2MOE || phi || oss;
            MAT(l, E, s->H * s->hd, "blk.%d.attn_q.weight", i);
            if (qkv_b) BIAS(l, s->H * s->hd, "blk.%d.attn_q.bias", i);
            MAT(l, E, s->Hkv * s->hd, "blk.%d.attn_k.weight", i);
            if (qkv_b) BIAS(l, s->Hkv * s->hd, "blk.%d.attn_k.bias", i);
            MAT(l, E, s->Hkv * s->hd, "blk.%d.attn_v.weight", i);
            if (qkv_b) BIAS(l, s->Hkv * s->hd, "blk.%d.attn_v.bias", i);
            MAT(l, s->H * s->hd, E, "blk.%d.attn_output.weight", i);
            set_kind(l, TK_OUTW);
            if (phi || oss) {
                BIAS(l, E, "blk.%d.attn_output.bias", i);
                set_kind(l, TK_OUTB);
            }
            if (s->arch == A_OLMOE) {
                NORM(l, s->H * s->hd, "blk.%d.attn_q_norm.weight", i);
                NORM(l, s->Hkv * s->hd, "blk.%d.attn_k_norm.weight", i);
            } else if (s->arch == A_QWEN3MOE) {   /* per head, shared by the heads */
                NORM(l, s->hd, "blk.%d.attn_q_norm.weight", i);
                NORM(l, s->hd, "blk.%d.attn_k_norm.weight", i);
            }
            if (oss) BIAS(l, s->H, "blk.%d.attn_sinks.weight", i);
        }
        NORM(l, E, oss ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", i);
        set_kind(l, TK_FFN_NORM);
        if (phi) {
            BIAS(l, E, "blk.%d.ffn_norm.bias", i);
            set_kind(l, TK_FFN_NORM_B);
        }
        if (s->arch == A_DEEPSEEK2 && i < s->dense_lead) {
            MAT(l, E, s->ff_dense, "blk.%d.ffn_gate.weight", i);
            MAT(l, E, s->ff_dense, "blk.%d.ffn_up.weight", i);
            MAT(l, s->ff_dense, E, "blk.%d.ffn_down.weight", i);
            set_kind(l, TK_OUTW);
            continue;
        }
        /* router: stays F32 like norms */
        add_t(l, INIT_MATRIX, 2, E, s->X, 1, "blk.%d.ffn_gate_inp.weight", i);
        if (!l->bad) l->v[l->n - 1].type = MS_TYPE_F32;
        set_gain(l, 2.0f);
        set_kind(l, TK_ROUTER);
        if (oss) {
            BIAS(l, s->X, "blk.%d.ffn_gate_inp.bias", i);
            set_kind(l, TK_ROUTER_B);
        }
        if (s->v3) {
            BIAS(l, s->X, "blk.%d.exp_probs_b.bias", i);
            set_kind(l, TK_ROUTER_B);
        }
        EXPS(l, E, s->F, s->X, "blk.%d.ffn_gate_exps.weight", i);
        set_kind(l, TK_GATE_EXPS);
        EXPS(l, E, s->F, s->X, "blk.%d.ffn_up_exps.weight", i);
        set_kind(l, TK_UP_EXPS);
        EXPS(l, s->F, E, s->X, "blk.%d.ffn_down_exps.weight", i);
        set_kind(l, TK_DOWN_EXPS);
        if (oss) {   /* expert biases: [expert][unit] and [expert][channel] */
            add_t(l, INIT_BIAS, 2, s->F, s->X, 1, "blk.%d.ffn_gate_exps.bias", i);
            add_t(l, INIT_BIAS, 2, s->F, s->X, 1, "blk.%d.ffn_up_exps.bias", i);
            add_t(l, INIT_BIAS, 2, E, s->X, 1, "blk.%d.ffn_down_exps.bias", i);
            set_kind(l, TK_DOWN_B);
        }
        if (s->arch == A_QWEN2MOE) {
            add_t(l, INIT_MATRIX, 1, E, 1, 1, "blk.%d.ffn_gate_inp_shexp.weight", i);
            if (!l->bad) l->v[l->n - 1].type = MS_TYPE_F32;
            MAT(l, E, s->ff_shexp, "blk.%d.ffn_gate_shexp.weight", i);
            MAT(l, E, s->ff_shexp, "blk.%d.ffn_up_shexp.weight", i);
            MAT(l, s->ff_shexp, E, "blk.%d.ffn_down_shexp.weight", i);
            set_kind(l, TK_OUTW);
        } else if (s->arch == A_DEEPSEEK2) {
            int sw = s->n_shared * s->F;
            MAT(l, E, sw, "blk.%d.ffn_gate_shexp.weight", i);
            MAT(l, E, sw, "blk.%d.ffn_up_shexp.weight", i);
            MAT(l, sw, E, "blk.%d.ffn_down_shexp.weight", i);
            set_kind(l, TK_OUTW);
        }
    }
}

/* ------------------------------------------------------------ plants */

/* Planted structure (synth.h, docs/cli.md).  A few channels of the residual
 * stream are reserved: every matrix that writes the residual stream
 * (attention output, FFN down projections) has zero rows for them, so at
 * every layer they hold exactly the token's embedding.  Members of a planted
 * token set carry PLANT_A in their channel (everyone else 0), and every
 * token carries PLANT_B in a "bias" channel, which lets a router row
 * penalise non-members.  Only the router rows of the planted experts read
 * the reserved channels.  Magnitudes leave margins of many standard
 * deviations of the random router logits, so the planted routing holds for
 * every token, not just most. */
#define PLANT_A 8.0f        /* member value of a token-set channel */
#define PLANT_B 8.0f        /* bias channel value, all tokens */
#define PLANT_ROUTE_IN 24.0f   /* router weight on the member channel */
#define PLANT_ROUTE_BIAS 8.0f  /* router penalty on the bias channel: non-members */
#define PLANT_FF_IN 2.0f    /* super expert: gate/up weight of unit 0 on its channel */
#define PLANT_FF_OUT 8.0f   /* super expert: down weight from unit 0 to one channel */

enum { MEMBER_ROUTE = 1, MEMBER_SUPER = 2 };

typedef struct {
    bool any;               /* route or super plant (reserved channels used) */
    bool route, super, chain;
    int E, F;
    int c_bias, c_route, c_super;  /* reserved channels */
    int c_out;              /* the super expert's massive output channel */
    int route_l, route_e, super_l, super_e;
    const uint8_t *member;  /* per token: MEMBER_* bits */
} Plant;

/* Channels whose residual value is never written: the plant channels, and
 * for chains the lower half, which alone feeds the routers. */
static bool reserved(const Plant *p, int c)
{
    if (p->chain && c < p->E / 2) return true;
    return p->any && (c == p->c_bias || (p->route && c == p->c_route) || (p->super && c == p->c_super));
}

static void plant_row(const Plant *p, const TSpec *t, int64_t r, float *x)
{
    const int E = p->E;
    switch (t->kind) {
    case TK_EMBD:
        if (!p->any) return;
        x[p->c_bias] = PLANT_B;
        if (p->route) x[p->c_route] = p->member[r] & MEMBER_ROUTE ? PLANT_A : 0.0f;
        if (p->super) x[p->c_super] = p->member[r] & MEMBER_SUPER ? PLANT_A : 0.0f;
        return;
    case TK_OUTW:
        if (reserved(p, (int)r)) memset(x, 0, (size_t)t->ne[0] * sizeof *x);
        return;
    case TK_OUTB: case TK_DOWN_B: case TK_FFN_NORM_B:
        /* biases on the residual stream (or, for the norm bias, on what the
         * routers read) leave the reserved channels alone; a 2-D row is one
         * expert's [channel] vector */
        for (int64_t c = 0; c < t->ne[0]; c++)
            if (reserved(p, (int)c)) x[c] = 0.0f;
        return;
    case TK_DOWN_EXPS: {
        int e = (int)(r / E), c = (int)(r % E);
        if (reserved(p, c)) {
            memset(x, 0, (size_t)t->ne[0] * sizeof *x);
        } else if (p->super && t->layer == p->super_l && e == p->super_e) {
            x[0] = c == p->c_out ? PLANT_FF_OUT : 0.0f;  /* unit 0 feeds c_out only */
        }
        return;
    }
    case TK_GATE_EXPS: case TK_UP_EXPS: {
        int e = (int)(r / p->F), f = (int)(r % p->F);
        if (p->super && t->layer == p->super_l && e == p->super_e && f == 0) x[p->c_super] = PLANT_FF_IN;
        return;
    }
    case TK_ROUTER: {
        int e = (int)r;
        if (p->chain)  /* routers read the lower half only */
            for (int c = E / 2; c < E; c++) x[c] = 0.0f;
        if (p->any) {
            x[p->c_bias] = 0.0f;
            if (p->route) x[p->c_route] = 0.0f;
            if (p->super) x[p->c_super] = 0.0f;
        }
        if (p->route && t->layer == p->route_l && e == p->route_e) {
            x[p->c_route] = PLANT_ROUTE_IN;
            x[p->c_bias] = -PLANT_ROUTE_BIAS;
        }
        if (p->super && t->layer == p->super_l && e == p->super_e) {
            x[p->c_super] = PLANT_ROUTE_IN;
            x[p->c_bias] = -PLANT_ROUTE_BIAS;  /* it runs on its tokens only */
        }
        return;
    }
    default:
        return;
    }
}

/* ------------------------------------------------- parallel generation */

typedef struct {
    const TSpec *t;
    const Plant *plant;     /* NULL: no plants */
    uint64_t seed;
    int tindex;
    uint8_t *buf;
    size_t row_bytes;
    int64_t nrows;
    int64_t next;           /* next row block to take */
    pthread_mutex_t mu;
    int rc;
} Job;

#define ROWS_PER_TAKE 16

static void gen_row(const Job *j, int64_t r, float *x)
{
    const TSpec *t = j->t;
    /* stream per (seed, tensor, row): thread-count independent */
    MsRng rng;
    int ti = t->seed_index >= 0 ? t->seed_index : j->tindex;
    uint64_t s = j->seed ^ ((uint64_t)(ti + 1) << 40) ^ (uint64_t)r;
    uint64_t mix = ms_splitmix64(&s);
    ms_rng_seed(&rng, mix);
    rng_normal(&rng, x, t->ne[0]);
    float sc;
    switch (t->init) {
    case INIT_NORM:
        for (int64_t i = 0; i < t->ne[0]; i++) x[i] = 1.0f + 0.1f * x[i];
        if (j->plant) plant_row(j->plant, t, r, x);
        return;
    case INIT_BIAS:
        sc = 0.1f;
        break;
    default:
        sc = t->gain / sqrtf((float)t->ne[0]);
        break;
    }
    for (int64_t i = 0; i < t->ne[0]; i++) x[i] *= sc;
    if (j->plant) plant_row(j->plant, t, r, x);
}

static void *worker(void *arg)
{
    Job *j = arg;
    float *x = malloc((size_t)j->t->ne[0] * sizeof *x);
    if (!x) {
        pthread_mutex_lock(&j->mu);
        j->rc = MS_ENOMEM;
        pthread_mutex_unlock(&j->mu);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int64_t r0 = j->next;
        j->next += ROWS_PER_TAKE;
        int stop = j->rc < 0;
        pthread_mutex_unlock(&j->mu);
        if (stop || r0 >= j->nrows) break;
        int64_t r1 = MS_MIN(r0 + ROWS_PER_TAKE, j->nrows);
        for (int64_t r = r0; r < r1; r++) {
            gen_row(j, r, x);
            uint8_t *dst = j->buf + (size_t)r * j->row_bytes;
            int rc = 0;
            if (j->t->type == MS_TYPE_F32) memcpy(dst, x, j->row_bytes);
            else rc = ms_quantize_row(j->t->type, x, dst, j->t->ne[0]);
            if (rc < 0) {
                pthread_mutex_lock(&j->mu);
                j->rc = rc;
                pthread_mutex_unlock(&j->mu);
                break;
            }
        }
    }
    free(x);
    return NULL;
}

static int gen_tensor(const TSpec *t, const Plant *plant, int tindex, uint64_t seed, uint8_t *buf,
                      int n_threads)
{
    Job j = {
        .t = t, .plant = plant, .seed = seed, .tindex = tindex, .buf = buf,
        .row_bytes = ms_row_bytes(t->type, t->ne[0]),
        .nrows = t->ne[1] * t->ne[2],
    };
    pthread_mutex_init(&j.mu, NULL);
    int nt = (int)MS_MIN((int64_t)n_threads, (j.nrows + ROWS_PER_TAKE - 1) / ROWS_PER_TAKE);
    pthread_t th[16];
    int started = 0;
    for (int i = 1; i < nt && i < 16; i++)
        if (pthread_create(&th[started], NULL, worker, &j) == 0) started++;
    worker(&j);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    return j.rc;
}

/* ------------------------------------------------------------------ write */

int ms_synth_ftype(int type)
{
    switch (type) {
    case MS_TYPE_F32: return 0;
    case MS_TYPE_F16: return 1;
    case MS_TYPE_Q4_0: return 2;
    case MS_TYPE_Q4_1: return 3;
    case MS_TYPE_Q8_0: return 7;
    case MS_TYPE_Q5_0: return 8;
    case MS_TYPE_Q5_1: return 9;
    case MS_TYPE_Q2_K: return 10;
    case MS_TYPE_Q3_K: return 11;
    case MS_TYPE_Q4_K: return 14;
    case MS_TYPE_Q5_K: return 16;
    case MS_TYPE_Q6_K: return 18;
    case MS_TYPE_BF16: return 32;
    case MS_TYPE_IQ4_NL: return 25;
    case MS_TYPE_MXFP4: return 38;   /* llama.cpp's MOSTLY_MXFP4_MOE */
    default: return 0;
    }
}

static int check_params(const MsSynthParams *p, Shape *s, MsError *err)
{
    memset(s, 0, sizeof *s);
    s->arch = -1;
    for (int a = 0; a < A_COUNT; a++)
        if (p->arch && !strcmp(p->arch, arch_names[a])) s->arch = a;
    if (s->arch < 0)
        return ms_error_set(err, MS_EINVAL, "synth: unknown architecture '%s' (olmoe, qwen2moe, llama, granitemoe, "
                            "deepseek2, qwen3moe, gpt-oss, phimoe)", p->arch ? p->arch : "(none)");
#define NEED(c, ...) do { if (!(c)) return ms_error_set(err, MS_EINVAL, "synth: " __VA_ARGS__); } while (0)
    NEED(p->n_layer >= 1 && p->n_layer <= 1024, "layers must be in 1..1024 (got %d)", p->n_layer);
    NEED(p->n_embd >= 2 && p->n_embd <= 65536, "embd must be in 2..65536 (got %d)", p->n_embd);
    const bool free_hd = s->arch == A_QWEN3MOE || s->arch == A_GPTOSS;   /* head width from key_length */
    NEED(p->head_dim == 0 || free_hd, "a head width of its own (head_dim %d) needs qwen3moe or gpt-oss", p->head_dim);
    NEED(p->head_dim >= 0 && p->head_dim <= 4096, "head_dim must be in 0..4096 (got %d)", p->head_dim);
    NEED(p->n_head >= 1 && (p->head_dim > 0 || p->n_embd % p->n_head == 0), "heads (%d) must divide embd (%d)",
         p->n_head, p->n_embd);
    int hkv = p->n_head_kv ? p->n_head_kv : p->n_head;
    NEED(hkv >= 1 && hkv <= p->n_head && p->n_head % hkv == 0, "kv-heads (%d) must divide heads (%d)", hkv, p->n_head);
    NEED(s->arch != A_OLMOE || hkv == p->n_head, "olmoe needs kv-heads = heads");
    NEED(p->n_expert >= 1 && p->n_expert <= 256, "experts must be in 1..256 (got %d)", p->n_expert);
    NEED(p->n_expert_used >= 1 && p->n_expert_used <= p->n_expert, "used (%d) must be in 1..experts (%d)",
         p->n_expert_used, p->n_expert);
    NEED(p->n_ff >= 1 && p->n_ff <= 1 << 20, "ff must be in 1..1048576 (got %d)", p->n_ff);
    NEED(p->n_vocab >= 258 && p->n_vocab <= 1 << 22, "vocab must be in 258..4194304 (got %d): 256 bytes + 2 specials",
         p->n_vocab);
    NEED(ms_type_is_supported(p->type) && ms_type_block_elems(p->type) > 0,
         "weight type %s is not supported for synthesis", ms_type_name(p->type));
    s->E = p->n_embd; s->H = p->n_head; s->Hkv = hkv; s->hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    s->L = p->n_layer; s->X = p->n_expert; s->K = p->n_expert_used; s->F = p->n_ff; s->V = p->n_vocab;
    NEED(s->hd % 2 == 0, "head dimension (%d) must be even (RoPE pairs)", s->hd);
    s->n_rot = s->hd;
    s->ff_shexp = 2 * p->n_ff;
    if (s->arch == A_DEEPSEEK2) {
        /* fixture-like MLA proportions: nope = v = head_dim, rope = head_dim/2 */
        NEED(s->hd % 4 == 0, "deepseek2 needs embd/heads (%d) divisible by 4", s->hd);
        s->nope = s->hd; s->vdim = s->hd; s->rope = s->hd / 2;
        s->kv_lora = MS_MAX(p->n_embd / 2, 2);
        s->q_lora = MS_MAX(p->n_embd / 2, 2);
        /* llama.cpp's "lite" rule (no q LoRA): 27 or 26 blocks, or 48 with a 128256 vocabulary */
        s->lite = p->n_layer == 27 || p->n_layer == 26 || (p->n_layer == 48 && p->n_vocab == 128256);
        s->dense_lead = p->n_layer >= 2 ? 1 : 0;
        s->n_shared = 2;
        s->ff_dense = 4 * p->n_ff;
        s->Hkv = s->H;
        if (p->v3) {
            /* groups as DeepSeek-V3 (8 of 256, 4 used), scaled down: the most
             * groups (8, 4 or 2) of >= 2 experts whose better half can
             * supply the top-k */
            s->v3 = true;
            s->Hkv = 1;
            s->n_shared = 1;
            for (int g = 8; g >= 2 && !s->groups; g /= 2)
                if (p->n_expert % g == 0 && p->n_expert / g >= 2 && (g / 2) * (p->n_expert / g) >= p->n_expert_used) {
                    s->groups = g;
                    s->group_used = g / 2;
                }
            NEED(s->groups > 0, "the DeepSeek-V3 layout needs experts (%d) in 2, 4 or 8 groups of >= 2 whose "
                 "better half holds >= used (%d)", p->n_expert, p->n_expert_used);
        }
    }
    NEED(!p->v3 || s->arch == A_DEEPSEEK2, "the DeepSeek-V3 layout (v3) is a deepseek2 option");
    NEED(p->n_swa >= 0 && p->n_swa <= 1 << 20, "sliding window must be in 0..1048576 (got %d)", p->n_swa);
    int first_moe = s->arch == A_DEEPSEEK2 ? s->dense_lead : 0;
    bool route = p->route_class || p->n_route_tokens > 0, super = p->n_super_tokens > 0;
    if (route || super || p->chain)
        NEED(p->n_embd >= 8, "planted structure needs embd >= 8 (got %d)", p->n_embd);
    if (route) {
        NEED(p->route_layer >= first_moe && p->route_layer < p->n_layer,
             "planted route layer %d is not a MoE layer (%d..%d)", p->route_layer, first_moe, p->n_layer - 1);
        NEED(p->route_expert >= 0 && p->route_expert < p->n_expert, "planted route expert %d out of range (0..%d)",
             p->route_expert, p->n_expert - 1);
        NEED(!p->route_class || !strcmp(p->route_class, "digit"), "unknown planted route class '%s' (digit)",
             p->route_class);
        NEED(p->route_class || p->route_tokens, "planted route tokens missing");
        for (int i = 0; !p->route_class && i < p->n_route_tokens; i++)
            NEED(p->route_tokens[i] >= 0 && p->route_tokens[i] < p->n_vocab, "planted route token %d out of range (0..%d)",
                 p->route_tokens[i], p->n_vocab - 1);
    }
    if (super) {
        NEED(p->super_layer >= first_moe && p->super_layer < p->n_layer,
             "super-expert layer %d is not a MoE layer (%d..%d)", p->super_layer, first_moe, p->n_layer - 1);
        NEED(p->super_expert >= 0 && p->super_expert < p->n_expert, "super expert %d out of range (0..%d)",
             p->super_expert, p->n_expert - 1);
        NEED(p->super_tokens != NULL, "super-expert tokens missing");
        for (int i = 0; i < p->n_super_tokens; i++)
            NEED(p->super_tokens[i] >= 0 && p->super_tokens[i] < p->n_vocab, "super-expert token %d out of range (0..%d)",
                 p->super_tokens[i], p->n_vocab - 1);
    }
#undef NEED
    return 0;
}

int ms_synth_write(const char *path, const MsSynthParams *p, MsError *err)
{
    Shape s;
    int rc = check_params(p, &s, err);
    if (rc < 0) return rc;
    const char *an = arch_names[s.arch];

    MsGgufWriter *w = ms_gguf_writer_new(path, err);
    if (!w) return err ? err->code : MS_EIO;
    char key[128], desc[160];
#define KU32(k, v) (snprintf(key, sizeof key, "%s." k, an), ms_gguf_writer_set_u32(w, key, (uint32_t)(v)))
#define KF32(k, v) (snprintf(key, sizeof key, "%s." k, an), ms_gguf_writer_set_f32(w, key, (float)(v)))
    int m = 0;
    snprintf(desc, sizeof desc, "random-weight model written by moescope synth (seed %llu); not trained",
             (unsigned long long)p->seed);
    char name[64];
    snprintf(name, sizeof name, "synth-%s", an);
    m |= ms_gguf_writer_set_str(w, "general.architecture", an);
    m |= ms_gguf_writer_set_str(w, "general.type", "model");
    m |= ms_gguf_writer_set_str(w, "general.name", name);
    m |= ms_gguf_writer_set_str(w, "general.description", desc);
    m |= ms_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ms_synth_ftype(p->type));
    m |= ms_gguf_writer_set_u32(w, "general.quantization_version", 2);
    m |= KU32("context_length", 4096);
    m |= KU32("embedding_length", s.E);
    m |= KU32("block_count", s.L);
    m |= KU32("attention.head_count", s.H);
    m |= KU32("attention.head_count_kv", s.Hkv);
    m |= KF32("rope.freq_base", s.arch == A_QWEN2MOE || s.arch == A_LLAMA || s.arch == A_QWEN3MOE ? 1e6
                                : s.arch == A_GPTOSS ? 150000 : 1e4);
    m |= KF32("attention.layer_norm_rms_epsilon",
              s.arch == A_QWEN2MOE || s.arch == A_DEEPSEEK2 || s.arch == A_QWEN3MOE ? 1e-6 : 1e-5);
    m |= KU32("expert_count", s.X);
    m |= KU32("expert_used_count", s.K);
    m |= KU32("vocab_size", s.V);
    switch (s.arch) {
    case A_OLMOE:
        m |= KU32("feed_forward_length", s.F);
        break;
    case A_QWEN2MOE:
        m |= KU32("feed_forward_length", s.ff_shexp);
        m |= KU32("expert_feed_forward_length", s.F);
        m |= KU32("expert_shared_feed_forward_length", s.ff_shexp);
        break;
    case A_LLAMA:
        m |= KU32("feed_forward_length", s.F);
        m |= KU32("rope.dimension_count", s.hd);
        break;
    case A_GRANITEMOE:
        m |= KU32("feed_forward_length", s.F);
        m |= KU32("rope.dimension_count", s.hd);
        m |= KF32("embedding_scale", 2.0);
        m |= KF32("residual_scale", 0.5);
        m |= KF32("attention.scale", 1.0 / sqrt((double)s.hd));
        m |= KF32("logit_scale", 2.0);
        break;
    case A_QWEN3MOE:   /* as Qwen3-30B-A3B's file: key_length gives the head width */
        m |= KU32("feed_forward_length", 3 * s.F);
        m |= KU32("expert_feed_forward_length", s.F);
        m |= KU32("attention.key_length", s.hd);
        m |= KU32("attention.value_length", s.hd);
        break;
    case A_GPTOSS:     /* as gpt-oss-20b's file: sliding window 128, YaRN 32x from 4096 */
        m |= KU32("feed_forward_length", s.F);
        m |= KU32("expert_feed_forward_length", s.F);
        m |= KU32("attention.key_length", s.hd);
        m |= KU32("attention.value_length", s.hd);
        m |= KU32("attention.sliding_window", p->n_swa > 0 ? p->n_swa : 128);
        m |= (snprintf(key, sizeof key, "%s.rope.scaling.type", an), ms_gguf_writer_set_str(w, key, "yarn"));
        m |= KF32("rope.scaling.factor", 32.0);
        m |= KU32("rope.scaling.original_context_length", 4096);
        break;
    case A_PHIMOE:     /* as Phi-3.5-MoE's file: LongRoPE, short factors up to 4096 tokens */
        m |= KU32("feed_forward_length", s.F);
        m |= KU32("rope.dimension_count", s.n_rot);
        m |= KU32("rope.scaling.original_context_length", 4096);
        m |= KF32("rope.scaling.attn_factor", sqrt(1.0 + log(32.0) / log(4096.0)));
        break;
    case A_DEEPSEEK2:
        m |= KU32("feed_forward_length", s.ff_dense);
        m |= KU32("leading_dense_block_count", s.dense_lead);
        if (!s.lite) m |= KU32("attention.q_lora_rank", s.q_lora);
        m |= KU32("attention.kv_lora_rank", s.kv_lora);
        if (s.v3) {   /* the cached latent's widths, and the per-head ones */
            m |= KU32("attention.key_length", s.kv_lora + s.rope);
            m |= KU32("attention.value_length", s.kv_lora);
            m |= KU32("attention.key_length_mla", s.nope + s.rope);
            m |= KU32("attention.value_length_mla", s.vdim);
            m |= KU32("expert_gating_func", 2);
            m |= ms_gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", true);
            m |= KU32("expert_group_count", s.groups);
            m |= KU32("expert_group_used_count", s.group_used);
        } else {
            m |= KU32("attention.key_length", s.nope + s.rope);
            m |= KU32("attention.value_length", s.vdim);
        }
        m |= KU32("rope.dimension_count", s.rope);
        m |= KU32("expert_feed_forward_length", s.F);
        m |= KU32("expert_shared_count", s.n_shared);
        m |= KF32("expert_weights_scale", s.v3 ? 2.5 : 1.5);
        m |= KF32("rope.scaling.yarn_log_multiplier", 0.0707);
        break;
    }
#undef KU32
#undef KF32
    if (m) {
        ms_gguf_writer_free(w);
        return ms_error_set(err, MS_EIO, "%s: cannot add metadata", path);
    }
    Plant plant = {
        .route = p->route_class || p->n_route_tokens > 0, .super = p->n_super_tokens > 0,
        .chain = p->chain != 0, .E = s.E, .F = s.F,
        .c_bias = s.E - 1, .c_route = s.E - 2, .c_super = s.E - 3, .c_out = s.E - 4,
        .route_l = p->route_layer, .route_e = p->route_expert,
        .super_l = p->super_layer, .super_e = p->super_expert,
    };
    plant.any = plant.route || plant.super;
    uint8_t *member = NULL, *digit = NULL;
    if (plant.any) {
        member = calloc((size_t)s.V, 1);
        digit = p->route_class ? calloc((size_t)s.V, 1) : NULL;
        if (!member || (p->route_class && !digit)) {
            free(member);
            free(digit);
            ms_gguf_writer_free(w);
            return ms_error_set(err, MS_ENOMEM, "synth: out of memory");
        }
    }
    rc = write_tokenizer(w, s.arch == A_OLMOE ? "olmo" : s.arch == A_QWEN3MOE ? "qwen2" : s.arch == A_GPTOSS ? "gpt-4o"
                         : "gpt-2", s.V, digit, err);
    if (rc < 0) {
        free(member);
        free(digit);
        ms_gguf_writer_free(w);
        return rc;
    }
    if (plant.any) {
        for (int i = 0; digit && i < s.V; i++) member[i] |= digit[i] ? MEMBER_ROUTE : 0;
        for (int i = 0; !p->route_class && i < p->n_route_tokens; i++) member[p->route_tokens[i]] |= MEMBER_ROUTE;
        for (int i = 0; i < p->n_super_tokens; i++) member[p->super_tokens[i]] |= MEMBER_SUPER;
        free(digit);
        plant.member = member;
    }

    TList tl = { .wtype = p->type };
    build_tensors(&tl, &s);
    if (plant.chain && !tl.bad) {
        /* every router and FFN norm draws the first MoE layer's streams */
        int r0 = -1, n0 = -1, first_moe = s.arch == A_DEEPSEEK2 ? s.dense_lead : 0;
        for (int i = 0; i < tl.n; i++) {
            if (tl.v[i].kind == TK_ROUTER && r0 < 0) r0 = i;
            if (tl.v[i].kind == TK_FFN_NORM && tl.v[i].layer == first_moe) n0 = i;
        }
        int rb0 = -1, nb0 = -1;
        for (int i = 0; i < tl.n; i++) {
            if (tl.v[i].kind == TK_ROUTER_B && rb0 < 0) rb0 = i;
            if (tl.v[i].kind == TK_FFN_NORM_B && tl.v[i].layer == first_moe) nb0 = i;
        }
        for (int i = 0; i < tl.n; i++) {
            if (tl.v[i].kind == TK_ROUTER) tl.v[i].seed_index = r0;
            if (tl.v[i].kind == TK_FFN_NORM && tl.v[i].layer >= first_moe) tl.v[i].seed_index = n0;
            if (tl.v[i].kind == TK_ROUTER_B) tl.v[i].seed_index = rb0;
            if (tl.v[i].kind == TK_FFN_NORM_B && tl.v[i].layer >= first_moe) tl.v[i].seed_index = nb0;
        }
    }
    if (tl.bad) {
        free(member);
        free(tl.v);
        ms_gguf_writer_free(w);
        return ms_error_set(err, MS_ENOMEM, "synth: out of memory");
    }
    size_t max_bytes = 0;
    for (int i = 0; i < tl.n && rc == 0; i++) {
        const TSpec *t = &tl.v[i];
        if (ms_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne) < 0)
            rc = ms_error_set(err, MS_EIO, "%s: cannot add tensor %s", path, t->name);
        size_t nb = ms_row_bytes(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2]);
        if (nb > max_bytes) max_bytes = nb;
    }
    if (rc == 0 && ms_gguf_writer_write_header(w) < 0)
        rc = ms_error_set(err, MS_EIO, "%s: cannot write header", path);
    uint8_t *buf = rc == 0 ? malloc(max_bytes ? max_bytes : 1) : NULL;
    if (rc == 0 && !buf) rc = ms_error_set(err, MS_ENOMEM, "synth: out of memory (%zu bytes for one tensor)", max_bytes);
    long ncpu = p->n_threads > 0 ? p->n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = (int)(ncpu < 1 ? 1 : ncpu > 16 ? 16 : ncpu);
    for (int i = 0; i < tl.n && rc == 0; i++) {
        const TSpec *t = &tl.v[i];
        size_t nb = ms_row_bytes(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2]);
        int g = gen_tensor(t, plant.any || plant.chain ? &plant : NULL, i, p->seed, buf, n_threads);
        if (g < 0)
            rc = ms_error_set(err, g, "synth: cannot quantise %s to %s", t->name, ms_type_name(t->type));
        else if (ms_gguf_writer_write_tensor_data(w, buf, nb) < 0)
            rc = ms_error_set(err, MS_EIO, "%s: cannot write tensor %s", path, t->name);
    }
    free(buf);
    free(tl.v);
    free(member);
    if (rc == 0) {
        MsError e2 = { 0 };
        if (ms_gguf_writer_finish(w, &e2) < 0)
            rc = ms_error_set(err, e2.code ? e2.code : MS_EIO, "%s", e2.msg[0] ? e2.msg : "cannot finish file");
    }
    ms_gguf_writer_free(w);
    if (rc < 0) unlink(path);
    return rc;
}
