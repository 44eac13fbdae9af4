/* test-synth.c — `moescope synth` models (every architecture and weight
 * type load, are deterministic, have a working tokenizer and spread tokens
 * over the experts), the shortest-float printer, `moescope dump` on synth
 * models against the engine's own run of the same tokens (and with an
 * intervention), and `moescope dump` on the fixture models compared with
 * llama.cpp's reference outputs using the comparison rules of
 * fixtures/README.md. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-util.h"
#include "commands.h"
#include "engine.h"
#include "mtest.h"
#include "quant.h"
#include "synth.h"

static char *read_all(const char *path, size_t *len)
{
    char *b = NULL;
    MsError e = { 0 };
    if (ms_cli_read_file(path, &b, len, &e) < 0) return NULL;
    return b;
}

static MsSynthParams small(const char *arch, int type)
{
    MsSynthParams p = ms_synth_default_params();
    p.arch = arch;
    p.n_layer = 3;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = strcmp(arch, "olmoe") && strcmp(arch, "deepseek2") ? 2 : 0;
    p.n_expert = 8;
    p.n_expert_used = 2;
    p.n_ff = 32;
    p.n_vocab = 600;
    p.type = type;
    p.seed = 7;
    return p;
}

/* ---- synthetic models ---- */

typedef struct { int E; long n; long *count; } Usage;

static void count_usage(void *user, const MsRoutingEvent *ev)
{
    Usage *u = user;
    for (int t = 0; t < ev->n_tokens; t++)
        for (int k = 0; k < ev->k; k++) {
            int e = ev->experts[t * ev->k + k];
            if (e >= 0 && e < u->E) u->count[e]++;
        }
    u->n += ev->n_tokens;
}

static void test_arch(const char *arch)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", mt_tmpdir(), arch);
    MsSynthParams p = small(arch, MS_TYPE_F32);
    MsError err = { 0 };
    int rc = ms_synth_write(path, &p, &err);
    MT_CHECK(rc == 0, "%s: synth writes (%s)", arch, rc ? err.msg : "ok");
    if (rc) return;
    MsModel *m = ms_model_load(path, &err);
    MT_CHECK(m != NULL, "%s: synth model loads (%s)", arch, m ? "ok" : err.msg);
    if (!m) return;
    const MsModelInfo *in = ms_model_info(m);
    MT_CHECK(!strcmp(in->arch_name, arch) && in->n_layer == 3 && in->n_embd == 64 && in->n_expert == 8 &&
                 in->n_expert_used == 2 && in->n_vocab == 600 && in->n_head == 4,
             "%s: hyper-parameters read back", arch);
    if (!strcmp(arch, "deepseek2"))
        MT_CHECK(in->n_layer_dense_lead == 1 && !ms_model_layer_is_moe(m, 0) && ms_model_layer_is_moe(m, 1) &&
                     in->n_expert_shared == 2 && fabsf(in->w_scale - 1.5f) < 1e-6f,
                 "deepseek2: dense lead layer, 2 shared experts, weight scale 1.5");
    if (!strcmp(arch, "qwen2moe")) MT_CHECK(in->n_ff_shexp == 64 && in->shexp_gated, "qwen2moe: gated shared expert of 2F");
    if (strcmp(arch, "olmoe") && strcmp(arch, "deepseek2")) MT_CHECK(in->n_head_kv == 2, "%s: kv heads 2", arch);
    if (!strcmp(arch, "gpt-oss"))
        MT_CHECK(in->gating == MS_GATING_SOFTMAX_TOPK && in->router_bias && in->attn_sinks && in->n_swa == 128 &&
                     in->n_swa_layers == 2 && !in->norm_w,
                 "gpt-oss: softmax over the chosen logits, router bias, sinks, window 128 on blocks 0 and 2");
    if (!strcmp(arch, "qwen3moe")) MT_CHECK(in->norm_w && in->rope_neox, "qwen3moe: renormalised top-k, NEOX RoPE");
    if (!strcmp(arch, "phimoe"))
        MT_CHECK(in->norm_w && in->rope_factors && in->n_rot == 16, "phimoe: renormalised top-k, LongRoPE factors");

    /* decode accounting from the file's tensor list: matrices in full, the
     * embedding one row (in full again when it is the tied output), expert
     * tensors k of E; vectors and biases not counted */
    {
        const MsGguf *g = ms_model_gguf(m);
        uint64_t want = 0;
        bool tied = true;
        for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) tied &= strcmp(ms_gguf_tensor(g, i)->name, "output.weight") != 0;
        for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) {
            const MsGgufTensor *x = ms_gguf_tensor(g, i);
            size_t nl = strlen(x->name);
            bool bias = nl > 5 && !strcmp(x->name + nl - 5, ".bias");
            if (bias || (x->n_dims < 2 && !strstr(x->name, "gate_inp_shexp"))) continue;
            if (!strcmp(x->name, "token_embd.weight")) want += x->nbytes / (uint64_t)x->ne[1] + (tied ? x->nbytes : 0);
            else if (strstr(x->name, "_exps.weight")) want += x->nbytes / (uint64_t)in->n_expert * (uint64_t)in->n_expert_used;
            else want += x->nbytes;
        }
        uint64_t got = ms_model_decode_weight_bytes(m);
        MT_CHECK(got == want, "%s: decode weight bytes per token %llu (from the tensor list: %llu)", arch,
                 (unsigned long long)got, (unsigned long long)want);
    }

    const MsTokenizer *tok = ms_model_tokenizer(m);
    MT_CHECK(ms_tokenizer_n_vocab(tok) == 600 && ms_tokenizer_bos(tok) == 599 && ms_tokenizer_eos(tok) == 598,
             "%s: vocab 600, bos 599, eos 598", arch);
    const char *text = "The router computes a score for every expert, and the students wrote 42 notes.";
    int32_t *ids = NULL;
    int n = ms_tokenizer_encode(tok, text, strlen(text), false, &ids, &err);
    size_t dl = 0;
    char *back = n > 0 ? ms_tokenizer_decode(tok, ids, (size_t)n, &dl) : NULL;
    MT_CHECK(n > 0 && n < (int)strlen(text) / 2 && back && dl == strlen(text) && !memcmp(back, text, dl),
             "%s: BPE merges compress English (%d tokens for %zu bytes) and decode round-trips", arch, n, strlen(text));
    free(back);

    /* Run it: logits finite and O(1), routing spreads over the experts. */
    MsContextParams cp = ms_context_default_params();
    cp.n_threads = 1;
    cp.n_ctx = 256;
    MsContext *c = ms_context_new(m, &cp, &err);
    MT_CHECK(c != NULL, "%s: context (%s)", arch, c ? "ok" : err.msg);
    if (c && n > 0) {
        long cnt[8] = { 0 };
        Usage u = { .E = 8, .count = cnt };
        MsObserver obs = { .on_routing = count_usage, .user = &u };
        ms_context_set_observer(c, &obs);
        float *lg = malloc((size_t)n * 600 * sizeof *lg);
        rc = ms_context_eval(c, ids, n, lg, true, &err);
        MT_CHECK(rc == 0, "%s: eval (%s)", arch, rc ? err.msg : "ok");
        if (rc == 0) {
            double s = 0, s2 = 0;
            int finite = 1;
            for (long i = 0; i < (long)n * 600; i++) {
                finite &= isfinite(lg[i]);
                s += lg[i];
                s2 += (double)lg[i] * lg[i];
            }
            double sd = sqrt(s2 / ((double)n * 600) - pow(s / ((double)n * 600), 2));
            MT_CHECK(finite && sd > 0.05 && sd < 20, "%s: logits finite, std %.3f in (0.05, 20)", arch, sd);
            int used = 0;
            for (int e = 0; e < 8; e++) used += cnt[e] > 0;
            MT_CHECK(used >= 7, "%s: routers use %d of 8 experts over %d tokens", arch, used, n);
        }
        free(lg);
    }
    free(ids);
    ms_context_free(c);
    ms_model_free(m);
}

static void test_types(void)
{
    static const int types[] = { MS_TYPE_F16, MS_TYPE_BF16, MS_TYPE_Q8_0, MS_TYPE_Q4_0, MS_TYPE_Q4_1,
                                 MS_TYPE_Q5_0, MS_TYPE_Q5_1, MS_TYPE_Q2_K, MS_TYPE_Q3_K, MS_TYPE_Q4_K,
                                 MS_TYPE_Q5_K, MS_TYPE_Q6_K, MS_TYPE_IQ4_NL };
    for (size_t i = 0; i < MS_ARRAY_LEN(types); i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/llama-%s.gguf", mt_tmpdir(), ms_type_name(types[i]));
        MsSynthParams p = small("llama", types[i]);
        p.n_embd = 256;     /* whole K blocks for most matrices */
        p.n_ff = 64;        /* expert down rows of 64: exercises the fallback type */
        p.n_layer = 1;
        p.n_head = 4;
        MsError err = { 0 };
        int rc = ms_synth_write(path, &p, &err);
        MsModel *m = rc == 0 ? ms_model_load(path, &err) : NULL;
        const MsModelInfo *in = m ? ms_model_info(m) : NULL;
        MT_CHECK(m && in->weight_type == types[i], "%s: synth + load, main weight type %s (%s)",
                 ms_type_name(types[i]), in ? ms_type_name(in->weight_type) : "-", m ? "ok" : err.msg);
        if (m) {
            const MsGgufTensor *r = ms_gguf_find_tensor(ms_model_gguf(m), "blk.0.ffn_gate_inp.weight");
            const MsGgufTensor *d = ms_gguf_find_tensor(ms_model_gguf(m), "blk.0.ffn_down_exps.weight");
            MT_CHECK(r && r->type == MS_TYPE_F32 && d && d->ne[0] % ms_type_block_elems(d->type) == 0,
                     "%s: router F32, expert down in %s", ms_type_name(types[i]), d ? ms_type_name(d->type) : "-");
        }
        ms_model_free(m);
    }
}

/* The 2026 shapes: a head width of its own (qwen3moe, gpt-oss), and
 * gpt-oss in MXFP4 as llama-quantize's MXFP4_MOE lays it out. */
static void test_2026_shapes(void)
{
    static const struct { const char *arch; int head_dim, type; } cases[] = {
        { "qwen3moe", 32, MS_TYPE_Q8_0 }, { "gpt-oss", 32, MS_TYPE_MXFP4 }, { "gpt-oss", 24, MS_TYPE_F32 },
        { "phimoe", 0, MS_TYPE_IQ4_NL },
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        char path[512], what[96];
        snprintf(what, sizeof what, "%s head_dim %d %s", cases[i].arch, cases[i].head_dim, ms_type_name(cases[i].type));
        snprintf(path, sizeof path, "%s/shape-%zu.gguf", mt_tmpdir(), i);
        MsSynthParams p = small(cases[i].arch, cases[i].type);
        p.head_dim = cases[i].head_dim;
        MsError err = { 0 };
        int rc = ms_synth_write(path, &p, &err);
        MsModel *m = rc == 0 ? ms_model_load(path, &err) : NULL;
        if (!MT_CHECK(m != NULL, "%s: synth + load (%s)", what, m ? "ok" : err.msg)) continue;
        const MsModelInfo *in = ms_model_info(m);
        int hd = cases[i].head_dim ? cases[i].head_dim : 64 / 4;
        MT_CHECK(in->head_dim_k == hd && in->head_dim_v == hd, "%s: head width %d", what, in->head_dim_k);
        const MsGgufTensor *q = ms_gguf_find_tensor(ms_model_gguf(m), "blk.0.attn_q.weight");
        const MsGgufTensor *g = ms_gguf_find_tensor(ms_model_gguf(m), "blk.0.ffn_gate_exps.weight");
        if (cases[i].type == MS_TYPE_MXFP4)
            MT_CHECK(q && q->type == MS_TYPE_Q8_0 && g && g->type == MS_TYPE_MXFP4,
                     "%s: experts MXFP4, attention Q8_0 (MXFP4_MOE)", what);
        if (cases[i].type == MS_TYPE_IQ4_NL)
            MT_CHECK(g && g->type == MS_TYPE_IQ4_NL, "%s: experts IQ4_NL", what);
        MsContextParams cp = ms_context_default_params();
        cp.n_threads = 2;
        cp.n_ctx = 64;
        MsContext *c = ms_context_new(m, &cp, &err);
        int32_t toks[40];
        for (int t = 0; t < 40; t++) toks[t] = (t * 37 + 5) % 598;
        float *lg = malloc(sizeof(float) * 40 * 600);
        rc = c ? ms_context_eval(c, toks, 40, lg, true, &err) : -1;
        bool finite = rc == 0;
        for (int k = 0; finite && k < 40 * 600; k++) finite = isfinite(lg[k]) != 0;
        MT_CHECK(finite, "%s: 40 tokens run, logits finite (%s)", what, rc ? err.msg : "ok");
        free(lg);
        ms_context_free(c);
        ms_model_free(m);
    }
    MsSynthParams p = small("olmoe", MS_TYPE_F32);
    p.head_dim = 32;
    char path[512];
    snprintf(path, sizeof path, "%s/hd.gguf", mt_tmpdir());
    MsError err = { 0 };
    int r = ms_synth_write(path, &p, &err);
    MT_CHECK(r == MS_EINVAL && strstr(err.msg, "head_dim"), "a head width of its own on olmoe rejected: %s", err.msg);
}

/* LongRoPE (phimoe): llama.cpp takes the long factors only when the
 * context is larger than rope.scaling.original_context_length (4096 in
 * synth's phimoe), whatever the positions: the same tokens give identical
 * logits with contexts of 64 and 4096, different ones with 4097. */
static void test_longrope(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/longrope.gguf", mt_tmpdir());
    MsSynthParams p = small("phimoe", MS_TYPE_F32);
    MsError err = { 0 };
    MsModel *m = ms_synth_write(path, &p, &err) == 0 ? ms_model_load(path, &err) : NULL;
    if (!MT_CHECK(m != NULL, "phimoe for LongRoPE (%s)", m ? "ok" : err.msg)) return;
    int32_t tok[16];
    for (int t = 0; t < 16; t++) tok[t] = (t * 53 + 11) % 598;
    float *lg[3];
    const int ctx[3] = { 64, 4096, 4097 };
    bool ok = true;
    for (int i = 0; i < 3; i++) {
        MsContextParams cp = ms_context_default_params();
        cp.n_threads = 2;
        cp.n_ctx = ctx[i];
        cp.n_batch = 16;
        lg[i] = malloc(sizeof(float) * 16 * 600);
        MsContext *c = ms_context_new(m, &cp, &err);
        ok &= c && ms_context_eval(c, tok, 16, lg[i], true, &err) == 0;
        ms_context_free(c);
    }
    MT_CHECK(ok && !memcmp(lg[0], lg[1], sizeof(float) * 16 * 600) && memcmp(lg[1], lg[2], sizeof(float) * 16 * 600),
             "phimoe: short factors up to a 4096-token context, long ones from 4097");
    for (int i = 0; i < 3; i++) free(lg[i]);
    ms_model_free(m);
}

static void test_determinism(void)
{
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/det-a.gguf", mt_tmpdir());
    snprintf(b, sizeof b, "%s/det-b.gguf", mt_tmpdir());
    snprintf(c, sizeof c, "%s/det-c.gguf", mt_tmpdir());
    MsSynthParams p = small("qwen2moe", MS_TYPE_Q8_0);
    MsError err = { 0 };
    int r1 = ms_synth_write(a, &p, &err), r2 = ms_synth_write(b, &p, &err);
    p.seed = 8;
    int r3 = ms_synth_write(c, &p, &err);
    size_t la = 0, lb = 0, lc = 0;
    char *da = read_all(a, &la), *db = read_all(b, &lb), *dc = read_all(c, &lc);
    MT_CHECK(!r1 && !r2 && da && db && la == lb && !memcmp(da, db, la), "same seed: identical files (%zu bytes)", la);
    MT_CHECK(!r3 && dc && (lc != la || memcmp(da, dc, la)), "different seed: different file");
    free(dc);
    dc = NULL;
    p.seed = 7;          /* back to a's seed, other thread counts */
    p.n_threads = 1;
    int r4 = ms_synth_write(c, &p, &err);
    dc = read_all(c, &lc);
    int same1 = !r4 && dc && lc == la && !memcmp(da, dc, la);
    free(dc);
    p.n_threads = 3;
    r4 = ms_synth_write(c, &p, &err);
    dc = read_all(c, &lc);
    MT_CHECK(same1 && !r4 && dc && lc == la && !memcmp(da, dc, la), "1 or 3 threads: identical file");
    free(da);
    free(db);
    free(dc);

    p = small("olmoe", MS_TYPE_F32);
    p.n_embd = 60;   /* heads 4 -> head dim 15: odd */
    int r = ms_synth_write(a, &p, &err);
    MT_CHECK(r == MS_EINVAL && strstr(err.msg, "even"), "odd head dimension rejected: %s", err.msg);
    p = small("mixtral", MS_TYPE_F32);
    r = ms_synth_write(a, &p, &err);
    MT_CHECK(r == MS_EINVAL && strstr(err.msg, "mixtral"), "unknown arch named: %s", err.msg);
    p = small("olmoe", MS_TYPE_F32);
    p.n_expert_used = 9;
    r = ms_synth_write(a, &p, &err);
    MT_CHECK(r == MS_EINVAL, "used > experts rejected: %s", err.msg);
    p = small("olmoe", MS_TYPE_Q8_K);
    r = ms_synth_write(a, &p, &err);
    MT_CHECK(r == MS_EINVAL && strstr(err.msg, "Q8_K"), "non-weight type rejected: %s", err.msg);

    /* vocab larger than the learnable merges: unused fillers */
    p = small("granitemoe", MS_TYPE_F32);
    p.n_vocab = 5000;
    p.n_layer = 1;
    r = ms_synth_write(a, &p, &err);
    MsModel *m = r == 0 ? ms_model_load(a, &err) : NULL;
    const MsTokenizer *tok = m ? ms_model_tokenizer(m) : NULL;
    const char *t4997 = tok ? ms_tokenizer_token_text(tok, 4997) : NULL;
    const char *t4999 = tok ? ms_tokenizer_token_text(tok, 4999) : NULL;
    MT_CHECK(m && t4997 && !strncmp(t4997, "<|unused_", 9) && t4999 && !strcmp(t4999, "<|startoftext|>"),
             "vocab 5000: filler tokens then specials (%s, %s)", t4997 ? t4997 : "-", t4999 ? t4999 : "-");
    ms_model_free(m);
}

/* llama.cpp takes deepseek2's "lite" path (attn_q, no q LoRA) exactly when
 * block_count is 27: synth must write that form then. */
static void test_deepseek2_lite(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ds27.gguf", mt_tmpdir());
    MsSynthParams p = small("deepseek2", MS_TYPE_F32);
    p.n_layer = 27;
    p.n_vocab = 300;
    MsError err = { 0 };
    int rc = ms_synth_write(path, &p, &err);
    MsModel *m = rc == 0 ? ms_model_load(path, &err) : NULL;
    const MsGguf *g = m ? ms_model_gguf(m) : NULL;
    MT_CHECK(m && ms_gguf_find_tensor(g, "blk.26.attn_q.weight") && !ms_gguf_find_tensor(g, "blk.0.attn_q_a.weight") &&
                 ms_gguf_find_kv(g, "deepseek2.attention.q_lora_rank") < 0,
             "deepseek2 with 27 layers: lite form loads (%s)", m ? "ok" : err.msg);
    ms_model_free(m);
}

static void test_fmt_float(void)
{
    static const float v[] = { 0.1f, 0.28740603f, 0.051861044f, 1.0f / 3.0f, 1e-30f, 3.4e38f, -2.5f, 0.0f,
                               1.17549435e-38f, 1e-45f, 123456789.0f };
    int ok = 1;
    for (size_t i = 0; i < MS_ARRAY_LEN(v); i++) {
        char b[40];
        ms_cli_fmt_float(b, sizeof b, v[i]);
        ok &= strtof(b, NULL) == v[i];
    }
    MT_CHECK(ok, "shortest float text round-trips");
    char b[40];
    ms_cli_fmt_float(b, sizeof b, 0.1f);
    MT_CHECK(!strcmp(b, "0.1"), "0.1f prints as 0.1 (%s)", b);
    ms_cli_fmt_float(b, sizeof b, 0.28740603f);
    MT_CHECK(!strcmp(b, "0.28740603"), "0.28740603f prints as in the reference (%s)", b);
}

/* ---- dump vs the engine itself (no ../shared) ---- */

typedef struct {
    int n_layer, E, n;             /* n tokens */
    int k[64];
    int32_t *ids;                  /* [n_layer][n][E] */
    float *w, *probs;              /* [n_layer][n][E] */
} Cap;

static void cap_routing(void *user, const MsRoutingEvent *ev)
{
    Cap *c = user;
    if (ev->layer < 0 || ev->layer >= c->n_layer || ev->layer >= 64 || ev->k > c->E || ev->n_expert != c->E) return;
    c->k[ev->layer] = ev->k;
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0 || p >= c->n) continue;
        size_t o = ((size_t)ev->layer * c->n + p) * c->E;
        memcpy(c->ids + o, ev->experts + (size_t)t * ev->k, sizeof(int32_t) * ev->k);
        memcpy(c->w + o, ev->weights + (size_t)t * ev->k, sizeof(float) * ev->k);
        memcpy(c->probs + o, ev->probs + (size_t)t * ev->n_expert, sizeof(float) * ev->n_expert);
    }
}

/* JSON number -> float32 (dump prints the shortest text that reads back). */
static float jf(const json_t *v) { return (float)json_number_value(v); }

/* moescope dump (with extra interventions args) on model: header, tokens,
 * routing and logits equal the engine's own run of the same tokens with the
 * same intervention set, bit for bit.  Returns the parsed dump (caller frees). */
static json_t *dump_vs_engine(const char *model, const char *pfile, const char *what, const char *iv_kind,
                              const char *iv_spec)
{
    char prefix[600], jpath[700];
    snprintf(prefix, sizeof prefix, "%s/self-%s", mt_tmpdir(), what);
    char *argv[12] = { "dump", (char *)model, "--prompts", (char *)pfile, "--out", prefix, "-t", "1", NULL };
    int argc = 8;
    char opt[32];
    if (iv_kind) {
        snprintf(opt, sizeof opt, "--%s", iv_kind);
        argv[argc++] = opt;
        argv[argc++] = (char *)iv_spec;
        argv[argc] = NULL;
    }
    int rc = ms_cmd_dump(argc, argv);
    snprintf(jpath, sizeof jpath, "%s.json", prefix);
    json_error_t je;
    json_t *got = rc == 0 ? json_load_file(jpath, 0, &je) : NULL;
    if (!MT_CHECK(rc == 0 && got, "%s: moescope dump exits 0, JSON parses", what)) return NULL;

    MsError err = { 0 };
    MsModel *m = ms_model_load(model, &err);
    if (!MT_CHECK(m != NULL, "%s: model loads (%s)", what, m ? "ok" : err.msg)) return got;
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    MT_CHECK(!strcmp(json_string_value(json_object_get(got, "arch")), in->arch_name) &&
                 json_integer_value(json_object_get(got, "n_vocab")) == in->n_vocab &&
                 json_integer_value(json_object_get(got, "n_layer")) == in->n_layer &&
                 json_integer_value(json_object_get(got, "n_expert")) == in->n_expert &&
                 json_integer_value(json_object_get(got, "n_expert_used")) == in->n_expert_used &&
                 json_is_true(json_object_get(got, "add_bos")) == ms_tokenizer_add_bos(tok),
             "%s: header = the model's arch, sizes and add_bos", what);
    MsIntervention *iv = NULL;
    if (iv_kind) {
        iv = ms_intervention_new(in->n_layer, in->n_expert);
        MT_CHECK(ms_intervention_parse(iv, iv_kind, iv_spec, &err) == 0, "%s: %s %s parses", what, iv_kind, iv_spec);
        char *t = ms_intervention_to_string(iv);
        const char *ds = json_string_value(json_object_get(json_object_get(got, "settings"), "interventions"));
        MT_CHECK(t && ds && !strcmp(t, ds), "%s: settings.interventions = '%s'", what, t ? t : "");
        free(t);
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_threads = 2;
    cp.n_ctx = 256;
    MsContext *c = ms_context_new(m, &cp, &err);
    if (iv && c) ms_context_set_intervention(c, iv, &err);
    json_t *prompts = json_object_get(got, "prompts");
    size_t np = 0;
    int tok_bad = 0, sel_bad = 0, w_bad = 0, p_bad = 0, lg_bad = 0, n_tl = 0;
    for (FILE *pf = fopen(pfile, "r"); pf;) {       /* one JSONL prompt per line */
        char line[2048];
        if (!fgets(line, sizeof line, pf)) { fclose(pf); break; }
        json_t *pj = json_loads(line, 0, &je);
        const char *text = json_string_value(json_object_get(pj, "text"));
        json_t *dp = json_array_get(prompts, np);
        int32_t *ids = NULL;
        int n = text ? ms_tokenizer_encode(tok, text, strlen(text), true, &ids, &err) : -1;
        json_t *dt = json_object_get(dp, "tokens");
        bool same = n > 0 && (size_t)n == json_array_size(dt) && json_equal(json_object_get(dp, "text"), json_object_get(pj, "text"));
        for (int t = 0; same && t < n; t++) same = json_integer_value(json_array_get(dt, t)) == ids[t];
        tok_bad += !same;
        if (same && c) {
            const int E = in->n_expert, L = in->n_layer;
            Cap cap = { .n_layer = L, .E = E, .n = n };
            cap.ids = calloc((size_t)L * n * E, sizeof *cap.ids);
            cap.w = calloc((size_t)L * n * E, sizeof *cap.w);
            cap.probs = calloc((size_t)L * n * E, sizeof *cap.probs);
            float *lg = malloc(sizeof(float) * (size_t)n * in->n_vocab);
            MsObserver obs = { .on_routing = cap_routing, .user = &cap };
            ms_context_reset(c);
            ms_context_set_observer(c, &obs);
            int erc = ms_context_eval(c, ids, n, lg, true, &err);
            ms_context_set_observer(c, NULL);
            json_t *rl = json_object_get(dp, "routing");
            int n_moe = 0;
            for (int l = 0; l < L; l++) n_moe += cap.k[l] > 0;
            if (erc != 0 || (int)json_array_size(rl) != n_moe) sel_bad++;
            for (size_t li = 0; erc == 0 && li < json_array_size(rl); li++) {
                json_t *r = json_array_get(rl, li);
                int l = (int)json_integer_value(json_object_get(r, "layer"));
                if (l < 0 || l >= L || !cap.k[l]) { sel_bad++; continue; }
                for (int t = 0; t < n; t++) {
                    size_t o = ((size_t)l * n + t) * E;
                    json_t *je_ = json_array_get(json_object_get(r, "experts"), t);
                    json_t *jw = json_array_get(json_object_get(r, "weights"), t);
                    json_t *jp = json_array_get(json_object_get(r, "probs"), t);
                    n_tl++;
                    bool s_ok = (int)json_array_size(je_) == cap.k[l], w_ok = s_ok, p_ok = (int)json_array_size(jp) == E;
                    for (int j = 0; s_ok && j < cap.k[l]; j++) {
                        s_ok = json_integer_value(json_array_get(je_, j)) == cap.ids[o + j];
                        w_ok = w_ok && jf(json_array_get(jw, j)) == cap.w[o + j];
                    }
                    for (int e = 0; p_ok && e < E; e++) p_ok = jf(json_array_get(jp, e)) == cap.probs[o + e];
                    sel_bad += !s_ok;
                    w_bad += !w_ok;
                    p_bad += !p_ok;
                }
            }
            char fpath[700];
            snprintf(fpath, sizeof fpath, "%s.p%zu.f32", prefix, np);
            size_t fl = 0;
            char *fb = read_all(fpath, &fl);
            lg_bad += erc != 0 || !fb || fl != sizeof(float) * (size_t)n * in->n_vocab || memcmp(fb, lg, fl) != 0;
            free(fb);
            free(lg);
            free(cap.ids);
            free(cap.w);
            free(cap.probs);
        }
        free(ids);
        json_decref(pj);
        np++;
    }
    MT_CHECK(np > 0 && np == json_array_size(prompts) && tok_bad == 0,
             "%s: %zu prompts, text and tokens (BOS per metadata) as the tokenizer gives them", what, np);
    MT_CHECK(n_tl > 0 && sel_bad == 0, "%s: experts per MoE layer and token = the engine's (%d token-layers)", what, n_tl);
    MT_CHECK(n_tl > 0 && w_bad == 0 && p_bad == 0, "%s: weights and probs read back as the engine's float32 exactly", what);
    MT_CHECK(lg_bad == 0, "%s: PREFIX.p<i>.f32 = the engine's logits bit for bit", what);
    ms_context_free(c);
    ms_intervention_free(iv);
    ms_model_free(m);
    return got;
}

static void test_dump_self(void)
{
    char model[512], pfile[512];
    snprintf(model, sizeof model, "%s/self.gguf", mt_tmpdir());
    snprintf(pfile, sizeof pfile, "%s/self-prompts.jsonl", mt_tmpdir());
    MsSynthParams p = small("qwen2moe", MS_TYPE_Q8_0);
    p.seed = 21;
    MsError err = { 0 };
    if (!MT_CHECK(ms_synth_write(model, &p, &err) == 0, "dump self-check: synth model written (%s)",
                  err.msg[0] ? err.msg : "ok"))
        return;
    FILE *f = fopen(pfile, "w");
    fputs("{\"text\":\"The router computes a score for every expert.\"}\n"
          "{\"text\":\"print(add(2, 3))\\n\\tdone \\u00e9\\u4e2d\",\"labels\":{\"x\":\"y\"}}\n"
          "{\"text\":\"42\"}\n", f);
    fclose(f);
    json_decref(dump_vs_engine(model, pfile, "plain", NULL, NULL));
    /* silence expert 3 at every layer: the dump honours it, the engine run with
     * the same set agrees, and expert 3 is never selected */
    json_t *d = dump_vs_engine(model, pfile, "silenced", "silence", "*:3");
    int seen3 = 0, n = 0;
    size_t ip, il;
    json_t *pv, *lv;
    json_array_foreach(json_object_get(d, "prompts"), ip, pv) json_array_foreach(json_object_get(pv, "routing"), il, lv)
    {
        size_t it;
        json_t *tv;
        json_array_foreach(json_object_get(lv, "experts"), it, tv) {
            n++;
            for (size_t j = 0; j < json_array_size(tv); j++) seen3 += json_integer_value(json_array_get(tv, j)) == 3;
        }
    }
    MT_CHECK(d && n > 0 && seen3 == 0, "silenced: expert 3 in none of %d token-layer selections", n);
    json_decref(d);
    remove(model);
}

/* ---- dump vs llama.cpp references ---- */

static float *read_f32(const char *path, size_t *n)
{
    size_t len = 0;
    char *b = read_all(path, &len);
    if (!b) return NULL;
    *n = len / 4;
    return (float *)b;   /* malloc'd; alignment from malloc is fine */
}

static int is_f32_model(const char *name) { return strstr(name, ".F32.") != NULL; }

static void compare_model(const char *shared, const char *set, const char *refname)
{
    char refpath[1024], prefix[800], model[1024], ours[1024], pfile[1024];
    snprintf(refpath, sizeof refpath, "%s/%s/reference/%s", shared, set, refname);
    json_error_t je;
    json_t *ref = json_load_file(refpath, 0, &je);
    if (!ref) {
        MT_CHECK(0, "%s: reference JSON loads", refname);
        return;
    }
    const char *mname = json_string_value(json_object_get(ref, "model"));
    snprintf(model, sizeof model, "%s/%s/models/%s", shared, set, mname ? mname : "?");
    snprintf(prefix, sizeof prefix, "%s/dump-%s", mt_tmpdir(), mname ? mname : "?");
    snprintf(pfile, sizeof pfile, "%s/prompts-%s.jsonl", mt_tmpdir(), mname ? mname : "?");
    json_t *prompts = json_object_get(ref, "prompts");
    FILE *pf = fopen(pfile, "w");
    size_t ip;
    json_t *pv;
    json_array_foreach(prompts, ip, pv) {
        json_t *o = json_pack("{s:O}", "text", json_object_get(pv, "text"));
        char *line = json_dumps(o, JSON_COMPACT);
        fprintf(pf, "%s\n", line);
        free(line);
        json_decref(o);
    }
    fclose(pf);
    char *argv[] = { "dump", model, "--prompts", pfile, "--out", prefix, "-t", "2", NULL };
    int rc = ms_cmd_dump(8, argv);
    MT_CHECK(rc == 0, "%s: moescope dump exits 0", mname);
    snprintf(ours, sizeof ours, "%s.json", prefix);
    json_t *got = rc == 0 ? json_load_file(ours, 0, &je) : NULL;
    MT_CHECK(got != NULL, "%s: dump JSON parses (%s)", mname, got ? "ok" : je.text);
    if (!got) {
        json_decref(ref);
        return;
    }
    static const char *same_keys[] = { "model", "arch", "n_vocab", "n_layer", "n_expert", "n_expert_used",
                                       "add_bos", "weights_tensor" };
    int hdr = 1;
    for (size_t k = 0; k < MS_ARRAY_LEN(same_keys); k++)
        hdr &= json_equal(json_object_get(ref, same_keys[k]), json_object_get(got, same_keys[k]));
    MT_CHECK(hdr, "%s: header fields equal the reference's", mname);

    bool f32 = is_f32_model(mname);
    bool f16 = strstr(mname, ".F16.") != NULL;
    double tol_w = f32 ? 1e-5 : 5e-3, tol_margin = f32 ? 1e-6 : 1e-4;
    /* README "Tolerances": F16 about 0.05; Q8_0 is quoted as "about 0.05" but
     * an activation-emulating implementation was measured at 0.06 max there,
     * so Q8_0 gets 0.06 (as test-conformance); the other quantized types 0.25. */
    double tol_logit = f32 ? 1e-4 : f16 ? 0.05 : strstr(mname, ".Q8_0.") ? 0.06 : 0.25;
    int n_vocab = (int)json_integer_value(json_object_get(ref, "n_vocab"));
    json_t *gprompts = json_object_get(got, "prompts");
    MT_CHECK(json_array_size(gprompts) == json_array_size(prompts), "%s: %zu prompts", mname, json_array_size(prompts));
    long tok_bad = 0, sel_bad = 0, sel_tied = 0, w_bad = 0, p_bad = 0, lg_bad = 0, lg_n = 0, argmax_agree = 0;
    double w_max = 0, p_max = 0, lg_max = 0;
    json_array_foreach(prompts, ip, pv) {
        json_t *gp = json_array_get(gprompts, ip);
        if (!gp || !json_equal(json_object_get(pv, "tokens"), json_object_get(gp, "tokens"))) {
            tok_bad++;
            continue;
        }
        int nt = (int)json_array_size(json_object_get(pv, "tokens"));
        int first_flip = nt;
        json_t *rr = json_object_get(pv, "routing"), *gr = json_object_get(gp, "routing");
        if (json_array_size(rr) != json_array_size(gr)) {
            sel_bad++;
            continue;
        }
        for (size_t li = 0; li < json_array_size(rr); li++) {
            json_t *rl = json_array_get(rr, li), *gl = json_array_get(gr, li);
            if (!json_equal(json_object_get(rl, "layer"), json_object_get(gl, "layer"))) {
                sel_bad++;
                continue;
            }
            for (int t = 0; t < nt; t++) {
                json_t *re = json_array_get(json_object_get(rl, "experts"), t);
                json_t *ge = json_array_get(json_object_get(gl, "experts"), t);
                json_t *rw = json_array_get(json_object_get(rl, "weights"), t);
                json_t *gw = json_array_get(json_object_get(gl, "weights"), t);
                json_t *rp = json_array_get(json_object_get(rl, "probs"), t);
                json_t *gpb = json_array_get(json_object_get(gl, "probs"), t);
                size_t k = json_array_size(re), E = json_array_size(rp);
                if (json_array_size(ge) != k || json_array_size(gpb) != E) {
                    sel_bad++;
                    continue;
                }
                int same = 1;
                for (size_t a = 0; a < k; a++) {
                    int found = 0;
                    for (size_t b = 0; b < k; b++) found |= json_integer_value(json_array_get(re, a)) ==
                                                             json_integer_value(json_array_get(ge, b));
                    same &= found;
                }
                if (!same) {
                    /* margin between the k-th and (k+1)-th largest reference probs */
                    float *pr = malloc(E * sizeof *pr);
                    for (size_t e = 0; e < E; e++) pr[e] = (float)json_number_value(json_array_get(rp, e));
                    for (size_t a = 0; a < E; a++)   /* small E: selection sort */
                        for (size_t b = a + 1; b < E; b++)
                            if (pr[b] > pr[a]) { float x = pr[a]; pr[a] = pr[b]; pr[b] = x; }
                    double margin = k < E ? (double)pr[k - 1] - pr[k] : 0.0;
                    free(pr);
                    if (margin < tol_margin) sel_tied++;
                    else sel_bad++;
                    if (t < first_flip) first_flip = t;
                    continue;
                }
                for (size_t a = 0; a < k; a++)
                    for (size_t b = 0; b < k; b++)
                        if (json_integer_value(json_array_get(re, a)) == json_integer_value(json_array_get(ge, b))) {
                            double d = fabs(json_number_value(json_array_get(rw, a)) -
                                            json_number_value(json_array_get(gw, b)));
                            if (d > w_max) w_max = d;
                            if (d > tol_w) w_bad++;
                        }
                for (size_t e = 0; e < E; e++) {
                    double d = fabs(json_number_value(json_array_get(rp, e)) - json_number_value(json_array_get(gpb, e)));
                    if (d > p_max) p_max = d;
                    if (d > tol_w) p_bad++;
                }
            }
        }
        /* logits up to the first routing difference */
        char rf[1200], gf[1200];
        snprintf(rf, sizeof rf, "%s/%s/reference/%s", shared, set, json_string_value(json_object_get(pv, "logits")));
        snprintf(gf, sizeof gf, "%s.p%zu.f32", prefix, ip);
        size_t rn = 0, gn = 0;
        float *rl = read_f32(rf, &rn), *gl = read_f32(gf, &gn);
        if (!rl || !gl || rn != gn || rn != (size_t)nt * (size_t)n_vocab) {
            lg_bad++;
        } else {
            for (int t = 0; t < first_flip; t++) {
                int ar = 0, ag = 0;
                for (int v = 0; v < n_vocab; v++) {
                    size_t i = (size_t)t * n_vocab + v;
                    double d = fabs((double)rl[i] - gl[i]);
                    if (!(d <= tol_logit)) lg_bad++;
                    if (d > lg_max || isnan(d)) lg_max = isnan(d) ? INFINITY : d;
                    if (rl[i] > rl[(size_t)t * n_vocab + ar]) ar = v;
                    if (gl[i] > gl[(size_t)t * n_vocab + ag]) ag = v;
                }
                lg_n++;
                argmax_agree += ar == ag;
            }
        }
        free(rl);
        free(gl);
    }
    MT_CHECK(tok_bad == 0, "%s: tokens identical for every prompt (%ld differ)", mname, tok_bad);
    MT_CHECK(sel_bad == 0, "%s: same experts everywhere (%ld differ beyond the near-tie margin, %ld near ties)", mname,
             sel_bad, sel_tied);
    MT_CHECK(w_bad == 0 && p_bad == 0, "%s: weights / probs within %g (max %.2g / %.2g)", mname, tol_w, w_max, p_max);
    MT_CHECK(lg_bad == 0 && lg_n > 0, "%s: logits within %g (max %.3g over %ld positions; argmax agrees at %ld)", mname,
             tol_logit, lg_max, lg_n, argmax_agree);
    json_decref(got);
    json_decref(ref);
}

/* set: "fixtures" (every model), or a newer set with only_f32 (its F32
 * models whose probs are probabilities; test-conformance compares the rest
 * with their README tolerances). */
static void test_dump_vs_reference(const char *shared, const char *set, bool only_f32)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/reference", shared, set);
    DIR *d = opendir(dir);
    if (!d) {
        MT_CHECK(0, "reference directory %s opens", dir);
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".json") && strcmp(de->d_name, "prompts.json") &&
            (!only_f32 || (strstr(de->d_name, ".F32.") && strncmp(de->d_name, "gpt-oss", 7))))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++)   /* stable order for readable output */
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) { char *x = names[i]; names[i] = names[j]; names[j] = x; }
    MT_CHECK(n >= 1, "found %d reference files", n);
    for (int i = 0; i < n; i++) {
        compare_model(shared, set, names[i]);
        free(names[i]);
    }
}

int main(void)
{
    test_fmt_float();
    static const char *archs[] = { "olmoe", "qwen2moe", "llama", "granitemoe", "deepseek2", "qwen3moe", "gpt-oss",
                                   "phimoe" };
    for (size_t i = 0; i < MS_ARRAY_LEN(archs); i++) test_arch(archs[i]);
    test_types();
    test_2026_shapes();
    test_longrope();
    test_determinism();
    test_deepseek2_lite();
    test_dump_self();
    const char *shared = mt_shared_dir();
    if (shared) {
        test_dump_vs_reference(shared, "fixtures", false);
        test_dump_vs_reference(shared, "fixtures2", true);
        test_dump_vs_reference(shared, "fixtures-dsv3", true);
    }
    else mt_skip("moescope dump vs llama.cpp reference outputs: %s", mt_shared_absent());
    return mt_done();
}
