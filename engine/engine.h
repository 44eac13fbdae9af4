/* engine.h — MoE models on CPU: load (validated), run (batched prefill with a
 * KV cache, single-token decode), observe routing, intervene in the router.
 *
 * Threading: an MsContext is used by one caller thread at a time; it owns a
 * worker pool of n_threads.  An MsModel is immutable after load and may be
 * shared by several contexts. */
#ifndef MS_ENGINE_H
#define MS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "ms-common.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------ model */

typedef enum {
    MS_ARCH_OLMOE, MS_ARCH_QWEN2MOE, MS_ARCH_LLAMA, MS_ARCH_GRANITEMOE, MS_ARCH_DEEPSEEK2,
    MS_ARCH_COUNT
} MsArch;

typedef enum { MS_GATING_SOFTMAX = 1, MS_GATING_SIGMOID = 2 } MsGating;

/* Public description of a loaded model (read-only; owned by the model). */
typedef struct {
    MsArch arch;
    const char *arch_name;     /* general.architecture */
    const char *name;          /* general.name or "" */
    int n_vocab, n_ctx_train, n_embd, n_layer;
    int n_head, n_head_kv, head_dim_k, head_dim_v, n_rot;
    int n_expert, n_expert_used, n_expert_shared; /* routed / selected / shared (count of shared FFNs, 0 or more) */
    int n_ff_exp, n_ff_shexp, n_ff_dense;         /* expert, shared-expert and dense FFN widths (0 if absent) */
    int n_layer_dense_lead;    /* leading dense blocks (deepseek2) */
    MsGating gating;
    bool norm_w;               /* top-k weights renormalised */
    float w_scale;             /* expert_weights_scale (1 if none) */
    bool shexp_gated;          /* qwen2moe: shared expert scaled by sigmoid(w.x) */
    float rope_base;
    bool rope_neox;
    float rms_eps;
    uint64_t file_size;
    int weight_type;           /* most common weight type among 2-D+ tensors (MS_TYPE_*) */
} MsModelInfo;

typedef struct MsModel MsModel;

/* Load and validate: the GGUF container, the architecture (unsupported ones
 * are named in the error), every required key and tensor, tensor types
 * (unsupported weight types named) and shapes against the hyper-parameters,
 * and the tokenizer.  Weights stay in the read-only mapping. */
MsModel *ms_model_load(const char *path, MsError *err);
void ms_model_free(MsModel *m);                     /* accepts NULL */
const MsModelInfo *ms_model_info(const MsModel *m); /* borrowed, lives with m */
const MsTokenizer *ms_model_tokenizer(const MsModel *m); /* borrowed */
const MsGguf *ms_model_gguf(const MsModel *m);      /* borrowed */
bool ms_model_layer_is_moe(const MsModel *m, int layer);
/* Count of tensors of each type, for `info`: fills counts[MS_TYPE_COUNT]. */
void ms_model_type_histogram(const MsModel *m, int64_t *counts);

/* --------------------------------------------------------------- observer */

/* One MoE layer over one batch of tokens.  All arrays are borrowed for the
 * duration of the callback only. */
typedef struct {
    int layer;                 /* block index */
    int n_tokens;              /* tokens in this batch */
    const int32_t *pos;        /* [n_tokens] 0-based positions in the sequence */
    int n_expert;              /* routed experts E */
    int k;                     /* experts selected per token at this layer (after overrides) */
    const int32_t *experts;    /* [n_tokens][k] selected ids, ranked (descending selection score) */
    const float *weights;      /* [n_tokens][k] gate weight actually applied (0 for dropped experts) */
    const float *probs;        /* [n_tokens][E] router probabilities (score function of those logits) */
    const float *logits;       /* [n_tokens][E] router logits as used (raw + any steering bias) */
    const float *out_maxabs;   /* [n_tokens][k] max |x| of each selected expert's down-projection output */
    const float *out_l2;       /* [n_tokens][k] L2 norm of the same */
    const int32_t *out_argmax; /* [n_tokens][k] channel where that max |x| is (first one on ties) */
} MsRoutingEvent;

/* Residual stream after a block (every block, dense ones too). */
typedef struct {
    int layer;
    int n_tokens;
    const int32_t *pos;
    const float *maxabs;       /* [n_tokens] max |h| of the residual stream after this block */
    const int32_t *argmax;     /* [n_tokens] channel where that max |h| is (first one on ties) */
} MsHiddenEvent;

/* Callbacks may be NULL.  They run on the caller's thread, between the
 * engine's parallel sections; they must not call back into the context. */
typedef struct {
    void (*on_routing)(void *user, const MsRoutingEvent *ev);
    void (*on_hidden)(void *user, const MsHiddenEvent *ev);
    void *user;
} MsObserver;

/* ----------------------------------------------------------- interventions */

typedef struct MsIntervention MsIntervention;

/* An empty set for a model of n_layer blocks and n_expert routed experts. */
MsIntervention *ms_intervention_new(int n_layer, int n_expert);
void ms_intervention_free(MsIntervention *iv);   /* accepts NULL */
MsIntervention *ms_intervention_copy(const MsIntervention *iv);
void ms_intervention_clear(MsIntervention *iv);
bool ms_intervention_is_empty(const MsIntervention *iv);

/* silence: excluded before top-k (the next expert takes the slot).
 * drop: selected as usual, its contribution removed (weight 0, no refill).
 * force: always in the top-k (forced experts take the first slots in rank order).
 * bias: add delta to the router logit before selection (weights follow the
 *       biased logits through the score function).
 * scale: multiply the applied gate weight by f after normalisation/scaling.
 * steer_std: add lambda · s(z) to the logit, s(z) = population standard
 *       deviation of the token's E unmodified router logits (METHODS §9.3
 *       soft operator; lambda < 0 suppresses).
 * raise: set the logit to max(z) + d, lower: to min(z) − d, over the token's
 *       unmodified logits (SteerMoE activation / deactivation, METHODS §6.3,
 *       d = 0.01 there; raise with d = 0 is the hard operator of §9.3).  The
 *       weights follow the new logits through the score function.  With a
 *       selection-only bias (deepseek2 exp_probs_b) the order of selection
 *       scores can differ from the logits', so a raised expert is then not
 *       guaranteed a slot (METHODS §6.5 would move the selection score).
 * top_k: override k for one layer (layer >= 0) or all (layer = -1); 1..E.
 * bias, scale, steer_std, raise/lower and top_k replace any earlier value
 * (0 / 1 / 0 / - / 0 remove them).
 * Setters return MS_ERANGE for a bad layer/expert/k and MS_EINVAL (leaving the
 * set unchanged) for a non-finite value (or d < 0) or a set that breaks a
 * layer's rule: an expert both forced (or raised) and silenced, every expert
 * silenced, or, where a top-k override is set, more forced than k or fewer
 * than k unsilenced.  raise and lower replace each other. */
int ms_intervention_silence(MsIntervention *iv, int layer, int expert);
int ms_intervention_drop(MsIntervention *iv, int layer, int expert);
int ms_intervention_force(MsIntervention *iv, int layer, int expert);
int ms_intervention_bias(MsIntervention *iv, int layer, int expert, float delta);
int ms_intervention_scale(MsIntervention *iv, int layer, int expert, float f);
int ms_intervention_steer_std(MsIntervention *iv, int layer, int expert, float lambda);
int ms_intervention_raise(MsIntervention *iv, int layer, int expert, float d);
int ms_intervention_lower(MsIntervention *iv, int layer, int expert, float d);
int ms_intervention_top_k(MsIntervention *iv, int layer, int k);

/* Parse a CLI spec and apply it.  kind: "silence" "drop" "force" "steer"
 * (L:E:DELTA) "scale" (L:E:F) "steer-std" (L:E:LAMBDA) "raise" / "lower"
 * (L:E, margin 0.01, or L:E:D) "top-k" (K or L:K).  L and E take comma lists,
 * ranges a-b and '*'.  Errors name the spec and the problem. */
int ms_intervention_parse(MsIntervention *iv, const char *kind, const char *spec, MsError *err);
/* Canonical one-line text form (e.g. "silence 3:5; steer 0-2:7:+1.5"), malloc'd. */
char *ms_intervention_to_string(const MsIntervention *iv);
/* Parse the text form above back (clauses "KIND SPEC [SPEC...]" separated by
 * ';' or line ends; blank clauses are skipped); applied on top of iv, all or
 * nothing. */
int ms_intervention_parse_text(MsIntervention *iv, const char *text, MsError *err);
/* Check a set against a model before use: same n_layer/n_expert, and at every
 * layer (k = override or k_default) forced experts <= k <= unsilenced experts.
 * The setters can only check this against overrides, since the set does not
 * know the model's k; ms_context_set_intervention should call this. */
int ms_intervention_validate(const MsIntervention *iv, int n_layer, int n_expert, int k_default,
                             MsError *err);

/* ---------------------------------------------------------------- context */

typedef enum { MS_KV_F32 = 0, MS_KV_F16 = 1 } MsKvType;

typedef struct {
    int n_ctx;        /* KV capacity in tokens; 0 = min(n_ctx_train, 4096) */
    int n_threads;    /* 0 = number of online CPUs */
    int n_batch;      /* max tokens per internal micro-batch; 0 = 512 */
    MsKvType kv_type; /* default F32, as the references */
} MsContextParams;

typedef struct MsContext MsContext;

MsContextParams ms_context_default_params(void);
MsContext *ms_context_new(const MsModel *m, const MsContextParams *p, MsError *err);
void ms_context_free(MsContext *c);                 /* accepts NULL */
void ms_context_reset(MsContext *c);                /* empty the KV cache */
/* Forget every position >= n (0 <= n <= n_past): the next eval continues at
 * n, as if only the first n tokens had been evaluated.  MS_EINVAL otherwise. */
int ms_context_truncate(MsContext *c, int n);
int ms_context_n_past(const MsContext *c);
int ms_context_n_ctx(const MsContext *c);
/* Observer is copied; pass NULL to detach.  No observer = no cost. */
void ms_context_set_observer(MsContext *c, const MsObserver *obs);
/* The set is copied; changes take effect at the next eval.  NULL = none. */
int ms_context_set_intervention(MsContext *c, const MsIntervention *iv, MsError *err);

/* A flag another thread may set to stop a running ms_context_eval between
 * layers (borrowed: it must outlive its use; NULL = none).  The stopped eval
 * returns MS_ECANCELLED with n_past at the last whole micro-batch: tokens
 * after it are not in the KV cache, and observer events already delivered
 * for the unfinished micro-batch describe work that did not complete (a
 * trace writer drops that prompt).  ms_context_reset makes it reusable. */
void ms_context_set_cancel(MsContext *c, const MsCancel *flag);

/* Append n tokens at positions n_past..n_past+n-1 and run them (split into
 * micro-batches of n_batch).  logits: NULL, or [n][n_vocab] when all_logits,
 * or [n_vocab] for the last token only.  Returns 0 or MS_E* (e.g. MS_ERANGE
 * when the context is full or a token id is outside the vocabulary). */
int ms_context_eval(MsContext *c, const int32_t *tokens, int n, float *logits,
                    bool all_logits, MsError *err);

/* ---------------------------------------------------------------- sampling */

typedef struct MsSampler MsSampler;
/* temp <= 0: greedy (argmax, lowest id on ties).  Otherwise softmax(logits/temp),
 * nucleus top_p (1 = off), drawn from a xoshiro256** stream seeded by seed. */
MsSampler *ms_sampler_new(float temp, float top_p, uint64_t seed);
void ms_sampler_free(MsSampler *s);                 /* accepts NULL */
int32_t ms_sampler_sample(MsSampler *s, const float *logits, int n_vocab);

/* log-softmax helpers on one logits row: log p(id) and entropy (nats). */
float ms_logprob(const float *logits, int n_vocab, int32_t id);
float ms_entropy(const float *logits, int n_vocab);

#endif
