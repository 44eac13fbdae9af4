/* test-model-errors.c — ms_model_load rejects broken or unsupported models
 * with one clear line naming the problem, and never crashes; eval rejects
 * impossible requests.  Models are written with the GGUF writer into a temp
 * dir: a tiny olmoe-shaped file, then one defect per variant.  Eval-time
 * errors on a synth model, the bundled default model and (with ../shared) a
 * fixture model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "gguf.h"
#include "mtest.h"
#include "quant.h"
#include "synth.h"

#define EMBD 256
#define FF 256
#define NEXP 2
#define NVOCAB 260

typedef struct {
    const char *arch;          /* general.architecture */
    const char *bad_type_tensor; int bad_type;
    const char *missing_tensor;
    const char *bad_shape_tensor;
    int used;                  /* expert_used_count */
    const char *missing_key;   /* suffix after "<arch>." */
    const char *extra_key;     /* suffix after "<arch>.", written as u32 extra_val */
    uint32_t extra_val;
} Variant;

static int add(MsGgufWriter *w, const Variant *v, const char *name, int nd, int64_t a, int64_t b, int64_t c,
               int64_t *bytes, int *n)
{
    if (v->missing_tensor && strcmp(name, v->missing_tensor) == 0) return 0;
    int64_t ne[3] = {a, b, c};
    if (v->bad_shape_tensor && strcmp(name, v->bad_shape_tensor) == 0) ne[1] = 100;
    int type = MS_TYPE_F32;
    if (v->bad_type_tensor && strcmp(name, v->bad_type_tensor) == 0) type = v->bad_type;
    int64_t rows = ne[1] * (nd > 2 ? ne[2] : 1);
    if (nd == 1) rows = 1;
    bytes[*n] = (int64_t)ms_row_bytes(type, ne[0]) * rows;
    (*n)++;
    return ms_gguf_writer_add_tensor(w, name, type, (uint32_t)nd, ne);
}

static int write_model(const char *path, const Variant *v)
{
    MsError err = {0};
    MsGgufWriter *w = ms_gguf_writer_new(path, &err);
    if (!w) { mt_diag("writer: %s", err.msg); return -1; }
    const char *arch = v->arch ? v->arch : "olmoe";
    char key[128];
    ms_gguf_writer_set_str(w, "general.architecture", arch);
    struct { const char *k; uint32_t val; } u32s[] = {
        {"context_length", 512}, {"embedding_length", EMBD}, {"block_count", 1},
        {"feed_forward_length", FF}, {"attention.head_count", 4}, {"attention.head_count_kv", 4},
        {"expert_count", NEXP}, {"expert_used_count", (uint32_t)(v->used ? v->used : 1)},
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        if (v->missing_key && strcmp(v->missing_key, u32s[i].k) == 0) continue;
        snprintf(key, sizeof key, "%s.%s", arch, u32s[i].k);
        ms_gguf_writer_set_u32(w, key, u32s[i].val);
    }
    if (v->extra_key) {
        snprintf(key, sizeof key, "%s.%s", arch, v->extra_key);
        ms_gguf_writer_set_u32(w, key, v->extra_val);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    ms_gguf_writer_set_f32(w, key, 1e-5f);
    ms_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    ms_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    static char tokbuf[NVOCAB][8];
    const char *toks[NVOCAB];
    for (int i = 0; i < NVOCAB; i++) { snprintf(tokbuf[i], sizeof tokbuf[i], "t%d", i); toks[i] = tokbuf[i]; }
    ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NVOCAB);

    int64_t bytes[32];
    int n = 0, rc = 0;
    rc |= add(w, v, "token_embd.weight", 2, EMBD, NVOCAB, 1, bytes, &n);
    rc |= add(w, v, "output_norm.weight", 1, EMBD, 1, 1, bytes, &n);
    rc |= add(w, v, "output.weight", 2, EMBD, NVOCAB, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_norm.weight", 1, EMBD, 1, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_q.weight", 2, EMBD, EMBD, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_k.weight", 2, EMBD, EMBD, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_v.weight", 2, EMBD, EMBD, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_output.weight", 2, EMBD, EMBD, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_q_norm.weight", 1, EMBD, 1, 1, bytes, &n);
    rc |= add(w, v, "blk.0.attn_k_norm.weight", 1, EMBD, 1, 1, bytes, &n);
    rc |= add(w, v, "blk.0.ffn_norm.weight", 1, EMBD, 1, 1, bytes, &n);
    rc |= add(w, v, "blk.0.ffn_gate_inp.weight", 2, EMBD, NEXP, 1, bytes, &n);
    rc |= add(w, v, "blk.0.ffn_gate_exps.weight", 3, EMBD, FF, NEXP, bytes, &n);
    rc |= add(w, v, "blk.0.ffn_up_exps.weight", 3, EMBD, FF, NEXP, bytes, &n);
    rc |= add(w, v, "blk.0.ffn_down_exps.weight", 3, FF, EMBD, NEXP, bytes, &n);
    rc |= ms_gguf_writer_write_header(w);
    /* Small deterministic non-zero values so a valid variant could run. */
    for (int i = 0; i < n && rc == 0; i++) {
        uint8_t *buf = calloc(1, (size_t)bytes[i]);
        if (!buf) { rc = -1; break; }
        rc |= ms_gguf_writer_write_tensor_data(w, buf, (uint64_t)bytes[i]);
        free(buf);
    }
    if (rc == 0) rc = ms_gguf_writer_finish(w, &err);
    ms_gguf_writer_free(w);
    if (rc) mt_diag("writing %s failed (%d): %s", path, rc, err.msg);
    return rc;
}

static bool one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* Load variant v; expect failure with code (or any code if code == 0) and
 * every needle in the message. */
static void expect_fail(const char *what, const Variant *v, int code, const char *n1, const char *n2)
{
    char path[512];
    static int seq;
    snprintf(path, sizeof path, "%s/v%d.gguf", mt_tmpdir(), seq++);
    if (!MT_CHECK(write_model(path, v) == 0, "%s: variant written", what)) return;
    char seed[64];
    snprintf(seed, sizeof seed, "model-error-%02d.gguf", seq - 1);
    mt_seed("gguf", seed, path);
    MsError err = {0};
    MsModel *m = ms_model_load(path, &err);
    MT_CHECK(m == NULL && err.code < 0 && (code == 0 || err.code == code),
             "%s: rejected with %s (got %d: %s)", what, code ? ms_strerror(code) : "an error", err.code, err.msg);
    MT_CHECK(one_line(err.msg) && strstr(err.msg, path) != NULL, "%s: one line naming the file", what);
    if (n1) MT_CHECK(strstr(err.msg, n1) != NULL, "%s: message names '%s'", what, n1);
    if (n2) MT_CHECK(strstr(err.msg, n2) != NULL, "%s: message names '%s'", what, n2);
    ms_model_free(m);
    remove(path);
}

/* Eval-time errors of a loadable model: tokens outside the vocabulary, a
 * full context (nothing evaluated, n_past unchanged), NULL tokens, bad
 * context parameters; exactly n_ctx tokens fit and give finite logits. */
static void eval_errors(const char *path, const char *what)
{
    MsError err = {0};
    MsModel *m = ms_model_load(path, &err);
    if (MT_CHECK(m != NULL, "%s loads (%s)", what, m ? "ok" : err.msg)) {
        MsContextParams p = ms_context_default_params();
        p.n_ctx = 8; p.n_threads = 2;
        MsContext *c = ms_context_new(m, &p, &err);
        if (!MT_CHECK(c != NULL, "%s: context (%s)", what, c ? "ok" : err.msg)) {
            ms_model_free(m);
            return;
        }
        const int V = ms_model_info(m)->n_vocab;
        int32_t toks[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        float *lg = malloc(sizeof(float) * 9 * (size_t)V);
        int32_t bad = V, neg = -1;
        MT_CHECK(ms_context_eval(c, &bad, 1, lg, false, &err) == MS_ERANGE && one_line(err.msg) &&
                 ms_context_n_past(c) == 0, "%s: token %d outside the vocabulary: %s", what, bad, err.msg);
        MT_CHECK(ms_context_eval(c, &neg, 1, lg, false, &err) == MS_ERANGE && one_line(err.msg) &&
                 ms_context_n_past(c) == 0, "%s: token -1: %s", what, err.msg);
        MT_CHECK(ms_context_eval(c, toks, 9, lg, true, &err) == MS_ERANGE && ms_context_n_past(c) == 0,
                 "%s: context full: %s", what, err.msg);
        MT_CHECK(ms_context_eval(c, toks, 8, lg, true, &err) == 0 && ms_context_n_past(c) == 8, "%s: fills exactly",
                 what);
        MT_CHECK(ms_context_eval(c, toks, 1, lg, false, &err) == MS_ERANGE && ms_context_n_past(c) == 8,
                 "%s: then full: %s", what, err.msg);
        bool finite = true;
        for (size_t i = 0; i < 8 * (size_t)V; i++) finite &= isfinite(lg[i]);
        MT_CHECK(finite, "%s: logits finite", what);
        ms_context_reset(c);
        MT_CHECK(ms_context_n_past(c) == 0 && ms_context_eval(c, toks, 1, lg, false, &err) == 0, "%s: reset", what);
        MT_CHECK(ms_context_eval(c, NULL, 2, lg, false, &err) == MS_EINVAL, "%s: NULL tokens: %s", what, err.msg);
        free(lg);
        ms_context_free(c);
        p.n_ctx = -1;
        c = ms_context_new(m, &p, &err);
        MT_CHECK(c == NULL && err.code == MS_EINVAL, "%s: bad params: %s", what, err.msg);
    }
    ms_model_free(m);
}

static float *logits_of(MsModel *m, int n)
{
    MsError err = {0};
    MsContextParams p = ms_context_default_params();
    p.n_ctx = n; p.n_threads = 2;
    MsContext *c = ms_context_new(m, &p, &err);
    const int V = ms_model_info(m)->n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
    int32_t toks[16];
    for (int i = 0; i < n; i++) toks[i] = (i * 37 + 5) % V;
    if (!c || !lg || ms_context_eval(c, toks, n, lg, true, &err)) { free(lg); lg = NULL; }
    ms_context_free(c);
    return lg;
}

/* Where the weights live (gguf.h MsWeights): the private copy computes the
 * same logits as the file mapping, bit for bit; a file that shrank after it
 * was opened cannot be copied, and then COPIED fails with one line while
 * AUTO stays on the mapping; so does a file bigger than half of memory. */
static void weights_modes(const char *path)
{
    MsError err = {0};
    MsModel *a = ms_model_load_ex(path, MS_WEIGHTS_MAPPED, &err);
    MsModel *b = ms_model_load_ex(path, MS_WEIGHTS_COPIED, &err);
    MsModel *c = ms_model_load(path, &err);
    if (MT_CHECK(a && b && c, "loads mapped, copied and auto (%s)", err.msg[0] ? err.msg : "ok")) {
        const MsGguf *ga = ms_model_gguf(a), *gb = ms_model_gguf(b);
        MT_CHECK(ms_gguf_weights(ga) == MS_WEIGHTS_MAPPED && ms_gguf_weights(gb) == MS_WEIGHTS_COPIED,
                 "the mapping and the copy say what they are (%d, %d)", ms_gguf_weights(ga), ms_gguf_weights(gb));
        MT_CHECK(ms_gguf_weights(ms_model_gguf(c)) == MS_WEIGHTS_COPIED,
                 "auto copies a model this small (%.0f KB)", ms_gguf_file_size(ga) / 1e3);
        MT_CHECK(ms_gguf_huge_bytes(ga) == 0 && ms_gguf_huge_bytes(gb) <= ms_gguf_file_size(gb),
                 "huge-page bytes: mapping 0, copy %llu of %llu", (unsigned long long)ms_gguf_huge_bytes(gb),
                 (unsigned long long)ms_gguf_file_size(gb));
        const int n = 6, V = ms_model_info(a)->n_vocab;
        float *la = logits_of(a, n), *lb = logits_of(b, n);
        MT_CHECK(la && lb && memcmp(la, lb, sizeof(float) * (size_t)n * (size_t)V) == 0,
                 "copy and mapping give the same logits, bit for bit");
        free(la);
        free(lb);
    }
    ms_model_free(a);
    ms_model_free(b);
    ms_model_free(c);

    char small[1024];
    snprintf(small, sizeof small, "%s/shrinks.gguf", mt_tmpdir());
    MsGguf *g = mt_copy_file(path, small) ? NULL : ms_gguf_open(small, &err);
    if (MT_CHECK(g != NULL, "copy of the model opens (%s)", g ? "ok" : err.msg)) {
        MT_CHECK(truncate(small, (off_t)(ms_gguf_file_size(g) / 2)) == 0, "file cut to half its size");
        int rc = ms_gguf_set_weights(g, MS_WEIGHTS_COPIED, &err);
        MT_CHECK(rc == MS_EIO && one_line(err.msg) && strstr(err.msg, small) && strstr(err.msg, "shrank") &&
                 ms_gguf_weights(g) == MS_WEIGHTS_MAPPED, "shrunk file: COPIED fails, stays mapped: %s", err.msg);
        MT_CHECK(ms_gguf_set_weights(g, MS_WEIGHTS_AUTO, &err) == 0 && ms_gguf_weights(g) == MS_WEIGHTS_MAPPED,
                 "shrunk file: AUTO stays mapped without an error");
        MT_CHECK(ms_gguf_n_kv(g) > 0 && ms_gguf_find_kv(g, "general.architecture") >= 0,
                 "its metadata is still readable");
        ms_gguf_free(g);
    }
    remove(small);
    MT_CHECK(ms_gguf_set_weights(NULL, MS_WEIGHTS_COPIED, &err) == 0 && ms_gguf_weights(NULL) == MS_WEIGHTS_MAPPED &&
             ms_gguf_huge_bytes(NULL) == 0, "NULL is accepted");
}

int main(void)
{
    Variant v;

    memset(&v, 0, sizeof v); v.arch = "mamba";
    expect_fail("unsupported architecture", &v, MS_EUNSUPPORTED, "mamba", NULL);

    memset(&v, 0, sizeof v); v.bad_type_tensor = "blk.0.ffn_up_exps.weight"; v.bad_type = 16; /* IQ2_XXS */
    expect_fail("IQ2_XXS weight", &v, MS_EUNSUPPORTED, "IQ2_XXS", "blk.0.ffn_up_exps.weight");

    memset(&v, 0, sizeof v); v.bad_type_tensor = "blk.0.attn_q.weight"; v.bad_type = 23; /* IQ4_XS */
    expect_fail("IQ4_XS weight", &v, MS_EUNSUPPORTED, "IQ4_XS", "blk.0.attn_q.weight");

    /* group-limited routing that cannot be satisfied */
    memset(&v, 0, sizeof v); v.extra_key = "expert_group_count"; v.extra_val = 3;
    expect_fail("experts not divisible into groups", &v, MS_EFORMAT, "expert_group_count 3", NULL);
    memset(&v, 0, sizeof v); v.extra_key = "expert_group_count"; v.extra_val = 128;
    expect_fail("too many expert groups", &v, MS_EUNSUPPORTED, "expert_group_count 128", NULL);
    memset(&v, 0, sizeof v); v.extra_key = "expert_group_count"; v.extra_val = 2;
    expect_fail("groups of one expert", &v, MS_EFORMAT, "groups of at least 2", NULL);

    /* the 2026 architectures: their own required keys and tensor shapes */
    memset(&v, 0, sizeof v); v.arch = "gpt-oss";
    expect_fail("gpt-oss without a sliding window", &v, MS_ENOTFOUND, "gpt-oss.attention.sliding_window", NULL);
    memset(&v, 0, sizeof v); v.arch = "gpt-oss"; v.extra_key = "attention.sliding_window"; v.extra_val = 128;
    expect_fail("gpt-oss without its expert width", &v, MS_ENOTFOUND, "gpt-oss.expert_feed_forward_length", NULL);
    memset(&v, 0, sizeof v); v.arch = "qwen3moe";
    expect_fail("qwen3moe QK norm of the whole width", &v, MS_EFORMAT, "blk.0.attn_q_norm.weight", "expected {64}");
    memset(&v, 0, sizeof v); v.arch = "phimoe";
    expect_fail("phimoe without norm biases", &v, MS_ENOTFOUND, "output_norm.bias", NULL);

    memset(&v, 0, sizeof v); v.missing_tensor = "blk.0.ffn_down_exps.weight";
    expect_fail("missing tensor", &v, MS_ENOTFOUND, "blk.0.ffn_down_exps.weight", NULL);

    memset(&v, 0, sizeof v); v.missing_tensor = "blk.0.attn_k_norm.weight";
    expect_fail("missing olmoe k-norm", &v, MS_ENOTFOUND, "blk.0.attn_k_norm.weight", NULL);

    memset(&v, 0, sizeof v); v.missing_tensor = "token_embd.weight";
    expect_fail("missing embeddings", &v, MS_ENOTFOUND, "token_embd.weight", NULL);

    memset(&v, 0, sizeof v); v.bad_shape_tensor = "blk.0.attn_k.weight";
    expect_fail("wrong shape", &v, MS_EFORMAT, "blk.0.attn_k.weight", "expected {256, 256}");

    memset(&v, 0, sizeof v); v.bad_shape_tensor = "blk.0.ffn_gate_exps.weight";
    expect_fail("wrong expert shape", &v, MS_EFORMAT, "blk.0.ffn_gate_exps.weight", "{256, 100, 2}");

    memset(&v, 0, sizeof v); v.used = NEXP + 1;
    expect_fail("expert_used_count > expert_count", &v, MS_EFORMAT, "expert_used_count", NULL);

    memset(&v, 0, sizeof v); v.missing_key = "embedding_length";
    expect_fail("missing key", &v, MS_ENOTFOUND, "olmoe.embedding_length", NULL);

    memset(&v, 0, sizeof v); v.missing_key = "expert_count";
    expect_fail("missing expert_count", &v, MS_ENOTFOUND, "olmoe.expert_count", NULL);

    memset(&v, 0, sizeof v); v.arch = "llama"; v.missing_key = "expert_count";
    expect_fail("llama without experts", &v, MS_EUNSUPPORTED, "llama", NULL);

    /* Not a file / not a GGUF: errors, no crash. */
    {
        MsError err = {0};
        char path[512];
        snprintf(path, sizeof path, "%s/none.gguf", mt_tmpdir());
        MsModel *m = ms_model_load(path, &err);
        MT_CHECK(!m && err.code == MS_EIO && one_line(err.msg), "missing file: %s", err.msg);
        snprintf(path, sizeof path, "%s/junk.gguf", mt_tmpdir());
        FILE *f = fopen(path, "wb");
        fputs("GGUF\3\0\0\0 this is not a model", f);
        fclose(f);
        m = ms_model_load(path, &err);
        MT_CHECK(!m && err.code < 0 && one_line(err.msg), "junk file: %s", err.msg);
        remove(path);
    }

    /* A real model: eval-time errors. */
    {
        char path[1024];
        MsSynthParams p = ms_synth_default_params();
        p.arch = "llama";
        p.n_layer = 2; p.n_embd = 64; p.n_head = 4; p.n_head_kv = 2;
        p.n_expert = 4; p.n_expert_used = 2; p.n_ff = 32; p.n_vocab = 300; p.n_threads = 2;
        snprintf(path, sizeof path, "%s/synth.gguf", mt_tmpdir());
        MsError err = {0};
        if (MT_CHECK(ms_synth_write(path, &p, &err) == 0, "synth model written (%s)", err.msg[0] ? err.msg : "ok"))
            eval_errors(path, "synth llama");
        weights_modes(path);
        remove(path);
        const char *src = getenv("MS_SOURCE_DIR");
        snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
        eval_errors(path, "default model");
        const char *dir = mt_shared_dir();
        if (dir) {
            snprintf(path, sizeof path, "%s/fixtures/models/olmoe-tiny.F32.gguf", dir);
            eval_errors(path, "olmoe-tiny fixture");
        } else {
            mt_skip("eval-time checks on a fixture model: %s", mt_shared_absent());
        }
    }
    ms_model_free(NULL);
    ms_context_free(NULL);
    return mt_done();
}
