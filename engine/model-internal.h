/* model-internal.h — private to model.c / forward.c / threadpool.c: the
 * loaded model's layout and the worker pool.  Not an interface for others. */
#ifndef MS_MODEL_INTERNAL_H
#define MS_MODEL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "gguf.h"
#include "quant.h"
#include "tokenizer.h"

/* ---- worker pool (threadpool.c) ----
 * ms_tp_run runs fn(ctx, task, thread) for task in [0, n_tasks) on the
 * caller plus n-1 workers; tasks are claimed dynamically, so fn must make
 * each task's result independent of which thread runs it (determinism). */
typedef struct MsThreadPool MsThreadPool;
typedef void (*MsTaskFn)(void *ctx, int task, int thread);

MsThreadPool *ms_tp_new(int n_threads, MsError *err);
void ms_tp_free(MsThreadPool *tp);            /* accepts NULL; joins workers */
int ms_tp_n_threads(const MsThreadPool *tp);
void ms_tp_run(MsThreadPool *tp, int n_tasks, MsTaskFn fn, void *ctx);

/* ---- weights ---- */

/* A 2-D weight matrix [rows][cols] (GGUF ne0 = cols) in the mapping.  For
 * 3-D expert tensors, `stride` is the byte distance between experts. */
typedef struct {
    const void *data;   /* NULL = absent */
    int type;
    int64_t cols, rows;
    size_t row_bytes;
    size_t stride;
} MsMat;

typedef struct {
    const float *attn_norm, *ffn_norm;
    const float *attn_norm_b, *ffn_norm_b;  /* phimoe: RMS norm then + bias */
    /* standard attention */
    MsMat wq, wk, wv, wo;
    MsMat wqkv;                            /* fused q|k|v rows (phi3 style), else absent */
    const float *bq, *bk, *bv, *bo, *bqkv;
    const float *q_norm, *k_norm;          /* olmoe: over the whole width; qwen3moe: per head */
    bool qk_norm_head;                     /* q_norm / k_norm have head_dim entries, applied per head */
    const float *sinks;                    /* gpt-oss: [n_head] sink logits, or NULL */
    bool swa;                              /* this block uses the sliding window */
    /* deepseek2 MLA: decompressed form (wkv_b) or absorbed (wk_b, wv_b) */
    MsMat wq_a, wq_b, wkv_a, wkv_b;
    MsMat wk_b, wv_b;                      /* [head] x (kv_lora_rank x nope) / (v_dim x kv_lora_rank) */
    const float *q_a_norm, *kv_a_norm;
    /* FFN */
    bool moe;
    MsMat ffn_gate, ffn_up, ffn_down;      /* dense */
    MsMat gate_inp;                        /* router [E][n_embd] */
    const float *gate_inp_b;               /* gpt-oss: router logit bias [E] or NULL */
    const float *exp_probs_b;              /* [E] or NULL */
    MsMat gate_exps, up_exps, down_exps;   /* rows per expert; stride set */
    const float *gate_exps_b, *up_exps_b;  /* gpt-oss: [E][n_ff_exp] or NULL */
    const float *down_exps_b;              /* gpt-oss: [E][n_embd] or NULL */
    MsMat gate_shexp, up_shexp, down_shexp;
    MsMat gate_inp_shexp;                  /* qwen2moe: 1 row */
    int n_ff;                              /* dense width of this layer */
} MsLayer;

struct MsModel {
    MsGguf *gguf;
    MsTokenizer *tok;
    MsModelInfo info;
    char *name;
    MsLayer *layers;
    MsMat tok_embd, output;
    const float *output_norm, *output_norm_b, *output_b;
    /* derived hyper-parameters */
    int q_lora_rank, kv_lora_rank;         /* deepseek2 */
    int n_embd_head_nope;                  /* deepseek2: head_dim_k - n_rot */
    float kq_scale;
    bool q_prescale;                       /* phimoe: q *= kq_scale before the product, which then uses 1 */
    bool swiglu_oai;                       /* gpt-oss: clamped SwiGLU (alpha 1.702, limit 7) */
    float embd_scale, residual_scale, logit_scale; /* granite (1 = none) */
    /* RoPE (YaRN) */
    float rope_freq_scale, rope_ext_factor, rope_attn_factor;
    float rope_corr_lo, rope_corr_hi;
    int n_ctx_orig;                        /* rope.scaling.original_context_length (LongRoPE switch) */
    /* per-pair frequency factors [n_rot/2]: rope_freqs (always), or LongRoPE's
     * short / long pair chosen by the context size as llama.cpp does */
    const float *rope_freqs, *rope_short, *rope_long;
    /* owned dequantised 1-D vectors */
    float **owned;
    int n_owned, cap_owned;
};

#endif
