/* model.c — load and validate a MoE model from GGUF: architecture,
 * hyper-parameters (GGUF-MOE.md §5), every tensor the forward pass touches
 * (presence, supported type, shape against the hyper-parameters), tokenizer.
 * Weights stay in the read-only mapping; only 1-D vectors that are not F32
 * are dequantised into owned arrays. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "hf.h"
#include "model-internal.h"

static const char *const arch_names[MS_ARCH_COUNT] = {
    "olmoe", "qwen2moe", "llama", "granitemoe", "deepseek2", "qwen3moe", "gpt-oss", "phimoe",
};

typedef struct {
    MsModel *m;
    const char *path;
    const char *arch;
    MsError *err;
} Loader;

/* ---- metadata helpers ---- */

static int key_name(char *buf, size_t cap, const Loader *L, const char *suffix)
{
    return snprintf(buf, cap, "%s.%s", L->arch, suffix);
}

/* Arch-prefixed u32; required keys give MS_ENOTFOUND with a message. */
static int get_u32(Loader *L, const char *suffix, bool required, uint32_t def, uint32_t *out)
{
    char key[256];
    key_name(key, sizeof key, L, suffix);
    int rc = ms_gguf_get_u32(L->m->gguf, key, out, L->err);
    if (rc == MS_ENOTFOUND) {
        if (required)
            return ms_error_set(L->err, MS_ENOTFOUND, "%s: missing required key %s", L->path, key);
        *out = def;
        return 0;
    }
    return rc;
}

static int get_f32(Loader *L, const char *suffix, bool required, float def, float *out)
{
    char key[256];
    key_name(key, sizeof key, L, suffix);
    int rc = ms_gguf_get_f32(L->m->gguf, key, out, L->err);
    if (rc == MS_ENOTFOUND) {
        if (required)
            return ms_error_set(L->err, MS_ENOTFOUND, "%s: missing required key %s", L->path, key);
        *out = def;
        return 0;
    }
    return rc;
}

static int get_bool(Loader *L, const char *suffix, bool def, bool *out)
{
    char key[256];
    key_name(key, sizeof key, L, suffix);
    int rc = ms_gguf_get_bool(L->m->gguf, key, out, L->err);
    if (rc == MS_ENOTFOUND) { *out = def; return 0; }
    return rc;
}

/* feed_forward_length may be a scalar or a per-layer array. */
static int get_ff(Loader *L, int n_layer, int *ff)
{
    char key[256];
    key_name(key, sizeof key, L, "feed_forward_length");
    int64_t idx = ms_gguf_find_kv(L->m->gguf, key);
    if (idx >= 0 && ms_gguf_kv_type(L->m->gguf, idx) == MS_GGUF_ARRAY) {
        MsGgufArray a;
        int rc = ms_gguf_get_arr(L->m->gguf, key, &a, L->err);
        if (rc) return rc;
        if (a.n != (uint64_t)n_layer || a.elem_type == MS_GGUF_STRING
            || a.elem_type == MS_GGUF_FLOAT32 || a.elem_type == MS_GGUF_FLOAT64)
            return ms_error_set(L->err, MS_EFORMAT,
                                "%s: key %s must be an integer or %d integers", L->path, key, n_layer);
        for (int i = 0; i < n_layer; i++) {
            int64_t v = ms_gguf_arr_i64(&a, (uint64_t)i);
            if (v < 0 || v > (1 << 24))
                return ms_error_set(L->err, MS_EFORMAT, "%s: key %s[%d] = %lld out of range",
                                    L->path, key, i, (long long)v);
            ff[i] = (int)v;
        }
        return 0;
    }
    uint32_t v = 0;
    int rc = get_u32(L, "feed_forward_length", false, 0, &v);
    if (rc) return rc;
    if (v > (1u << 24))
        return ms_error_set(L->err, MS_EFORMAT, "%s: key %s = %u out of range", L->path, key, v);
    for (int i = 0; i < n_layer; i++) ff[i] = (int)v;
    return 0;
}

/* ---- tensor helpers ---- */

static void fmt_shape(char *buf, size_t cap, int nd, const int64_t *ne)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "{");
    for (int i = 0; i < nd && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "}");
}

/* Find a tensor and check type and shape (nd dims, ne[0..nd)).  Returns
 * NULL (with *rc set) when absent and required, or on a mismatch. */
static const MsGgufTensor *find_t(Loader *L, const char *name, int nd, const int64_t *ne,
                                  bool required, int *rc)
{
    const MsGgufTensor *t = ms_gguf_find_tensor(L->m->gguf, name);
    *rc = 0;
    if (!t) {
        if (required)
            *rc = ms_error_set(L->err, MS_ENOTFOUND, "%s: missing tensor %s", L->path, name);
        return NULL;
    }
    if (!ms_type_is_supported(t->type)) {
        *rc = ms_error_set(L->err, MS_EUNSUPPORTED, "%s: tensor %s has unsupported type %s",
                           L->path, name, ms_type_name(t->type));
        return NULL;
    }
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        int64_t want = i < nd ? ne[i] : 1;
        if (t->ne[i] != want) ok = false;
    }
    if (!ok) {
        char want[96], got[96];
        int64_t tne[4];
        int tnd = (int)t->n_dims;
        for (int i = 0; i < 4; i++) tne[i] = t->ne[i];
        if (tnd < 1) tnd = 1;
        if (tnd > 4) tnd = 4;
        fmt_shape(want, sizeof want, nd, ne);
        fmt_shape(got, sizeof got, tnd, tne);
        *rc = ms_error_set(L->err, MS_EFORMAT, "%s: tensor %s has shape %s, expected %s",
                           L->path, name, got, want);
        return NULL;
    }
    return t;
}

static int mat(Loader *L, MsMat *out, bool required, int64_t cols, int64_t rows, int64_t n3,
               const char *fmt, int layer)
{
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    int64_t ne[3] = {cols, rows, n3};
    int rc;
    const MsGgufTensor *t = find_t(L, name, n3 > 0 ? 3 : 2, ne, required, &rc);
    memset(out, 0, sizeof *out);
    if (!t) return rc;
    out->data = t->data;
    out->type = t->type;
    out->cols = cols;
    out->rows = rows;
    out->row_bytes = ms_row_bytes(t->type, cols);
    out->stride = out->row_bytes * (size_t)rows;
    return 0;
}

static int own_push(MsModel *m, float *p)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 32;
        float **nw = realloc(m->owned, (size_t)cap * sizeof *nw);
        if (!nw) return MS_ENOMEM;
        m->owned = nw;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return 0;
}

/* A vector of n0 x n1 floats (1-D when n1 == 0): F32 data is used in
 * place, anything else (or misaligned) is dequantised into an owned array. */
static int vecn(Loader *L, const float **out, bool required, int64_t n0, int64_t n1, const char *fmt, int layer)
{
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    int rc;
    int64_t ne[2] = {n0, n1};
    const MsGgufTensor *t = find_t(L, name, n1 > 0 ? 2 : 1, ne, required, &rc);
    *out = NULL;
    if (!t) return rc;
    int64_t n = n0 * (n1 > 0 ? n1 : 1);
    if (t->type == MS_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    if (n % ms_type_block_elems(t->type) != 0)
        return ms_error_set(L->err, MS_EFORMAT, "%s: tensor %s: length %lld not a multiple of the %s block",
                            L->path, name, (long long)n, ms_type_name(t->type));
    float *p = malloc((size_t)n * sizeof *p);
    if (!p || own_push(L->m, p)) {
        free(p);
        return ms_error_set(L->err, MS_ENOMEM, "%s: out of memory", L->path);
    }
    ms_dequantize_row(t->type, t->data, p, n);
    *out = p;
    return 0;
}

static int vec(Loader *L, const float **out, bool required, int64_t n, const char *fmt, int layer)
{
    return vecn(L, out, required, n, 0, fmt, layer);
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int check_pos(Loader *L, const char *what, int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return ms_error_set(L->err, MS_EFORMAT, "%s: %s = %lld out of range [%lld, %lld]",
                            L->path, what, (long long)v, (long long)lo, (long long)hi);
    return 0;
}

static int load_hparams(Loader *L)
{
    MsModel *m = L->m;
    MsModelInfo *I = &m->info;
    uint32_t u;
    MsArch a = I->arch;

    TRY(get_u32(L, "context_length", true, 0, &u));
    TRY(check_pos(L, "context_length", u, 1, 1 << 24)); I->n_ctx_train = (int)u;
    TRY(get_u32(L, "embedding_length", true, 0, &u));
    TRY(check_pos(L, "embedding_length", u, 1, 1 << 20)); I->n_embd = (int)u;
    TRY(get_u32(L, "block_count", true, 0, &u));
    TRY(check_pos(L, "block_count", u, 1, 4096)); I->n_layer = (int)u;
    TRY(get_u32(L, "attention.head_count", true, 0, &u));
    TRY(check_pos(L, "attention.head_count", u, 1, 4096)); I->n_head = (int)u;
    TRY(get_u32(L, "attention.head_count_kv", false, (uint32_t)I->n_head, &u));
    TRY(check_pos(L, "attention.head_count_kv", u, 1, I->n_head)); I->n_head_kv = (int)u;
    if (I->n_head % I->n_head_kv != 0)
        return ms_error_set(L->err, MS_EFORMAT, "%s: head_count %d not a multiple of head_count_kv %d",
                            L->path, I->n_head, I->n_head_kv);
    uint32_t dflt_hd = (uint32_t)(I->n_embd / I->n_head);
    TRY(get_u32(L, "attention.key_length", false, dflt_hd, &u));
    TRY(check_pos(L, "attention.key_length", u, 1, 1 << 16)); I->head_dim_k = (int)u;
    TRY(get_u32(L, "attention.value_length", false, dflt_hd, &u));
    TRY(check_pos(L, "attention.value_length", u, 1, 1 << 16)); I->head_dim_v = (int)u;
    TRY(get_u32(L, "rope.dimension_count", a == MS_ARCH_DEEPSEEK2, (uint32_t)I->head_dim_k, &u));
    TRY(check_pos(L, "rope.dimension_count", u, 0, I->head_dim_k)); I->n_rot = (int)u;
    if (I->n_rot % 2)
        return ms_error_set(L->err, MS_EFORMAT, "%s: rope.dimension_count %d is odd", L->path, I->n_rot);
    TRY(get_f32(L, "rope.freq_base", false, 10000.0f, &I->rope_base));
    if (!(I->rope_base > 0))
        return ms_error_set(L->err, MS_EFORMAT, "%s: rope.freq_base must be > 0", L->path);
    TRY(get_f32(L, "attention.layer_norm_rms_epsilon", true, 0, &I->rms_eps));
    if (!(I->rms_eps >= 0))
        return ms_error_set(L->err, MS_EFORMAT, "%s: layer_norm_rms_epsilon must be >= 0", L->path);

    TRY(get_u32(L, "expert_count", a != MS_ARCH_LLAMA, 0, &u));
    TRY(check_pos(L, "expert_count", u, a == MS_ARCH_LLAMA ? 0 : 1, 4096)); I->n_expert = (int)u;
    TRY(get_u32(L, "expert_used_count", I->n_expert > 0, 0, &u)); I->n_expert_used = (int)u;
    if (I->n_expert > 0 && (I->n_expert_used < 1 || I->n_expert_used > I->n_expert))
        return ms_error_set(L->err, MS_EFORMAT,
                            "%s: expert_used_count %d must be in 1..expert_count (%d)",
                            L->path, I->n_expert_used, I->n_expert);

    /* RoPE scaling (YaRN or linear); defaults = none.  attn_factor multiplies
     * cos and sin (LongRoPE's magnitude, phimoe). */
    m->rope_freq_scale = 1.0f;
    m->rope_ext_factor = 0.0f;
    TRY(get_f32(L, "rope.scaling.attn_factor", false, 1.0f, &m->rope_attn_factor));
    if (!(m->rope_attn_factor > 0) || !isfinite(m->rope_attn_factor))
        return ms_error_set(L->err, MS_EFORMAT, "%s: rope.scaling.attn_factor must be > 0", L->path);
    TRY(get_u32(L, "rope.scaling.original_context_length", false, (uint32_t)I->n_ctx_train, &u));
    m->n_ctx_orig = (int)MS_MIN(u, (uint32_t)INT32_MAX);
    {
        char key[256];
        const char *s; uint64_t slen;
        key_name(key, sizeof key, L, "rope.scaling.type");
        int rc = ms_gguf_get_str(m->gguf, key, &s, &slen, L->err);
        if (rc && rc != MS_ENOTFOUND) return rc;
        float factor = 0;
        TRY(get_f32(L, "rope.scaling.factor", false, 0.0f, &factor));
        bool yarn = rc == 0 && slen == 4 && memcmp(s, "yarn", 4) == 0;
        bool none = rc != 0 || (slen == 4 && memcmp(s, "none", 4) == 0);
        bool linear = rc == 0 && slen == 6 && memcmp(s, "linear", 6) == 0;
        if (rc == 0 && !yarn && !none && !linear)
            return ms_error_set(L->err, MS_EUNSUPPORTED, "%s: unsupported rope.scaling.type '%.*s'",
                                L->path, (int)(slen > 32 ? 32 : slen), s);
        if (!none && factor > 0) m->rope_freq_scale = 1.0f / factor;
        if (yarn) {
            uint32_t orig = 0;
            TRY(get_u32(L, "rope.scaling.original_context_length", false, (uint32_t)I->n_ctx_train, &orig));
            m->rope_ext_factor = 1.0f;
            /* YaRN correction dims (ggml_rope_yarn_corr_dims), beta_fast 32, beta_slow 1. */
            float nd = (float)I->n_rot, base = I->rope_base;
            float lo = nd * logf((float)orig / (32.0f * 2.0f * (float)M_PI)) / (2.0f * logf(base));
            float hi = nd * logf((float)orig / (1.0f * 2.0f * (float)M_PI)) / (2.0f * logf(base));
            m->rope_corr_lo = fmaxf(0.0f, floorf(lo));
            m->rope_corr_hi = fminf(nd - 1.0f, ceilf(hi));
        }
    }

    m->kq_scale = 1.0f / sqrtf((float)I->head_dim_k);
    m->embd_scale = m->residual_scale = m->logit_scale = 1.0f;
    I->gating = MS_GATING_SOFTMAX;
    I->w_scale = 1.0f;
    I->norm_w = false;
    I->rope_neox = (a == MS_ARCH_OLMOE || a == MS_ARCH_QWEN2MOE || a == MS_ARCH_QWEN3MOE || a == MS_ARCH_GPTOSS ||
                    a == MS_ARCH_PHIMOE);

    /* Group-limited routing (written by 2025+ converters for DeepSeek-V3
     * and relatives; llama.cpp applies it whenever the count is > 1). */
    uint32_t groups = 1, gused = 1;
    TRY(get_u32(L, "expert_group_count", false, 1, &groups));
    TRY(get_u32(L, "expert_group_used_count", false, groups, &gused));
    if (groups == 0) groups = 1;
    if (groups > 64)
        return ms_error_set(L->err, MS_EUNSUPPORTED, "%s: expert_group_count %u: at most 64 groups are supported",
                            L->path, groups);
    if (groups > 1) {
        if (I->n_expert % (int)groups != 0 || (uint32_t)I->n_expert / groups < 2)
            return ms_error_set(L->err, MS_EFORMAT, "%s: expert_group_count %u must divide expert_count %d into "
                                "groups of at least 2", L->path, groups, I->n_expert);
        if (gused < 1 || gused > groups)
            return ms_error_set(L->err, MS_EFORMAT, "%s: expert_group_used_count %u must be in 1..%u",
                                L->path, gused, groups);
        if ((int)(gused * ((uint32_t)I->n_expert / groups)) < I->n_expert_used)
            return ms_error_set(L->err, MS_EFORMAT, "%s: %u groups of %u experts cannot supply expert_used_count %d",
                                L->path, gused, (uint32_t)I->n_expert / groups, I->n_expert_used);
    } else {
        gused = 1;
    }
    I->n_expert_groups = (int)groups;
    I->n_group_used = (int)gused;

    switch (a) {
    case MS_ARCH_OLMOE:
        if (I->n_head_kv != I->n_head)
            return ms_error_set(L->err, MS_EFORMAT, "%s: olmoe needs head_count_kv (%d) = head_count (%d)",
                                L->path, I->n_head_kv, I->n_head);
        break;
    case MS_ARCH_QWEN2MOE:
        I->shexp_gated = true;
        break;
    case MS_ARCH_LLAMA:
        I->norm_w = true;
        break;
    case MS_ARCH_QWEN3MOE:
        I->norm_w = true;   /* llama.cpp renormalises for every qwen3moe file */
        break;
    case MS_ARCH_PHIMOE:
        I->norm_w = true;
        m->q_prescale = true;
        break;
    case MS_ARCH_GPTOSS:
        I->gating = MS_GATING_SOFTMAX_TOPK;
        I->router_bias = true;
        I->attn_sinks = true;
        m->swiglu_oai = true;
        TRY(get_u32(L, "attention.sliding_window", true, 0, &u));
        TRY(check_pos(L, "attention.sliding_window", u, 1, 1 << 24)); I->n_swa = (int)u;
        if (I->n_rot < 1)
            return ms_error_set(L->err, MS_EFORMAT, "%s: gpt-oss needs rope.dimension_count >= 1", L->path);
        m->kq_scale = 1.0f / sqrtf((float)I->n_rot);   /* llama.cpp scales by the rotated width */
        break;
    case MS_ARCH_GRANITEMOE: {
        I->norm_w = true;
        float as;
        TRY(get_f32(L, "embedding_scale", true, 0, &m->embd_scale));
        TRY(get_f32(L, "residual_scale", true, 0, &m->residual_scale));
        TRY(get_f32(L, "logit_scale", true, 0, &m->logit_scale));
        TRY(get_f32(L, "attention.scale", true, 0, &as));
        if (m->logit_scale == 0)
            return ms_error_set(L->err, MS_EFORMAT, "%s: granitemoe.logit_scale is 0", L->path);
        if (as != 0) m->kq_scale = as;
        break;
    }
    case MS_ARCH_DEEPSEEK2: {
        TRY(get_u32(L, "leading_dense_block_count", false, 0, &u));
        TRY(check_pos(L, "leading_dense_block_count", u, 0, I->n_layer)); I->n_layer_dense_lead = (int)u;
        /* llama.cpp's rule for the q-without-LoRA ("lite") path, by layer
         * count (and, for 48 blocks, the vocabulary size) */
        const MsGgufTensor *te = ms_gguf_find_tensor(m->gguf, "token_embd.weight");
        bool lite = I->n_layer == 27 || I->n_layer == 26 || (I->n_layer == 48 && te && te->ne[1] == 128256);
        if (!lite) {
            TRY(get_u32(L, "attention.q_lora_rank", true, 0, &u));
            TRY(check_pos(L, "attention.q_lora_rank", u, 1, 1 << 20)); m->q_lora_rank = (int)u;
        }
        TRY(get_u32(L, "attention.kv_lora_rank", true, 0, &u));
        TRY(check_pos(L, "attention.kv_lora_rank", u, 1, 1 << 20)); m->kv_lora_rank = (int)u;
        uint32_t kmla = 0, vmla = 0;
        TRY(get_u32(L, "attention.key_length_mla", false, 0, &kmla));
        TRY(get_u32(L, "attention.value_length_mla", false, 0, &vmla));
        if (kmla && vmla) {
            /* Absorbed MLA (2025+ converters): key/value_length describe the
             * cached latent (kv_lora_rank + rope, kv_lora_rank); the per-head
             * sizes are the *_mla keys, and so is the KQ scale. */
            TRY(check_pos(L, "attention.key_length_mla", kmla, 1, 1 << 16));
            TRY(check_pos(L, "attention.value_length_mla", vmla, 1, 1 << 16));
            I->mla_absorbed = true;
            I->head_dim_k = (int)kmla;
            I->head_dim_v = (int)vmla;
            m->kq_scale = 1.0f / sqrtf((float)kmla);
        }
        I->kv_lora_rank = m->kv_lora_rank;
        if (I->n_rot >= I->head_dim_k)
            return ms_error_set(L->err, MS_EFORMAT, "%s: deepseek2 key_length %d must exceed rope dims %d",
                                L->path, I->head_dim_k, I->n_rot);
        m->n_embd_head_nope = I->head_dim_k - I->n_rot;
        TRY(get_u32(L, "expert_shared_count", false, 0, &u));
        TRY(check_pos(L, "expert_shared_count", u, 0, 4096)); I->n_expert_shared = (int)u;
        TRY(get_f32(L, "expert_weights_scale", false, 1.0f, &I->w_scale));
        TRY(get_bool(L, "expert_weights_norm", false, &I->norm_w));
        TRY(get_u32(L, "expert_gating_func", false, 1, &u));
        if (u == 0 || u == 1) I->gating = MS_GATING_SOFTMAX;
        else if (u == 2) I->gating = MS_GATING_SIGMOID;
        else return ms_error_set(L->err, MS_EUNSUPPORTED, "%s: unsupported expert_gating_func %u", L->path, u);
        /* YaRN magnitude: kq_scale = mscale^2 / sqrt(key_length), RoPE magnitude 1. */
        if (m->rope_ext_factor != 0 || m->rope_freq_scale != 1.0f) {
            float lm = 0;
            TRY(get_f32(L, "rope.scaling.yarn_log_multiplier", false, 0.0f, &lm));
            float ms = 1.0f + lm * logf(1.0f / m->rope_freq_scale);
            m->kq_scale = ms * ms / sqrtf((float)I->head_dim_k);
            m->rope_attn_factor = 1.0f / (1.0f + 0.1f * logf(1.0f / m->rope_freq_scale));
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static int load_tensors(Loader *L, const int *ff)
{
    MsModel *m = L->m;
    MsModelInfo *I = &m->info;
    const int64_t E = I->n_embd;
    int64_t n_vocab;
    int rc;

    const MsGgufTensor *te = ms_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return ms_error_set(L->err, MS_ENOTFOUND, "%s: missing tensor token_embd.weight", L->path);
    n_vocab = te->ne[1];
    if (n_vocab < 1 || n_vocab > INT32_MAX)
        return ms_error_set(L->err, MS_EFORMAT, "%s: tensor token_embd.weight has a bad vocabulary size", L->path);
    I->n_vocab = (int)n_vocab;
    TRY(mat(L, &m->tok_embd, true, E, n_vocab, 0, "token_embd.weight", 0));
    TRY(vec(L, &m->output_norm, true, E, "output_norm.weight", 0));
    const bool phi = I->arch == MS_ARCH_PHIMOE;
    TRY(vec(L, &m->output_norm_b, phi, E, "output_norm.bias", 0));
    TRY(mat(L, &m->output, false, E, n_vocab, 0, "output.weight", 0));
    TRY(vec(L, &m->output_b, false, n_vocab, "output.bias", 0));
    if (!m->output.data) m->output = m->tok_embd;   /* tied embeddings (llama.cpp's fallback) */
    /* per-pair RoPE frequency factors: LongRoPE's short/long pair, or one
     * rope_freqs tensor that always applies */
    if (I->n_rot >= 2) {
        TRY(vec(L, &m->rope_freqs, false, I->n_rot / 2, "rope_freqs.weight", 0));
        TRY(vec(L, &m->rope_short, false, I->n_rot / 2, "rope_factors_short.weight", 0));
        TRY(vec(L, &m->rope_long, false, I->n_rot / 2, "rope_factors_long.weight", 0));
        if (!m->rope_short != !m->rope_long)
            return ms_error_set(L->err, MS_ENOTFOUND, "%s: missing tensor %s", L->path,
                                m->rope_short ? "rope_factors_long.weight" : "rope_factors_short.weight");
        I->rope_factors = m->rope_freqs || m->rope_short;
    }

    const int64_t H = I->n_head, HKV = I->n_head_kv, dk = I->head_dim_k, dv = I->head_dim_v;
    const int64_t NE = I->n_expert;
    m->layers = calloc((size_t)I->n_layer, sizeof *m->layers);
    if (!m->layers) return ms_error_set(L->err, MS_ENOMEM, "%s: out of memory", L->path);

    /* 64-bit until checked: a file's u32 (times the shared-expert count)
     * must not overflow before check_pos can name it */
    int64_t n_ff_exp = 0, n_ff_shexp = 0;
    int n_ff_dense = 0;
    uint32_t u;
    if (I->arch == MS_ARCH_QWEN2MOE) {
        TRY(get_u32(L, "expert_feed_forward_length", false,
                    I->n_expert_used ? (uint32_t)(ff[0] / I->n_expert_used) : 0, &u));
        n_ff_exp = u;
        TRY(get_u32(L, "expert_shared_feed_forward_length", false, (uint32_t)ff[0], &u));
        n_ff_shexp = u;
    } else if (I->arch == MS_ARCH_DEEPSEEK2) {
        TRY(get_u32(L, "expert_feed_forward_length", true, 0, &u));
        n_ff_exp = u;
        n_ff_shexp = n_ff_exp * I->n_expert_shared;
    } else if (I->arch == MS_ARCH_GRANITEMOE) {
        n_ff_exp = ff[0];
        TRY(get_u32(L, "expert_shared_feed_forward_length", false, 0, &u));
        n_ff_shexp = u;
    } else if (I->arch == MS_ARCH_QWEN3MOE || I->arch == MS_ARCH_GPTOSS) {
        TRY(get_u32(L, "expert_feed_forward_length", I->arch == MS_ARCH_GPTOSS, (uint32_t)ff[0], &u));
        n_ff_exp = u;
    } else {
        n_ff_exp = ff[0];
    }
    TRY(check_pos(L, "expert feed_forward_length", n_ff_exp, I->n_expert > 0 ? 1 : 0, 1 << 24));
    TRY(check_pos(L, "expert_shared_feed_forward_length", n_ff_shexp, 0, 1 << 24));

    const bool oss = I->arch == MS_ARCH_GPTOSS;
    for (int il = 0; il < I->n_layer; il++) {
        MsLayer *ly = &m->layers[il];
        ly->n_ff = ff[il];
        TRY(vec(L, &ly->attn_norm, true, E, "blk.%d.attn_norm.weight", il));
        /* gpt-oss names its pre-FFN norm post_attention_norm */
        TRY(vec(L, &ly->ffn_norm, true, E, oss ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", il));
        TRY(vec(L, &ly->attn_norm_b, phi, E, "blk.%d.attn_norm.bias", il));
        TRY(vec(L, &ly->ffn_norm_b, phi, E, "blk.%d.ffn_norm.bias", il));
        /* llama.cpp's default pattern for gpt-oss: every even block slides */
        ly->swa = I->n_swa > 0 && il % 2 == 0;
        I->n_swa_layers += ly->swa;
        if (I->arch == MS_ARCH_DEEPSEEK2) {
            const int64_t kvr = m->kv_lora_rank, qr = m->q_lora_rank, nope = m->n_embd_head_nope;
            if (qr > 0) {
                TRY(mat(L, &ly->wq_a, true, E, qr, 0, "blk.%d.attn_q_a.weight", il));
                TRY(vec(L, &ly->q_a_norm, true, qr, "blk.%d.attn_q_a_norm.weight", il));
                TRY(mat(L, &ly->wq_b, true, qr, H * dk, 0, "blk.%d.attn_q_b.weight", il));
            } else {
                TRY(mat(L, &ly->wq, true, E, H * dk, 0, "blk.%d.attn_q.weight", il));
            }
            TRY(mat(L, &ly->wkv_a, true, E, kvr + I->n_rot, 0, "blk.%d.attn_kv_a_mqa.weight", il));
            TRY(vec(L, &ly->kv_a_norm, true, kvr, "blk.%d.attn_kv_a_norm.weight", il));
            if (I->mla_absorbed) {
                TRY(mat(L, &ly->wk_b, true, nope, kvr, H, "blk.%d.attn_k_b.weight", il));
                TRY(mat(L, &ly->wv_b, true, kvr, dv, H, "blk.%d.attn_v_b.weight", il));
            } else {
                TRY(mat(L, &ly->wkv_b, true, kvr, H * (nope + dv), 0, "blk.%d.attn_kv_b.weight", il));
            }
            TRY(mat(L, &ly->wo, true, H * dv, E, 0, "blk.%d.attn_output.weight", il));
        } else {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", il);
            const int64_t qkv_rows = H * dk + HKV * dk + HKV * dv;
            if (ms_gguf_find_tensor(m->gguf, nm)) {   /* fused projection (phi3 style) */
                TRY(mat(L, &ly->wqkv, true, E, qkv_rows, 0, "blk.%d.attn_qkv.weight", il));
                TRY(vec(L, &ly->bqkv, phi, qkv_rows, "blk.%d.attn_qkv.bias", il));
            } else {
                TRY(mat(L, &ly->wq, true, E, H * dk, 0, "blk.%d.attn_q.weight", il));
                TRY(mat(L, &ly->wk, true, E, HKV * dk, 0, "blk.%d.attn_k.weight", il));
                TRY(mat(L, &ly->wv, true, E, HKV * dv, 0, "blk.%d.attn_v.weight", il));
                bool need_b = phi || oss;   /* optional for the other archs */
                TRY(vec(L, &ly->bq, need_b, H * dk, "blk.%d.attn_q.bias", il));
                TRY(vec(L, &ly->bk, need_b, HKV * dk, "blk.%d.attn_k.bias", il));
                TRY(vec(L, &ly->bv, need_b, HKV * dv, "blk.%d.attn_v.bias", il));
            }
            TRY(mat(L, &ly->wo, true, H * dv, E, 0, "blk.%d.attn_output.weight", il));
            TRY(vec(L, &ly->bo, phi || oss, E, "blk.%d.attn_output.bias", il));
            if (I->arch == MS_ARCH_OLMOE) {
                TRY(vec(L, &ly->q_norm, true, H * dk, "blk.%d.attn_q_norm.weight", il));
                TRY(vec(L, &ly->k_norm, true, HKV * dk, "blk.%d.attn_k_norm.weight", il));
            } else if (I->arch == MS_ARCH_QWEN3MOE) {
                /* one head_dim-wide weight shared by every head */
                TRY(vec(L, &ly->q_norm, true, dk, "blk.%d.attn_q_norm.weight", il));
                TRY(vec(L, &ly->k_norm, true, dk, "blk.%d.attn_k_norm.weight", il));
                ly->qk_norm_head = true;
            }
            if (oss) TRY(vec(L, &ly->sinks, true, H, "blk.%d.attn_sinks.weight", il));
        }

        /* Which FFN: deepseek2 by leading count, llama by the router's presence. */
        bool moe;
        if (I->arch == MS_ARCH_DEEPSEEK2) moe = il >= I->n_layer_dense_lead;
        else if (I->arch == MS_ARCH_LLAMA) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight", il);
            moe = I->n_expert > 0 && ms_gguf_find_tensor(m->gguf, nm) != NULL;
        } else moe = true;
        ly->moe = moe;

        if (!moe) {
            int64_t nff = I->arch == MS_ARCH_DEEPSEEK2 ? ff[il] : ly->n_ff;
            TRY(check_pos(L, "feed_forward_length", nff, 1, 1 << 24));
            TRY(mat(L, &ly->ffn_gate, true, E, nff, 0, "blk.%d.ffn_gate.weight", il));
            TRY(mat(L, &ly->ffn_up, true, E, nff, 0, "blk.%d.ffn_up.weight", il));
            TRY(mat(L, &ly->ffn_down, true, nff, E, 0, "blk.%d.ffn_down.weight", il));
            if (nff > n_ff_dense) n_ff_dense = (int)nff;
            continue;
        }
        const int64_t F = n_ff_exp;
        TRY(mat(L, &ly->gate_inp, true, E, NE, 0, "blk.%d.ffn_gate_inp.weight", il));
        TRY(vec(L, &ly->gate_inp_b, oss, NE, "blk.%d.ffn_gate_inp.bias", il));
        TRY(vec(L, &ly->exp_probs_b, false, NE, "blk.%d.exp_probs_b.bias", il));
        TRY(mat(L, &ly->gate_exps, true, E, F, NE, "blk.%d.ffn_gate_exps.weight", il));
        TRY(mat(L, &ly->up_exps, true, E, F, NE, "blk.%d.ffn_up_exps.weight", il));
        TRY(mat(L, &ly->down_exps, true, F, E, NE, "blk.%d.ffn_down_exps.weight", il));
        TRY(vecn(L, &ly->gate_exps_b, oss, F, NE, "blk.%d.ffn_gate_exps.bias", il));
        TRY(vecn(L, &ly->up_exps_b, oss, F, NE, "blk.%d.ffn_up_exps.bias", il));
        TRY(vecn(L, &ly->down_exps_b, oss, E, NE, "blk.%d.ffn_down_exps.bias", il));
        bool need_sh = (I->arch == MS_ARCH_QWEN2MOE)
                    || (I->arch == MS_ARCH_DEEPSEEK2 && I->n_expert_shared > 0);
        bool may_sh = need_sh || (I->arch == MS_ARCH_GRANITEMOE && n_ff_shexp > 0);
        if (may_sh) {
            const int64_t S = n_ff_shexp;
            if (S < 1)
                return ms_error_set(L->err, MS_EFORMAT, "%s: shared expert width is 0", L->path);
            TRY(mat(L, &ly->gate_shexp, need_sh, E, S, 0, "blk.%d.ffn_gate_shexp.weight", il));
            TRY(mat(L, &ly->up_shexp, need_sh || ly->gate_shexp.data, E, S, 0, "blk.%d.ffn_up_shexp.weight", il));
            TRY(mat(L, &ly->down_shexp, need_sh || ly->gate_shexp.data, S, E, 0,
                    "blk.%d.ffn_down_shexp.weight", il));
            if (I->arch == MS_ARCH_QWEN2MOE) {
                /* {n_embd} in llama.cpp's files; a [n_embd, 1] matrix is the same thing. */
                char nm[64];
                snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp_shexp.weight", il);
                const MsGgufTensor *t = ms_gguf_find_tensor(m->gguf, nm);
                if (t && t->n_dims == 2) TRY(mat(L, &ly->gate_inp_shexp, true, E, 1, 0, "blk.%d.ffn_gate_inp_shexp.weight", il));
                else {
                    int64_t ne1[1] = {E};
                    int rc2;
                    t = find_t(L, nm, 1, ne1, true, &rc2);
                    if (!t) return rc2;
                    MsMat *g = &ly->gate_inp_shexp;
                    g->data = t->data; g->type = t->type; g->cols = E; g->rows = 1;
                    g->row_bytes = ms_row_bytes(t->type, E); g->stride = g->row_bytes;
                }
            }
        }
        if (ly->gate_shexp.data && I->n_expert_shared == 0) I->n_expert_shared = 1;
    }
    I->n_ff_exp = I->n_expert > 0 ? (int)n_ff_exp : 0;
    I->n_ff_shexp = 0;
    for (int il = 0; il < I->n_layer; il++)
        if (m->layers[il].gate_shexp.data) I->n_ff_shexp = (int)n_ff_shexp;
    if (I->n_ff_shexp == 0) I->n_expert_shared = 0;
    I->n_ff_dense = n_ff_dense;
    (void)rc;
    return 0;
}

/* Every tensor whose type is not computable is an error even if unused:
 * the user should hear about it at load time. */
static int check_all_types(Loader *L)
{
    int64_t n = ms_gguf_n_tensors(L->m->gguf);
    int64_t counts[MS_TYPE_COUNT];
    memset(counts, 0, sizeof counts);
    for (int64_t i = 0; i < n; i++) {
        const MsGgufTensor *t = ms_gguf_tensor(L->m->gguf, i);
        if (!ms_type_is_supported(t->type))
            return ms_error_set(L->err, MS_EUNSUPPORTED, "%s: tensor %s has unsupported type %s",
                                L->path, t->name, ms_type_name(t->type));
        if (t->n_dims >= 2 && t->type >= 0 && t->type < MS_TYPE_COUNT)
            counts[t->type] += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    int best = MS_TYPE_F32;
    for (int t = 0; t < MS_TYPE_COUNT; t++)
        if (counts[t] > counts[best]) best = t;
    L->m->info.weight_type = best;
    return 0;
}

MsModel *ms_model_load(const char *path, MsError *err)
{
    return ms_model_load_ex(path, MS_WEIGHTS_AUTO, err);
}

MsModel *ms_model_load_ex(const char *path, MsWeights weights, MsError *err)
{
    MsModel *m = calloc(1, sizeof *m);
    int *ff = NULL;
    if (!m) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); return NULL; }
    /* a Hugging Face checkpoint becomes the same description a GGUF gives */
    m->gguf = ms_hf_is_checkpoint(path) ? ms_hf_open(path, err) : ms_gguf_open(path, err);
    if (!m->gguf) goto fail;
    Loader L = { m, path, NULL, err };

    const char *s; uint64_t len;
    int rc = ms_gguf_get_str(m->gguf, "general.architecture", &s, &len, err);
    if (rc == MS_ENOTFOUND) { ms_error_set(err, MS_ENOTFOUND, "%s: missing key general.architecture", path); goto fail; }
    if (rc) goto fail;
    int arch = -1;
    for (int i = 0; i < MS_ARCH_COUNT; i++)
        if (strlen(arch_names[i]) == len && memcmp(arch_names[i], s, len) == 0) arch = i;
    if (arch < 0) {
        ms_error_set(err, MS_EUNSUPPORTED, "%s: unsupported architecture '%.*s' (supported: olmoe, qwen2moe, "
                     "qwen3moe, llama with experts, granitemoe, deepseek2, gpt-oss, phimoe)", path,
                     (int)(len > 64 ? 64 : len), s);
        goto fail;
    }
    m->info.arch = (MsArch)arch;
    m->info.arch_name = arch_names[arch];
    L.arch = arch_names[arch];
    rc = ms_gguf_get_str(m->gguf, "general.name", &s, &len, err);
    if (rc && rc != MS_ENOTFOUND) goto fail;
    m->name = rc ? strdup("") : strndup(s, len);
    if (!m->name) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto fail; }
    m->info.name = m->name;
    m->info.file_size = ms_gguf_file_size(m->gguf);

    if (check_all_types(&L)) goto fail;
    if (load_hparams(&L)) goto fail;
    if (m->info.arch == MS_ARCH_LLAMA && m->info.n_expert == 0) {
        ms_error_set(err, MS_EUNSUPPORTED, "%s: architecture llama without experts (llama.expert_count) "
                     "is not a MoE model", path);
        goto fail;
    }
    ff = calloc((size_t)m->info.n_layer, sizeof *ff);
    if (!ff) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto fail; }
    if (get_ff(&L, m->info.n_layer, ff)) goto fail;
    if (load_tensors(&L, ff)) goto fail;
    free(ff);
    ff = NULL;

    m->tok = ms_tokenizer_new(m->gguf, err);
    if (!m->tok) {
        /* most tokenizer messages already start with "PATH: " */
        size_t pl = strlen(path);
        if (err && (strncmp(err->msg, path, pl) || err->msg[pl] != ':'))
            ms_error_prefix(err, "%s: tokenizer: ", path);
        goto fail;
    }
    if (ms_tokenizer_n_vocab(m->tok) != m->info.n_vocab) {
        ms_error_set(err, MS_EFORMAT, "%s: tokenizer has %d tokens but token_embd.weight has %d rows",
                     path, (int)ms_tokenizer_n_vocab(m->tok), m->info.n_vocab);
        goto fail;
    }
    /* validated: now worth reading ahead, or copying */
    if (ms_gguf_set_weights(m->gguf, weights, err)) goto fail;
    ms_gguf_prefetch(m->gguf);
    return m;
fail:
    free(ff);
    ms_model_free(m);
    return NULL;
}

void ms_model_free(MsModel *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->name);
    ms_tokenizer_free(m->tok);
    ms_gguf_free(m->gguf);
    free(m);
}

void ms_model_type_histogram(const MsModel *m, int64_t *counts)
{
    memset(counts, 0, MS_TYPE_COUNT * sizeof *counts);
    int64_t n = ms_gguf_n_tensors(m->gguf);
    for (int64_t i = 0; i < n; i++) {
        int t = ms_gguf_tensor(m->gguf, i)->type;
        if (t >= 0 && t < MS_TYPE_COUNT) counts[t]++;
    }
}

/* Bytes of a matrix (n3 slices of `stride` bytes: experts or heads). */
static uint64_t mat_bytes(const MsMat *x, int64_t n3)
{
    return x->data ? (uint64_t)x->stride * (uint64_t)n3 : 0;
}

uint64_t ms_model_decode_weight_bytes(const MsModel *m)
{
    const MsModelInfo *in = &m->info;
    uint64_t s = (m->tok_embd.data ? m->tok_embd.row_bytes : 0) + mat_bytes(&m->output, 1);
    for (int il = 0; il < in->n_layer; il++) {
        const MsLayer *L = &m->layers[il];
        const MsMat *full[] = {
            &L->wq, &L->wk, &L->wv, &L->wo, &L->wqkv, &L->wq_a, &L->wq_b, &L->wkv_a, &L->wkv_b,
            &L->ffn_gate, &L->ffn_up, &L->ffn_down, &L->gate_inp,
            &L->gate_shexp, &L->up_shexp, &L->down_shexp, &L->gate_inp_shexp,
        };
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) s += mat_bytes(full[i], 1);
        s += mat_bytes(&L->wk_b, in->n_head) + mat_bytes(&L->wv_b, in->n_head);
        if (L->moe)
            s += mat_bytes(&L->gate_exps, in->n_expert_used) + mat_bytes(&L->up_exps, in->n_expert_used) +
                 mat_bytes(&L->down_exps, in->n_expert_used);
    }
    return s;
}
