/* forward.c — the forward pass: batched prefill and decode with a KV cache,
 * in llama.cpp's order of operations (GGUF-MOE.md §3, §4, §5), multithreaded
 * over a private pool.
 *
 * Products: F32 weights go through OpenBLAS (single-threaded calls on
 * disjoint row blocks); every other weight type goes through ms_gemm/ms_gemv
 * with each activation row first converted to the weight's vec_dot type, as
 * llama.cpp's CPU backend does.  Work is split into fixed blocks that depend
 * only on the shapes, never on the thread count, so results are bit-identical
 * for any number of threads.  Every buffer is allocated at context creation. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "model-internal.h"
#include "ms-vexp.h"
#include "route.h"

#define ATT_TBLOCK 32          /* query rows per attention task */
#define ROW_BLOCK_UNIT 80      /* row blocks are multiples of this (row_block) */

struct MsContext {
    const MsModel *m;
    MsThreadPool *tp;
    int n_ctx, n_batch, n_threads;
    MsKvType kv_type;
    int n_past;
    MsObserver obs;
    bool obs_routing, obs_hidden;
    const MsCancel *cancel;    /* polled between layers; NULL = never */
    MsIntervention *iv;
    int kcap;                  /* experts per token the slot buffers hold */

    /* KV cache, per layer [n_ctx][kv_dim] (float or uint16).  Absorbed MLA
     * caches K rows only: [k_pe | latent], the value being the latent. */
    void **kc, **vc;
    int kv_dim_k, kv_dim_v;
    /* attention geometry: per-head query/key and value widths, KV heads,
     * and where V lives (v_off >= 0: inside the K row at that offset) */
    int att_dk, att_dv, att_hkv, v_off;
    const float *rope_ff;             /* per-pair RoPE frequency factors, or NULL */

    /* activations [n_batch][...] */
    float *x, *xn, *q, *k, *v, *att, *tmp, *fo;
    float *qkv;                       /* fused q|k|v projection output */
    float *qa, *kva, *lat, *kvb;      /* deepseek2 */
    float *qm, *attv;                 /* absorbed MLA: [q_pe | q_abs] per head; heads after attn_v_b */
    float *fg, *fu, *zsh;             /* dense / shared FFN */
    float *rope_cs;                   /* [n_batch][n_rot] cos, sin pairs */
    int32_t *pos;
    float *hmax;
    int32_t *hargmax;
    uint8_t *act;  size_t act_cap;    /* converted activation rows */
    uint8_t *act2; size_t act2_cap;   /* second conversion (different weight type) */
    /* attention per-thread scratch */
    float *scores; size_t scores_per_thread;
    float *kvf;    size_t kvf_per_thread;   /* F16 cache rows converted to F32 */

    /* MoE */
    float *rlog, *rprob, *rw;
    int32_t *rids;
    int32_t *rused;            /* [n_batch] experts each token uses (< k only under ser) */
    float *smax, *sl2;
    int32_t *sargmax;
    int32_t *ecount, *eoff, *efill, *slot_of, *slot_tok, *slot_exp;
    float *G, *U, *D;
    uint8_t *eact, *eact2, *hact;
    size_t eact_cap, hact_cap;
    int *jobs;  int jobs_cap;         /* task table: packed (expert, kind, block) */
};

/* ------------------------------------------------------------ helpers */

static void *xcalloc(size_t n, size_t sz, bool *ok)
{
    if (n == 0) n = 1;
    void *p = calloc(n, sz);
    if (!p) *ok = false;
    return p;
}

static inline float silu(float x) { return x / (1.0f + ms_exp_v(-x)); }

/* ggml rms_norm then mul: squares summed in double, scale as float. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* llama.cpp's build_norm with a bias (phimoe): RMS norm, * w, + b. */
static void rmsnorm_b(float *out, const float *x, const float *w, const float *b, int64_t n, float eps)
{
    rmsnorm(out, x, w, n, eps);
    if (b)
        for (int64_t i = 0; i < n; i++) out[i] += b[i];
}

static int64_t row_block(int64_t rows)
{
    /* ~32 blocks, depending on the shape only.  A multiple of 80 rows: of
     * 16 as before and of the AVX-512 F16 tile's 5, so no block ends in a
     * partly used tile (blocks of 32 rows ran that tile 10-17 % slower than
     * blocks of 80).  Each row's sum does not depend on its block. */
    int64_t b = (rows + 31) / 32;
    return (b + ROW_BLOCK_UNIT - 1) / ROW_BLOCK_UNIT * ROW_BLOCK_UNIT;
}

/* Decode (one token): the same row range for every task, as few blocks as
 * keep every thread busy when n_mats matrices are split alike.  Each task
 * then streams a long run of weights from DRAM; blocks of row_block's size
 * (80 rows, 90 KB of Q4_K) cut the streams short and made two-thread
 * decode 5-25 % slower. */
static int64_t decode_block(int64_t rows, int n_mats, int n_threads)
{
    if (n_mats < 1) n_mats = 1;
    int64_t nb = (2 * (int64_t)n_threads + n_mats - 1) / n_mats;   /* >= 2 tasks per thread */
    int64_t b = (rows + nb - 1) / nb;
    b = (b + ROW_BLOCK_UNIT - 1) / ROW_BLOCK_UNIT * ROW_BLOCK_UNIT;
    return MS_MIN(b, rows);
}

static size_t act_row_bytes(int wtype, int64_t cols)
{
    return ms_row_bytes(ms_vec_dot_type(wtype), cols);
}

/* ------------------------------------------------------ matrix products */

typedef struct {
    MsContext *c;
    const MsMat *W;
    const uint8_t *wbase;      /* W->data + expert offset */
    const float *X; int ldx;   /* F32 path */
    const uint8_t *A; size_t astride; /* converted path */
    int T;
    float *Y; int ldy;
    int64_t blk;
} MmJob;

static void mm_task(void *p, int task, int thread)
{
    MmJob *j = p;
    const MsMat *W = j->W;
    int64_t r0 = (int64_t)task * j->blk;
    int64_t nr = MS_MIN(j->blk, W->rows - r0);
    const uint8_t *w = j->wbase + (size_t)r0 * W->row_bytes;
    (void)thread;
    if (W->type == MS_TYPE_F32) {
        if (j->T == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)W->cols, 1.0f, (const float *)w,
                        (int)W->cols, j->X, 1, 0.0f, j->Y + r0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, (int)nr, (int)W->cols, 1.0f,
                        j->X, j->ldx, (const float *)w, (int)W->cols, 0.0f, j->Y + r0, j->ldy);
    } else if (j->T == 1) {
        ms_gemv(W->type, W->cols, nr, w, j->A, j->Y + r0);
    } else {
        ms_gemm(W->type, W->cols, nr, w, j->T, j->A, j->Y + r0, j->ldy);
    }
}

typedef struct {
    int wtype; int64_t cols;
    const float *X; int ldx;
    uint8_t *A; size_t astride;
} ConvJob;

#define CONV_ROWS 8
static void conv_task(void *p, int task, int thread)
{
    ConvJob *j = p;
    (void)thread;
    for (int t = task * CONV_ROWS, e = t + CONV_ROWS; t < e; t++)
        ms_quantize_act(j->wtype, j->X + (size_t)t * j->ldx, j->A + (size_t)t * j->astride, j->cols);
}

/* Convert T rows of X (stride ldx) for weight type wtype into buf. */
static size_t convert_rows(MsContext *c, int wtype, int64_t cols, const float *X, int ldx, int T,
                           uint8_t *buf)
{
    size_t stride = act_row_bytes(wtype, cols);
    if (T < 2 * CONV_ROWS) {
        for (int t = 0; t < T; t++) ms_quantize_act(wtype, X + (size_t)t * ldx, buf + (size_t)t * stride, cols);
        return stride;
    }
    ConvJob j = { wtype, cols, X, ldx, buf, stride };
    int full = T / CONV_ROWS;
    ms_tp_run(c->tp, full, conv_task, &j);
    for (int t = full * CONV_ROWS; t < T; t++)
        ms_quantize_act(wtype, X + (size_t)t * ldx, buf + (size_t)t * stride, cols);
    return stride;
}

/* Y[t][0..rows) = W · X[t] for t < T.  A, if non-NULL, holds X already
 * converted for W's type (stride astride); otherwise c->act is used. */
static void mm_ex(MsContext *c, const MsMat *W, size_t woff, const float *X, int ldx, int T,
                  const uint8_t *A, size_t astride, float *Y, int ldy)
{
    MmJob j = { c, W, (const uint8_t *)W->data + woff, X, ldx, A, astride, T, Y, ldy, row_block(W->rows) };
    if (W->type != MS_TYPE_F32 && !A) {
        j.astride = convert_rows(c, W->type, W->cols, X, ldx, T, c->act);
        j.A = c->act;
    }
    int n_tasks = (int)((W->rows + j.blk - 1) / j.blk);
    ms_tp_run(c->tp, n_tasks, mm_task, &j);
}

static void mm(MsContext *c, const MsMat *W, const float *X, int ldx, int T, float *Y, int ldy)
{
    mm_ex(c, W, 0, X, ldx, T, NULL, 0, Y, ldy);
}

/* ------------------------------------------------------------- RoPE */

static float yarn_ramp(float low, float high, int i0)
{
    float y = ((float)(i0 / 2) - low) / MS_MAX(0.001f, high - low);
    return 1.0f - MS_MIN(1.0f, MS_MAX(0.0f, y));
}

/* cos/sin for each rotated pair at position p, as ggml_rope_cache_init:
 * theta starts at p and is multiplied by base^(-2/n_rot) once per pair;
 * a per-pair frequency factor ff (LongRoPE, rope_freqs) divides the angle
 * of its pair only. */
static void rope_cache(const MsModel *m, const float *ff, int32_t p, float *cs)
{
    const int n_rot = m->info.n_rot;
    const float theta_scale = powf(m->info.rope_base, -2.0f / (float)n_rot);
    const float fs = m->rope_freq_scale, ext = m->rope_ext_factor;
    float theta = (float)p;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        float mscale = m->rope_attn_factor;
        float th_interp = fs * (ff ? theta / ff[i0 / 2] : theta);
        float th = th_interp;
        if (ext != 0.0f) {
            float mix = yarn_ramp(m->rope_corr_lo, m->rope_corr_hi, i0) * ext;
            th = th_interp * (1 - mix) + (ff ? theta / ff[i0 / 2] : theta) * mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / fs);
        }
        cs[i0] = cosf(th) * mscale;
        cs[i0 + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

static void rope_apply(float *x, int n_rot, const float *cs, bool neox)
{
    if (neox) {
        const int h = n_rot / 2;
        for (int i = 0; i < h; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[i], x1 = x[i + h];
            x[i] = x0 * c - x1 * s;
            x[i + h] = x0 * s + x1 * c;
        }
    } else {
        for (int i = 0; i < n_rot; i += 2) {
            float c = cs[i], s = cs[i + 1];
            float x0 = x[i], x1 = x[i + 1];
            x[i] = x0 * c - x1 * s;
            x[i + 1] = x0 * s + x1 * c;
        }
    }
}

/* ---------------------------------------------------------- attention */

typedef struct {
    MsContext *c;
    int layer, T;
    float scale;
    const float *Q;            /* [T][H * att_dk] */
    const float *sinks;        /* [H] or NULL */
    int swa;                   /* window in tokens, 0 = full causal */
} AttJob;

/* One head over one block of query rows: scores, softmax (causal, the
 * sliding window when set, a sink logit when set), times V.  With a sink
 * the softmax denominator also holds exp(sink - max) and the sink has no
 * value (ggml_soft_max_add_sinks). */
static void att_task(void *p, int task, int thread)
{
    AttJob *j = p;
    MsContext *c = j->c;
    const MsModelInfo *MI = &c->m->info;
    const int H = MI->n_head, HKV = c->att_hkv, dk = c->att_dk, dv = c->att_dv;
    const int nblk = (j->T + ATT_TBLOCK - 1) / ATT_TBLOCK;
    const int h = task / nblk, b = task % nblk;
    const int t0 = b * ATT_TBLOCK, nt = MS_MIN(ATT_TBLOCK, j->T - t0);
    const int kvh = h / (H / HKV);
    const int n_kv = c->n_past + t0 + nt;   /* keys the last row of this block sees */
    float *S = c->scores + (size_t)thread * c->scores_per_thread;
    const float *K, *V;
    int ldk, ldv;

    if (c->kv_type == MS_KV_F16) {
        float *kf = c->kvf + (size_t)thread * c->kvf_per_thread;
        float *vf = kf + (size_t)c->n_ctx * dk;
        const uint16_t *k16 = (const uint16_t *)c->kc[j->layer] + (size_t)kvh * dk;
        const uint16_t *v16 = c->v_off >= 0 ? k16 + c->v_off : (const uint16_t *)c->vc[j->layer] + (size_t)kvh * dv;
        const int ldv16 = c->v_off >= 0 ? c->kv_dim_k : c->kv_dim_v;
        for (int r = 0; r < n_kv; r++) {
            for (int i = 0; i < dk; i++) kf[(size_t)r * dk + i] = ms_fp16_to_fp32(k16[(size_t)r * c->kv_dim_k + i]);
            for (int i = 0; i < dv; i++) vf[(size_t)r * dv + i] = ms_fp16_to_fp32(v16[(size_t)r * ldv16 + i]);
        }
        K = kf; ldk = dk; V = vf; ldv = dv;
    } else {
        K = (const float *)c->kc[j->layer] + (size_t)kvh * dk; ldk = c->kv_dim_k;
        if (c->v_off >= 0) { V = K + c->v_off; ldv = c->kv_dim_k; }
        else { V = (const float *)c->vc[j->layer] + (size_t)kvh * dv; ldv = c->kv_dim_v; }
    }
    const float *Q = j->Q + (size_t)t0 * H * dk + (size_t)h * dk;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, n_kv, dk, 1.0f, Q, H * dk, K, ldk,
                0.0f, S, n_kv);
    const float sink = j->sinks ? j->sinks[h] : 0.0f;
    for (int t = 0; t < nt; t++) {
        float *s = S + (size_t)t * n_kv;
        const int pos = c->n_past + t0 + t;
        const int lim = pos + 1;                               /* causal: keys 0..pos */
        const int lo = j->swa > 0 ? MS_MAX(0, pos - j->swa + 1) : 0;   /* window: pos-swa+1..pos */
        /* in loops the compiler vectorises: 16 running maxima, 8 running
         * sums (in double, as ggml sums a softmax) */
        const float scale = j->scale;
        for (int i = lo; i < lim; i++) s[i] *= scale;
        float m16[16];
        for (int l = 0; l < 16; l++) m16[l] = -INFINITY;
        int i = lo;
        for (; i + 16 <= lim; i += 16)
            for (int l = 0; l < 16; l++) m16[l] = s[i + l] > m16[l] ? s[i + l] : m16[l];
        float mx = -INFINITY;
        for (int l = 0; l < 16; l++) mx = m16[l] > mx ? m16[l] : mx;
        for (; i < lim; i++) mx = s[i] > mx ? s[i] : mx;
        if (j->sinks && sink > mx) mx = sink;
        for (i = lo; i < lim; i++) s[i] = ms_exp_v(s[i] - mx);
        double s8[8] = { 0 };
        for (i = lo; i + 8 <= lim; i += 8)
            for (int l = 0; l < 8; l++) s8[l] += (double)s[i + l];
        double sum = 0.0;
        for (int l = 0; l < 8; l++) sum += s8[l];
        for (; i < lim; i++) sum += (double)s[i];
        if (j->sinks) sum += (double)ms_exp_v(sink - mx);
        const float inv = (float)(1.0 / sum);
        for (i = 0; i < lo; i++) s[i] = 0.0f;
        for (i = lo; i < lim; i++) s[i] *= inv;
        for (i = lim; i < n_kv; i++) s[i] = 0.0f;
    }
    float *O = c->att + (size_t)t0 * H * dv + (size_t)h * dv;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, dv, n_kv, 1.0f, S, n_kv, V, ldv,
                0.0f, O, H * dv);
}

static void kv_store(MsContext *c, int layer, int T)
{
    const int dk = c->kv_dim_k, dv = c->kv_dim_v;
    for (int t = 0; t < T; t++) {
        size_t row = (size_t)(c->n_past + t);
        const float *ks = c->k + (size_t)t * dk, *vs = c->v + (size_t)t * dv;
        if (c->kv_type == MS_KV_F16) {
            uint16_t *kd = (uint16_t *)c->kc[layer] + row * dk;
            for (int i = 0; i < dk; i++) kd[i] = ms_fp32_to_fp16(ks[i]);
            if (dv > 0) {
                uint16_t *vd = (uint16_t *)c->vc[layer] + row * dv;
                for (int i = 0; i < dv; i++) vd[i] = ms_fp32_to_fp16(vs[i]);
            }
        } else {
            memcpy((float *)c->kc[layer] + row * dk, ks, (size_t)dk * sizeof(float));
            if (dv > 0) memcpy((float *)c->vc[layer] + row * dv, vs, (size_t)dv * sizeof(float));
        }
    }
}

/* deepseek2 MLA, decompressed form (attn_kv_b): per-head k = [k_nope | k_pe],
 * v from the latent; q, kva, lat computed by the caller. */
static void mla_decompressed(MsContext *c, const MsLayer *ly, int T)
{
    const MsModel *m = c->m;
    const MsModelInfo *MI = &m->info;
    const int H = MI->n_head, dk = MI->head_dim_k, dv = MI->head_dim_v, n_rot = MI->n_rot;
    const int kvr = m->kv_lora_rank, nope = m->n_embd_head_nope, kva_w = kvr + n_rot;
    const int kvb_w = H * (nope + dv);
    mm(c, &ly->wkv_b, c->lat, kvr, T, c->kvb, kvb_w);
    for (int t = 0; t < T; t++) {
        const float *cs = c->rope_cs + (size_t)t * n_rot;
        float *kpe = c->kva + (size_t)t * kva_w + kvr;
        rope_apply(kpe, n_rot, cs, false);
        for (int h = 0; h < H; h++) {
            float *qh = c->q + (size_t)t * H * dk + (size_t)h * dk;
            rope_apply(qh + nope, n_rot, cs, false);
            const float *src = c->kvb + (size_t)t * kvb_w + (size_t)h * (nope + dv);
            float *kh = c->k + (size_t)t * H * dk + (size_t)h * dk;
            memcpy(kh, src, (size_t)nope * sizeof(float));
            memcpy(kh + nope, kpe, (size_t)n_rot * sizeof(float));
            memcpy(c->v + (size_t)t * H * dv + (size_t)h * dv, src + nope, (size_t)dv * sizeof(float));
        }
    }
}

/* deepseek2 MLA, absorbed form (attn_k_b / attn_v_b), as llama.cpp runs it:
 * per head q_abs = k_b[h] . q_nope (kv_lora_rank values), query [q_pe | q_abs],
 * one shared key [k_pe | latent] per token, the latent as value; the
 * attention output per head is decompressed by v_b[h] (into c->attv). */
static void mla_absorbed_q(MsContext *c, const MsLayer *ly, int T)
{
    const MsModel *m = c->m;
    const MsModelInfo *MI = &m->info;
    const int H = MI->n_head, dk = MI->head_dim_k, n_rot = MI->n_rot;
    const int kvr = m->kv_lora_rank, nope = m->n_embd_head_nope, kva_w = kvr + n_rot;
    const int dq = n_rot + kvr;
    for (int h = 0; h < H; h++)
        mm_ex(c, &ly->wk_b, (size_t)h * ly->wk_b.stride, c->q + (size_t)h * dk, H * dk, T, NULL, 0,
              c->qm + (size_t)h * dq + n_rot, H * dq);
    for (int t = 0; t < T; t++) {
        const float *cs = c->rope_cs + (size_t)t * n_rot;
        float *kva = c->kva + (size_t)t * kva_w;
        rope_apply(kva + kvr, n_rot, cs, false);
        float *kt = c->k + (size_t)t * dq;
        memcpy(kt, kva + kvr, (size_t)n_rot * sizeof(float));
        memcpy(kt + n_rot, c->lat + (size_t)t * kvr, (size_t)kvr * sizeof(float));
        for (int h = 0; h < H; h++) {
            float *qpe = c->q + (size_t)t * H * dk + (size_t)h * dk + nope;
            rope_apply(qpe, n_rot, cs, false);
            memcpy(c->qm + (size_t)t * H * dq + (size_t)h * dq, qpe, (size_t)n_rot * sizeof(float));
        }
    }
}

/* Attention block: xn -> c->tmp ([T][n_embd], before the residual add). */
static void attention(MsContext *c, int il, int T)
{
    const MsModel *m = c->m;
    const MsModelInfo *MI = &m->info;
    const MsLayer *ly = &m->layers[il];
    const int E = MI->n_embd, H = MI->n_head, HKV = MI->n_head_kv, dk = MI->head_dim_k, dv = MI->head_dim_v;
    const int n_rot = MI->n_rot;
    const float *Q = c->q;
    const float *att_out = c->att;

    if (MI->arch == MS_ARCH_DEEPSEEK2) {
        const int qr = m->q_lora_rank, kvr = m->kv_lora_rank;
        if (qr > 0) {
            mm(c, &ly->wq_a, c->xn, E, T, c->qa, qr);
            for (int t = 0; t < T; t++)
                rmsnorm(c->qa + (size_t)t * qr, c->qa + (size_t)t * qr, ly->q_a_norm, qr, MI->rms_eps);
            mm(c, &ly->wq_b, c->qa, qr, T, c->q, H * dk);
        } else {
            mm(c, &ly->wq, c->xn, E, T, c->q, H * dk);
        }
        const int kva_w = kvr + n_rot;
        mm(c, &ly->wkv_a, c->xn, E, T, c->kva, kva_w);
        for (int t = 0; t < T; t++)
            rmsnorm(c->lat + (size_t)t * kvr, c->kva + (size_t)t * kva_w, ly->kv_a_norm, kvr, MI->rms_eps);
        if (MI->mla_absorbed) {
            mla_absorbed_q(c, ly, T);
            Q = c->qm;
        } else {
            mla_decompressed(c, ly, T);
        }
    } else {
        if (ly->wqkv.data) {
            /* fused projection: rows q | k | v, one bias */
            const int R = H * dk + HKV * dk + HKV * dv;
            mm(c, &ly->wqkv, c->xn, E, T, c->qkv, R);
            for (int t = 0; t < T; t++) {
                float *r = c->qkv + (size_t)t * R;
                if (ly->bqkv) for (int i = 0; i < R; i++) r[i] += ly->bqkv[i];
                memcpy(c->q + (size_t)t * H * dk, r, (size_t)H * dk * sizeof(float));
                memcpy(c->k + (size_t)t * HKV * dk, r + H * dk, (size_t)HKV * dk * sizeof(float));
                memcpy(c->v + (size_t)t * HKV * dv, r + H * dk + HKV * dk, (size_t)HKV * dv * sizeof(float));
            }
        } else {
            /* q, k, v share the input: convert once when their types agree. */
            const uint8_t *A = NULL;
            size_t as = 0;
            if (ly->wq.type != MS_TYPE_F32 && ly->wq.type == ly->wk.type && ly->wq.type == ly->wv.type) {
                as = convert_rows(c, ly->wq.type, E, c->xn, E, T, c->act2);
                A = c->act2;
            }
            mm_ex(c, &ly->wq, 0, c->xn, E, T, A, as, c->q, H * dk);
            mm_ex(c, &ly->wk, 0, c->xn, E, T, A, as, c->k, HKV * dk);
            mm_ex(c, &ly->wv, 0, c->xn, E, T, A, as, c->v, HKV * dv);
        }
        for (int t = 0; t < T; t++) {
            float *q = c->q + (size_t)t * H * dk, *k = c->k + (size_t)t * HKV * dk, *v = c->v + (size_t)t * HKV * dv;
            if (ly->bq) for (int i = 0; i < H * dk; i++) q[i] += ly->bq[i];
            if (ly->bk) for (int i = 0; i < HKV * dk; i++) k[i] += ly->bk[i];
            if (ly->bv) for (int i = 0; i < HKV * dv; i++) v[i] += ly->bv[i];
            if (ly->qk_norm_head) {
                /* qwen3moe: each head's head_dim values, one shared weight */
                for (int h = 0; h < H; h++) rmsnorm(q + (size_t)h * dk, q + (size_t)h * dk, ly->q_norm, dk, MI->rms_eps);
                for (int h = 0; h < HKV; h++) rmsnorm(k + (size_t)h * dk, k + (size_t)h * dk, ly->k_norm, dk, MI->rms_eps);
            } else {
                if (ly->q_norm) rmsnorm(q, q, ly->q_norm, (int64_t)H * dk, MI->rms_eps);
                if (ly->k_norm) rmsnorm(k, k, ly->k_norm, (int64_t)HKV * dk, MI->rms_eps);
            }
            if (n_rot > 0) {
                const float *cs = c->rope_cs + (size_t)t * n_rot;
                for (int h = 0; h < H; h++) rope_apply(q + (size_t)h * dk, n_rot, cs, MI->rope_neox);
                for (int h = 0; h < HKV; h++) rope_apply(k + (size_t)h * dk, n_rot, cs, MI->rope_neox);
            }
            if (m->q_prescale)
                for (int i = 0; i < H * dk; i++) q[i] *= m->kq_scale;
        }
    }
    kv_store(c, il, T);
    AttJob aj = { c, il, T, m->q_prescale ? 1.0f : m->kq_scale, Q, ly->sinks, ly->swa ? MI->n_swa : 0 };
    ms_tp_run(c->tp, H * ((T + ATT_TBLOCK - 1) / ATT_TBLOCK), att_task, &aj);
    if (MI->mla_absorbed) {
        /* decompress each head's latent output: attn_v_b[h] . o[h] */
        const int kvr = m->kv_lora_rank;
        for (int h = 0; h < H; h++)
            mm_ex(c, &ly->wv_b, (size_t)h * ly->wv_b.stride, c->att + (size_t)h * kvr, H * kvr, T, NULL, 0,
                  c->attv + (size_t)h * dv, H * dv);
        att_out = c->attv;
    }
    mm(c, &ly->wo, att_out, H * dv, T, c->tmp, E);
    if (ly->bo)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < E; i++) c->tmp[(size_t)t * E + i] += ly->bo[i];
}

/* --------------------------------------------------------------- FFN */

/* down(silu(gate·xn) * up·xn) -> out [T][n_embd]. */
static void ffn_dense(MsContext *c, const MsMat *g, const MsMat *u, const MsMat *d, int T, float *out)
{
    const int E = c->m->info.n_embd;
    const int F = (int)g->rows;
    const uint8_t *A = NULL;
    size_t as = 0;
    if (g->type != MS_TYPE_F32 && g->type == u->type) {
        as = convert_rows(c, g->type, E, c->xn, E, T, c->act2);
        A = c->act2;
    }
    mm_ex(c, g, 0, c->xn, E, T, A, as, c->fg, F);
    mm_ex(c, u, 0, c->xn, E, T, A, as, c->fu, F);
    for (size_t i = 0; i < (size_t)T * F; i++) c->fg[i] = silu(c->fg[i]) * c->fu[i];
    mm(c, d, c->fg, F, T, out, E);
}

enum { JOB_GATE = 0, JOB_UP = 1, JOB_DOWN = 2 };

typedef struct {
    MsContext *c;
    const MsLayer *ly;
    int n_jobs;
    int64_t blk_ff, blk_e;
    size_t sa_g, sa_u, sa_h;   /* converted row strides */
} MoeJob;

/* One (expert, matrix, row block) product over the expert's token slots. */
static void moe_task(void *p, int task, int thread)
{
    MoeJob *j = p;
    MsContext *c = j->c;
    const int E = c->m->info.n_embd;
    const int F = c->m->info.n_ff_exp;
    int packed = c->jobs[task];
    int kind = packed & 3, e = (packed >> 2) & 0xfff, b = packed >> 14;
    const int n = c->ecount[e], s0 = c->eoff[e];
    const MsMat *W; const uint8_t *A; size_t as; float *Y; int ldy; int64_t blk;
    (void)thread;
    if (kind == JOB_DOWN) {
        W = &j->ly->down_exps; as = j->sa_h;
        A = W->type == MS_TYPE_F32 ? (const uint8_t *)c->G : c->hact; Y = c->D; ldy = E; blk = j->blk_e;
    } else if (kind == JOB_GATE) {
        W = &j->ly->gate_exps; A = c->eact; as = j->sa_g; Y = c->G; ldy = F; blk = j->blk_ff;
    } else {
        W = &j->ly->up_exps; A = c->eact2 ? c->eact2 : c->eact; as = j->sa_u; Y = c->U; ldy = F; blk = j->blk_ff;
        if (j->ly->up_exps.type == j->ly->gate_exps.type) { A = c->eact; as = j->sa_g; }
    }
    int64_t r0 = (int64_t)b * blk, nr = MS_MIN(blk, W->rows - r0);
    const uint8_t *w = (const uint8_t *)W->data + (size_t)e * W->stride + (size_t)r0 * W->row_bytes;
    const uint8_t *a = A + (size_t)s0 * as;
    float *y = Y + (size_t)s0 * ldy + r0;
    if (W->type == MS_TYPE_F32) {
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)W->cols, 1.0f, (const float *)w,
                        (int)W->cols, (const float *)a, 1, 0.0f, y, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)nr, (int)W->cols, 1.0f,
                        (const float *)a, (int)(as / sizeof(float)), (const float *)w, (int)W->cols,
                        0.0f, y, ldy);
    } else if (n == 1) {
        ms_gemv(W->type, W->cols, nr, w, a, y);
    } else {
        ms_gemm(W->type, W->cols, nr, w, n, a, y, ldy);
    }
}

typedef struct { MsContext *c; const MsLayer *ly; int wtype; int F; size_t sa_h; int n_slots; } ActJob;
#define ACT_SLOTS 16
#define OAI_ALPHA 1.702f
#define OAI_LIMIT 7.0f
static void act_task(void *p, int task, int thread)
{
    ActJob *j = p;
    MsContext *c = j->c;
    const MsLayer *ly = j->ly;
    const int F = j->F;   /* a local: stores to g could alias j->F, which kept the loops scalar */
    (void)thread;
    int s0 = task * ACT_SLOTS, s1 = MS_MIN(s0 + ACT_SLOTS, j->n_slots);
    for (int s = s0; s < s1; s++) {
        float *g = c->G + (size_t)s * F;
        float *u = c->U + (size_t)s * F;
        const size_t eo = (size_t)c->slot_exp[s] * F;
        if (ly->gate_exps_b) for (int i = 0; i < F; i++) g[i] += ly->gate_exps_b[eo + i];
        if (ly->up_exps_b) for (int i = 0; i < F; i++) u[i] += ly->up_exps_b[eo + i];
        if (c->m->swiglu_oai) {
            /* gpt-oss (ggml swiglu_oai): gate clamped above, up both ways */
            for (int i = 0; i < F; i++) {
                float x = fminf(g[i], OAI_LIMIT), y = fminf(fmaxf(u[i], -OAI_LIMIT), OAI_LIMIT);
                g[i] = x / (1.0f + ms_exp_v(OAI_ALPHA * (-x))) * (y + 1.0f);
            }
        } else {
            for (int i = 0; i < F; i++) g[i] = silu(g[i]) * u[i];
        }
        if (j->wtype != MS_TYPE_F32) ms_quantize_act(j->wtype, g, c->hact + (size_t)s * j->sa_h, F);
    }
}

/* Gather converted rows of xn into slot order for one weight type. */
static size_t gather(MsContext *c, int wtype, int T, int n_slots, uint8_t *dst)
{
    const int E = c->m->info.n_embd;
    size_t stride;
    const uint8_t *src;
    if (wtype == MS_TYPE_F32) {
        stride = (size_t)E * sizeof(float);
        src = (const uint8_t *)c->xn;
    } else {
        stride = convert_rows(c, wtype, E, c->xn, E, T, c->act);
        src = c->act;
    }
    for (int s = 0; s < n_slots; s++)
        memcpy(dst + (size_t)s * stride, src + (size_t)c->slot_tok[s] * stride, stride);
    return stride;
}

/* Routed experts (+ shared) over xn -> c->fo. */
static void ffn_moe(MsContext *c, int il, int T)
{
    const MsModel *m = c->m;
    const MsModelInfo *MI = &m->info;
    const MsLayer *ly = &m->layers[il];
    const int E = MI->n_embd, NE = MI->n_expert, F = MI->n_ff_exp;

    mm(c, &ly->gate_inp, c->xn, E, T, c->rlog, NE);
    if (ly->gate_inp_b)
        for (int t = 0; t < T; t++)
            for (int e = 0; e < NE; e++) c->rlog[(size_t)t * NE + e] += ly->gate_inp_b[e];
    MsRouteCfg cfg = { NE, MI->n_expert_used, MI->gating, MI->norm_w, MI->w_scale, ly->exp_probs_b,
                       MI->n_expert_groups, MI->n_group_used };
    const int k = ms_route_k(&cfg, c->iv, il);
    const int32_t *nu = c->rused;   /* experts token t uses: its first nu[t] ids */
    ms_route_used(&cfg, c->iv, il, T, c->rlog, c->rprob, c->rids, c->rw, c->rused);
    bool all_k = true;
    for (int t = 0; t < T; t++) all_k &= nu[t] == k;

    /* Group (token, slot) pairs by expert, like ggml's mul_mat_id; experts
     * ser left out get no slot, so they are never computed. */
    memset(c->ecount, 0, (size_t)NE * sizeof *c->ecount);
    for (int i = 0; i < T * k; i++) {
        int e = c->rids[i];
        if (e < 0 || e >= NE) e = 0;   /* defensive: the router guarantees range */
        c->rids[i] = e;
    }
    for (int t = 0; t < T; t++)
        for (int jj = 0; jj < nu[t]; jj++) c->ecount[c->rids[t * k + jj]]++;
    int off = 0;
    for (int e = 0; e < NE; e++) { c->eoff[e] = off; c->efill[e] = 0; off += c->ecount[e]; }
    const int n_slots = off;
    for (int t = 0; t < T; t++)
        for (int jj = 0; jj < k; jj++) {
            if (jj >= nu[t]) { c->slot_of[t * k + jj] = -1; continue; }
            int e = c->rids[t * k + jj];
            int s = c->eoff[e] + c->efill[e]++;
            c->slot_of[t * k + jj] = s;
            c->slot_tok[s] = t;
            c->slot_exp[s] = e;
        }

    MoeJob mj = { c, ly, 0, row_block(F), row_block(E), 0, 0, 0 };
    if (T == 1) {
        const int nth = ms_tp_n_threads(c->tp);
        mj.blk_ff = decode_block(F, 2 * n_slots, nth);   /* gate and up of each expert */
        mj.blk_e = decode_block(E, n_slots, nth);
    }
    mj.sa_g = gather(c, ly->gate_exps.type, T, n_slots, c->eact);
    mj.sa_u = mj.sa_g;
    if (ly->up_exps.type != ly->gate_exps.type)
        mj.sa_u = gather(c, ly->up_exps.type, T, n_slots, c->eact2);

    /* gate + up */
    int nb_ff = (int)((F + mj.blk_ff - 1) / mj.blk_ff), nb_e = (int)((E + mj.blk_e - 1) / mj.blk_e);
    int nj = 0;
    for (int e = 0; e < NE; e++) {
        if (!c->ecount[e]) continue;
        for (int b = 0; b < nb_ff; b++) {
            c->jobs[nj++] = JOB_GATE | (e << 2) | (b << 14);
            c->jobs[nj++] = JOB_UP | (e << 2) | (b << 14);
        }
    }
    ms_tp_run(c->tp, nj, moe_task, &mj);

    /* silu(gate) * up, converted for the down projection */
    const int dtype = ly->down_exps.type;
    mj.sa_h = dtype == MS_TYPE_F32 ? (size_t)F * sizeof(float) : act_row_bytes(dtype, F);
    ActJob aj = { c, ly, dtype, F, mj.sa_h, n_slots };
    ms_tp_run(c->tp, (n_slots + ACT_SLOTS - 1) / ACT_SLOTS, act_task, &aj);

    nj = 0;
    for (int e = 0; e < NE; e++) {
        if (!c->ecount[e]) continue;
        for (int b = 0; b < nb_e; b++) c->jobs[nj++] = JOB_DOWN | (e << 2) | (b << 14);
    }
    ms_tp_run(c->tp, nj, moe_task, &mj);
    if (ly->down_exps_b)   /* the expert's output bias, before its routing weight */
        for (int s = 0; s < n_slots; s++) {
            float *d = c->D + (size_t)s * E;
            const float *b = ly->down_exps_b + (size_t)c->slot_exp[s] * E;
            for (int i = 0; i < E; i++) d[i] += b[i];
        }

    /* Weighted sum in top-k order; dropped experts (weight 0) add nothing. */
    for (int t = 0; t < T; t++) {
        float *o = c->fo + (size_t)t * E;
        bool first = true;
        for (int jj = 0; jj < nu[t]; jj++) {
            float w = c->rw[t * k + jj];
            if (w == 0.0f) continue;
            const float *d = c->D + (size_t)c->slot_of[t * k + jj] * E;
            if (first) { for (int i = 0; i < E; i++) o[i] = d[i] * w; first = false; }
            else for (int i = 0; i < E; i++) o[i] += d[i] * w;
        }
        if (first) memset(o, 0, (size_t)E * sizeof *o);
    }

    if (c->obs_routing) {
        for (int t = 0; t < T; t++)
            for (int jj = 0; jj < k; jj++) {
                if (jj >= nu[t]) {   /* not computed (ser) */
                    c->smax[t * k + jj] = c->sl2[t * k + jj] = 0.0f;
                    c->sargmax[t * k + jj] = -1;
                    continue;
                }
                const float *d = c->D + (size_t)c->slot_of[t * k + jj] * E;
                float mx = 0.0f;
                int am = 0;
                double ss = 0.0;
                for (int i = 0; i < E; i++) {
                    float a = fabsf(d[i]);
                    if (a > mx) { mx = a; am = i; }
                    ss += (double)d[i] * d[i];
                }
                c->smax[t * k + jj] = mx;
                c->sargmax[t * k + jj] = am;
                c->sl2[t * k + jj] = (float)sqrt(ss);
            }
        MsRoutingEvent ev = { il, T, c->pos, NE, k, c->rids, c->rw, c->rprob, c->rlog, c->smax, c->sl2,
                              c->sargmax, all_k ? NULL : nu };
        c->obs.on_routing(c->obs.user, &ev);
    }

    /* Shared experts: qwen2moe gates them by sigmoid computed as silu(z)/z. */
    if (ly->gate_shexp.data) {
        ffn_dense(c, &ly->gate_shexp, &ly->up_shexp, &ly->down_shexp, T, c->tmp);
        if (ly->gate_inp_shexp.data) {
            mm(c, &ly->gate_inp_shexp, c->xn, E, T, c->zsh, 1);
            for (int t = 0; t < T; t++) {
                float z = c->zsh[t];
                float g = silu(z) / z;
                float *o = c->fo + (size_t)t * E;
                const float *s = c->tmp + (size_t)t * E;
                for (int i = 0; i < E; i++) o[i] += s[i] * g;
            }
        } else {
            for (size_t i = 0; i < (size_t)T * E; i++) c->fo[i] += c->tmp[i];
        }
    }
}

/* ------------------------------------------------------------ one batch */

/* Returns false when the cancel flag stopped it between layers: n_past is
 * then not advanced, so the KV rows this batch wrote are simply overwritten
 * by the next eval. */
static bool run_batch(MsContext *c, const int32_t *tokens, int T, float *logits, bool all_logits, bool want_last)
{
    const MsModel *m = c->m;
    const MsModelInfo *MI = &m->info;
    const int E = MI->n_embd;

    for (int t = 0; t < T; t++) {
        c->pos[t] = c->n_past + t;
        float *x = c->x + (size_t)t * E;
        ms_dequantize_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                          x, E);
        if (m->embd_scale != 1.0f) for (int i = 0; i < E; i++) x[i] *= m->embd_scale;
        if (MI->n_rot > 0) rope_cache(m, c->rope_ff, c->pos[t], c->rope_cs + (size_t)t * MI->n_rot);
    }

    for (int il = 0; il < MI->n_layer; il++) {
        if (ms_cancel_requested(c->cancel)) return false;
        const MsLayer *ly = &m->layers[il];
        for (int t = 0; t < T; t++)
            rmsnorm_b(c->xn + (size_t)t * E, c->x + (size_t)t * E, ly->attn_norm, ly->attn_norm_b, E, MI->rms_eps);
        attention(c, il, T);
        const float rs = m->residual_scale;
        for (size_t i = 0; i < (size_t)T * E; i++) {
            float a = c->tmp[i];
            if (rs != 1.0f) a *= rs;
            c->x[i] += a;
        }
        for (int t = 0; t < T; t++)
            rmsnorm_b(c->xn + (size_t)t * E, c->x + (size_t)t * E, ly->ffn_norm, ly->ffn_norm_b, E, MI->rms_eps);
        if (ly->moe) ffn_moe(c, il, T);
        else ffn_dense(c, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down, T, c->fo);
        for (size_t i = 0; i < (size_t)T * E; i++) {
            float a = c->fo[i];
            if (rs != 1.0f) a *= rs;
            c->x[i] += a;
        }
        if (c->obs_hidden) {
            for (int t = 0; t < T; t++) {
                float mx = 0.0f;
                int am = 0;
                const float *x = c->x + (size_t)t * E;
                for (int i = 0; i < E; i++)
                    if (fabsf(x[i]) > mx) { mx = fabsf(x[i]); am = i; }
                c->hmax[t] = mx;
                c->hargmax[t] = am;
            }
            MsHiddenEvent ev = { il, T, c->pos, c->hmax, c->hargmax };
            c->obs.on_hidden(c->obs.user, &ev);
        }
    }

    if (logits && (all_logits || want_last)) {
        int t0 = all_logits ? 0 : T - 1, nt = all_logits ? T : 1;
        for (int t = t0; t < t0 + nt; t++)
            rmsnorm_b(c->xn + (size_t)t * E, c->x + (size_t)t * E, m->output_norm, m->output_norm_b, E, MI->rms_eps);
        mm(c, &m->output, c->xn + (size_t)t0 * E, E, nt, logits, MI->n_vocab);
        if (m->output_b)
            for (int t = 0; t < nt; t++)
                for (int v = 0; v < MI->n_vocab; v++) logits[(size_t)t * MI->n_vocab + v] += m->output_b[v];
        if (m->logit_scale != 1.0f) {
            const float f = 1.0f / m->logit_scale;
            for (size_t i = 0; i < (size_t)nt * MI->n_vocab; i++) logits[i] *= f;
        }
    }
    c->n_past += T;
    return true;
}

/* ------------------------------------------------------------ context */

MsContextParams ms_context_default_params(void)
{
    MsContextParams p = { 0, 0, 0, MS_KV_F32 };
    return p;
}

static size_t mat_act_bytes(const MsMat *w)
{
    if (!w->data || w->type == MS_TYPE_F32) return 0;
    return act_row_bytes(w->type, w->cols);
}

/* Slot buffers for kcap experts per token (grown by set_intervention). */
static int alloc_slots(MsContext *c, int kcap)
{
    const MsModelInfo *MI = &c->m->info;
    if (MI->n_expert == 0) { c->kcap = kcap; return 0; }
    const size_t B = (size_t)c->n_batch, S = B * (size_t)kcap;
    const size_t E = (size_t)MI->n_embd, F = (size_t)MI->n_ff_exp;
    size_t ea = E * sizeof(float), ha = F * sizeof(float);
    bool need2 = false;
    for (int il = 0; il < MI->n_layer; il++) {
        const MsLayer *ly = &c->m->layers[il];
        if (!ly->moe) continue;
        ea = MS_MAX(ea, mat_act_bytes(&ly->gate_exps));
        ea = MS_MAX(ea, mat_act_bytes(&ly->up_exps));
        ha = MS_MAX(ha, mat_act_bytes(&ly->down_exps));
        if (ly->up_exps.type != ly->gate_exps.type) need2 = true;
    }
    bool ok = true;
    free(c->rids); free(c->rused); free(c->rw); free(c->smax); free(c->sl2); free(c->sargmax); free(c->slot_of);
    free(c->slot_tok); free(c->slot_exp);
    free(c->G); free(c->U); free(c->D); free(c->eact); free(c->eact2); free(c->hact);
    c->rids = xcalloc(B * kcap, sizeof(int32_t), &ok);
    c->rused = xcalloc(B, sizeof(int32_t), &ok);
    c->rw = xcalloc(B * kcap, sizeof(float), &ok);
    c->smax = xcalloc(B * kcap, sizeof(float), &ok);
    c->sl2 = xcalloc(B * kcap, sizeof(float), &ok);
    c->sargmax = xcalloc(B * kcap, sizeof(int32_t), &ok);
    c->slot_of = xcalloc(S, sizeof(int32_t), &ok);
    c->slot_tok = xcalloc(S, sizeof(int32_t), &ok);
    c->slot_exp = xcalloc(S, sizeof(int32_t), &ok);
    c->G = xcalloc(S * F, sizeof(float), &ok);
    c->U = xcalloc(S * F, sizeof(float), &ok);
    c->D = xcalloc(S * E, sizeof(float), &ok);
    c->eact = xcalloc(S, ea, &ok);
    c->eact2 = need2 ? xcalloc(S, ea, &ok) : NULL;
    c->hact = xcalloc(S, ha, &ok);
    c->kcap = kcap;
    return ok ? 0 : MS_ENOMEM;
}

MsContext *ms_context_new(const MsModel *m, const MsContextParams *pp, MsError *err)
{
    if (!m) { ms_error_set(err, MS_EINVAL, "context: no model"); return NULL; }
    MsContextParams p = pp ? *pp : ms_context_default_params();
    const MsModelInfo *MI = &m->info;
    if (p.n_ctx < 0 || p.n_threads < 0 || p.n_batch < 0 || (p.kv_type != MS_KV_F32 && p.kv_type != MS_KV_F16)) {
        ms_error_set(err, MS_EINVAL, "context: invalid parameters (n_ctx %d, n_threads %d, n_batch %d, kv_type %d)",
                     p.n_ctx, p.n_threads, p.n_batch, (int)p.kv_type);
        return NULL;
    }
    if (p.n_ctx == 0) p.n_ctx = MS_MIN(MI->n_ctx_train, 4096);
    if (p.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p.n_threads = n > 0 ? (int)MS_MIN(n, 256) : 1;
    }
    if (p.n_threads > 1024) p.n_threads = 1024;
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;

    MsContext *c = calloc(1, sizeof *c);
    if (!c) { ms_error_set(err, MS_ENOMEM, "context: out of memory"); return NULL; }
    c->m = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->kv_type = p.kv_type;
    /* BLAS calls run inside our workers on disjoint blocks. */
    openblas_set_num_threads(1);
    c->tp = ms_tp_new(p.n_threads, err);
    if (!c->tp) { free(c); return NULL; }

    const size_t B = (size_t)c->n_batch;
    const int H = MI->n_head, HKV = MI->n_head_kv, dk = MI->head_dim_k, dv = MI->head_dim_v;
    const size_t E = (size_t)MI->n_embd;
    const bool ds = MI->arch == MS_ARCH_DEEPSEEK2, mla = MI->mla_absorbed;
    const int kvr = m->kv_lora_rank;
    /* attention geometry (see the struct) */
    if (mla) {
        c->att_dk = MI->n_rot + kvr; c->att_dv = kvr; c->att_hkv = 1; c->v_off = MI->n_rot;
        c->kv_dim_k = c->att_dk; c->kv_dim_v = 0;
    } else {
        c->att_dk = dk; c->att_dv = dv; c->att_hkv = ds ? H : HKV; c->v_off = -1;
        c->kv_dim_k = c->att_hkv * dk; c->kv_dim_v = c->att_hkv * dv;
    }
    /* LongRoPE: llama.cpp takes the long factors only when the context is
     * larger than the original training context */
    c->rope_ff = m->rope_freqs ? m->rope_freqs : !m->rope_short ? NULL
               : c->n_ctx > m->n_ctx_orig ? m->rope_long : m->rope_short;
    const size_t esz = c->kv_type == MS_KV_F16 ? 2 : 4;
    bool ok = true;

    c->kc = xcalloc((size_t)MI->n_layer, sizeof(void *), &ok);
    c->vc = xcalloc((size_t)MI->n_layer, sizeof(void *), &ok);
    for (int il = 0; ok && il < MI->n_layer; il++) {
        c->kc[il] = xcalloc((size_t)c->n_ctx * c->kv_dim_k, esz, &ok);
        c->vc[il] = c->kv_dim_v ? xcalloc((size_t)c->n_ctx * c->kv_dim_v, esz, &ok) : NULL;
    }
    size_t F_dense = 1, max_cols = E;
    size_t abytes = E * sizeof(float);
    for (int il = 0; il < MI->n_layer; il++) {
        const MsLayer *ly = &m->layers[il];
        const MsMat *all[] = { &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wq_a, &ly->wq_b, &ly->wkv_a, &ly->wkv_b,
                               &ly->wqkv, &ly->wk_b, &ly->wv_b,
                               &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down, &ly->gate_inp, &ly->gate_exps,
                               &ly->up_exps, &ly->down_exps, &ly->gate_shexp, &ly->up_shexp, &ly->down_shexp,
                               &ly->gate_inp_shexp };
        for (size_t i = 0; i < MS_ARRAY_LEN(all); i++) {
            abytes = MS_MAX(abytes, mat_act_bytes(all[i]));
            if (all[i]->data) max_cols = MS_MAX(max_cols, (size_t)all[i]->cols);
        }
        if (ly->ffn_gate.data) F_dense = MS_MAX(F_dense, (size_t)ly->ffn_gate.rows);
        if (ly->gate_shexp.data) F_dense = MS_MAX(F_dense, (size_t)ly->gate_shexp.rows);
    }
    abytes = MS_MAX(abytes, mat_act_bytes(&m->output));
    c->act_cap = abytes;
    c->act = xcalloc(B, abytes, &ok);
    c->act2 = xcalloc(B, abytes, &ok);
    c->x = xcalloc(B * E, sizeof(float), &ok);
    c->xn = xcalloc(B * E, sizeof(float), &ok);
    c->tmp = xcalloc(B * E, sizeof(float), &ok);
    c->fo = xcalloc(B * E, sizeof(float), &ok);
    c->q = xcalloc(B * H * dk, sizeof(float), &ok);
    c->k = xcalloc(B * c->kv_dim_k, sizeof(float), &ok);
    c->v = xcalloc(B * c->kv_dim_v, sizeof(float), &ok);
    c->att = xcalloc(B * H * (size_t)c->att_dv, sizeof(float), &ok);
    for (int il = 0; il < MI->n_layer && !c->qkv; il++)
        if (m->layers[il].wqkv.data) c->qkv = xcalloc(B * (size_t)(H * dk + HKV * dk + HKV * dv), sizeof(float), &ok);
    if (mla) {
        c->qm = xcalloc(B * H * (size_t)c->att_dk, sizeof(float), &ok);
        c->attv = xcalloc(B * H * (size_t)dv, sizeof(float), &ok);
    }
    if (ds) {
        c->qa = xcalloc(B * (size_t)MS_MAX(m->q_lora_rank, 1), sizeof(float), &ok);
        c->kva = xcalloc(B * (size_t)(m->kv_lora_rank + MI->n_rot), sizeof(float), &ok);
        c->lat = xcalloc(B * (size_t)m->kv_lora_rank, sizeof(float), &ok);
        if (!mla) c->kvb = xcalloc(B * (size_t)H * (m->n_embd_head_nope + dv), sizeof(float), &ok);
    }
    c->fg = xcalloc(B * F_dense, sizeof(float), &ok);
    c->fu = xcalloc(B * F_dense, sizeof(float), &ok);
    c->zsh = xcalloc(B, sizeof(float), &ok);
    c->rope_cs = xcalloc(B * (size_t)MS_MAX(MI->n_rot, 1), sizeof(float), &ok);
    c->pos = xcalloc(B, sizeof(int32_t), &ok);
    c->hmax = xcalloc(B, sizeof(float), &ok);
    c->hargmax = xcalloc(B, sizeof(int32_t), &ok);
    c->scores_per_thread = (size_t)MS_MIN((int)B, ATT_TBLOCK) * c->n_ctx;
    c->scores = xcalloc((size_t)c->n_threads * c->scores_per_thread, sizeof(float), &ok);
    if (c->kv_type == MS_KV_F16) {
        c->kvf_per_thread = (size_t)c->n_ctx * (c->att_dk + c->att_dv);
        c->kvf = xcalloc((size_t)c->n_threads * c->kvf_per_thread, sizeof(float), &ok);
    }
    if (MI->n_expert > 0) {
        const size_t NE = (size_t)MI->n_expert;
        c->rlog = xcalloc(B * NE, sizeof(float), &ok);
        c->rprob = xcalloc(B * NE, sizeof(float), &ok);
        c->ecount = xcalloc(NE, sizeof(int32_t), &ok);
        c->eoff = xcalloc(NE, sizeof(int32_t), &ok);
        c->efill = xcalloc(NE, sizeof(int32_t), &ok);
        int64_t F = MI->n_ff_exp;
        int nb_ff = (int)((F + row_block(F) - 1) / row_block(F));
        int nb_e = (int)(((int64_t)E + row_block((int64_t)E) - 1) / row_block((int64_t)E));
        c->jobs_cap = (int)NE * MS_MAX(2 * nb_ff, nb_e);
        c->jobs = xcalloc((size_t)c->jobs_cap, sizeof(int), &ok);
        if (NE > 0xfff || MS_MAX(nb_ff, nb_e) > (1 << 16)) {
            ms_context_free(c);
            ms_error_set(err, MS_EUNSUPPORTED, "context: %d experts is more than this engine handles (4095)",
                         MI->n_expert);
            return NULL;
        }
    }
    if (!ok || alloc_slots(c, MS_MAX(MI->n_expert_used, 1)) != 0) {
        ms_context_free(c);
        ms_error_set(err, MS_ENOMEM, "context: out of memory (n_ctx %d, n_batch %d)", p.n_ctx, p.n_batch);
        return NULL;
    }
    (void)max_cols;
    return c;
}

void ms_context_free(MsContext *c)
{
    if (!c) return;
    ms_tp_free(c->tp);
    if (c->kc) for (int il = 0; il < c->m->info.n_layer; il++) free(c->kc[il]);
    if (c->vc) for (int il = 0; il < c->m->info.n_layer; il++) free(c->vc[il]);
    free(c->kc); free(c->vc);
    void *bufs[] = { c->x, c->xn, c->q, c->k, c->v, c->att, c->tmp, c->fo, c->qa, c->kva, c->lat, c->kvb,
                     c->qkv, c->qm, c->attv,
                     c->fg, c->fu, c->zsh, c->rope_cs, c->pos, c->hmax, c->hargmax, c->act, c->act2, c->scores, c->kvf,
                     c->rlog, c->rprob, c->rw, c->rids, c->rused, c->smax, c->sl2, c->sargmax, c->ecount, c->eoff, c->efill,
                     c->slot_of, c->slot_tok, c->slot_exp, c->G, c->U, c->D, c->eact, c->eact2, c->hact, c->jobs };
    for (size_t i = 0; i < MS_ARRAY_LEN(bufs); i++) free(bufs[i]);
    ms_intervention_free(c->iv);
    free(c);
}

void ms_context_reset(MsContext *c) { if (c) c->n_past = 0; }

int ms_context_truncate(MsContext *c, int n)
{
    /* KV rows past n_past are never read and the next eval overwrites them */
    if (!c || n < 0 || n > c->n_past) return MS_EINVAL;
    c->n_past = n;
    return 0;
}
int ms_context_n_past(const MsContext *c) { return c ? c->n_past : 0; }
int ms_context_n_ctx(const MsContext *c) { return c ? c->n_ctx : 0; }

void ms_context_set_observer(MsContext *c, const MsObserver *obs)
{
    if (!c) return;
    if (obs) c->obs = *obs;
    else memset(&c->obs, 0, sizeof c->obs);
    c->obs_routing = obs && obs->on_routing;
    c->obs_hidden = obs && obs->on_hidden;
}

void ms_context_set_cancel(MsContext *c, const MsCancel *flag)
{
    if (c) c->cancel = flag;
}

int ms_context_set_intervention(MsContext *c, const MsIntervention *iv, MsError *err)
{
    if (!c) return ms_error_set(err, MS_EINVAL, "context: NULL");
    const MsModelInfo *MI = &c->m->info;
    MsIntervention *cp = NULL;
    if (iv && !ms_intervention_is_empty(iv)) {
        if (MI->n_expert == 0)
            return ms_error_set(err, MS_EINVAL, "intervention: model has no experts");
        int rc = ms_intervention_validate(iv, MI->n_layer, MI->n_expert, MI->n_expert_used, err);
        if (rc) return rc;
        cp = ms_intervention_copy(iv);
        if (!cp) return ms_error_set(err, MS_ENOMEM, "intervention: out of memory");
        MsRouteCfg cfg = { MI->n_expert, MI->n_expert_used, MI->gating, MI->norm_w, MI->w_scale, NULL,
                           MI->n_expert_groups, MI->n_group_used };
        int kmax = MI->n_expert_used;
        for (int il = 0; il < MI->n_layer; il++) kmax = MS_MAX(kmax, ms_route_k(&cfg, cp, il));
        int old = c->kcap;
        if (kmax > c->kcap && alloc_slots(c, kmax) != 0) {
            ms_intervention_free(cp);
            alloc_slots(c, old);   /* best effort back to the old size */
            return ms_error_set(err, MS_ENOMEM, "intervention: out of memory for top-k %d", kmax);
        }
    }
    ms_intervention_free(c->iv);
    c->iv = cp;
    return 0;
}

int ms_context_eval(MsContext *c, const int32_t *tokens, int n, float *logits, bool all_logits, MsError *err)
{
    if (!c) return ms_error_set(err, MS_EINVAL, "eval: no context");
    if (n < 0 || (n > 0 && !tokens)) return ms_error_set(err, MS_EINVAL, "eval: bad token array (n = %d)", n);
    if (n == 0) return 0;
    const MsModelInfo *MI = &c->m->info;
    if ((int64_t)c->n_past + n > c->n_ctx)
        return ms_error_set(err, MS_ERANGE, "eval: context full: %d past + %d new tokens > n_ctx %d",
                            c->n_past, n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= MI->n_vocab)
            return ms_error_set(err, MS_ERANGE, "eval: token %d (index %d) outside the vocabulary (%d)",
                                (int)tokens[i], i, MI->n_vocab);
    if (c->kcap < 1 || (MI->n_expert > 0 && !c->G))
        return ms_error_set(err, MS_ENOMEM, "eval: context buffers missing (earlier allocation failure)");
    for (int i0 = 0; i0 < n; i0 += c->n_batch) {
        int T = MS_MIN(c->n_batch, n - i0);
        bool last = i0 + T == n;
        float *out = logits ? (all_logits ? logits + (size_t)i0 * MI->n_vocab : logits) : NULL;
        if (!run_batch(c, tokens + i0, T, out, all_logits, last))
            return ms_error_set(err, MS_ECANCELLED, "eval: cancelled after %d of %d tokens", i0, n);
    }
    return 0;
}
