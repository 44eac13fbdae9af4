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
    MS_ARCH_QWEN3MOE, MS_ARCH_GPTOSS, MS_ARCH_PHIMOE,
    MS_ARCH_COUNT
} MsArch;

/* The router's score function.  SOFTMAX: probs = softmax over all experts;
 * SIGMOID: per expert.  SOFTMAX_TOPK (gpt-oss, llama.cpp's
 * "softmax_weight"): there are no probabilities over all experts — the
 * router selects by the (biased) logits themselves, which are what `probs`
 * then holds, and the k weights are the softmax over the k selected logits. */
typedef enum { MS_GATING_SOFTMAX = 1, MS_GATING_SIGMOID = 2, MS_GATING_SOFTMAX_TOPK = 3 } MsGating;
/* "softmax", "sigmoid", "softmax_topk" (static string; "unknown" otherwise). */
const char *ms_gating_name(MsGating g);

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
    int n_expert_groups;       /* group-limited routing: E experts in this many groups (1 = none) */
    int n_group_used;          /* ... of which the best this many may supply experts */
    bool router_bias;          /* gpt-oss: the router adds a bias to its logits */
    int n_swa;                 /* sliding-window width in tokens (0 = none) */
    int n_swa_layers;          /* blocks that use it (gpt-oss: the even ones) */
    bool attn_sinks;           /* gpt-oss: one learned sink logit per head */
    bool mla_absorbed;         /* deepseek2: attn_k_b / attn_v_b (head_dim_k/v are then the MLA sizes) */
    int kv_lora_rank;          /* deepseek2 latent width (0 otherwise) */
    bool rope_factors;         /* per-pair RoPE frequency factors (LongRoPE or rope_freqs) */
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
 * and the tokenizer.  Weights stay in the read-only mapping or, when they fit
 * in memory, a private copy of it (MS_WEIGHTS_AUTO, below). */
MsModel *ms_model_load(const char *path, MsError *err);
/* The same, with where the weights live chosen (gguf.h MsWeights;
 * ms_model_load is MS_WEIGHTS_AUTO).  The copy is made after every check
 * passed, so a bad file fails before any of it is read.  Hugging Face
 * checkpoints stay as they are loaded (ms_gguf_set_weights is a no-op). */
MsModel *ms_model_load_ex(const char *path, MsWeights weights, MsError *err);
void ms_model_free(MsModel *m);                     /* accepts NULL */
const MsModelInfo *ms_model_info(const MsModel *m); /* borrowed, lives with m */
const MsTokenizer *ms_model_tokenizer(const MsModel *m); /* borrowed */
const MsGguf *ms_model_gguf(const MsModel *m);      /* borrowed */
bool ms_model_layer_is_moe(const MsModel *m, int layer);
/* Count of tensors of each type, for `info`: fills counts[MS_TYPE_COUNT]. */
void ms_model_type_histogram(const MsModel *m, int64_t *counts);
/* Bytes of weight matrices one decoded token reads: every matrix in full,
 * except the token embedding (one row) and the routed experts (n_expert_used
 * of each MoE layer's experts, as selected by default; the tied output
 * matrix counts in full).  Norm and bias vectors and the KV cache are left
 * out (small next to the matrices).  Decode is bound by reading these
 * bytes, so bytes x tokens/s is the bandwidth decode achieves. */
uint64_t ms_model_decode_weight_bytes(const MsModel *m);

/* --------------------------------------------------------------- observer */

/* One MoE layer over one batch of tokens.  All arrays are borrowed for the
 * duration of the callback only. */
typedef struct {
    int layer;                 /* block index */
    int n_tokens;              /* tokens in this batch */
    const int32_t *pos;        /* [n_tokens] 0-based positions in the sequence */
    int n_expert;              /* routed experts E */
    int k;                     /* experts selected per token at this layer (after overrides) */
    const int32_t *experts;    /* [n_tokens][k] selected ids, ranked (descending selection score);
                                * a token's n_used experts first, then the ones ser left out */
    const float *weights;      /* [n_tokens][k] gate weight actually applied (0 for dropped experts
                                * and for those beyond n_used) */
    const float *probs;        /* [n_tokens][E] router probabilities (score function of those logits) */
    const float *logits;       /* [n_tokens][E] router logits as used (raw + any steering bias) */
    const float *out_maxabs;   /* [n_tokens][k] max |x| of each selected expert's down-projection output */
    const float *out_l2;       /* [n_tokens][k] L2 norm of the same */
    const int32_t *out_argmax; /* [n_tokens][k] channel where that max |x| is (first one on ties) */
    /* [n_tokens] experts each token actually used (computed), 1..k: fewer
     * than k only under the ser operator, which lists the ones it left out
     * after them (weight 0, out_maxabs and out_l2 0, out_argmax -1).  NULL
     * when every token of the batch used all k. */
    const int32_t *n_used;
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

/* An intervention set: operators on the router of each MoE layer, for a
 * model of a given shape.  Plain data, owned by whoever made it; the context
 * takes a copy (ms_context_set_intervention), so a set may be edited and
 * applied again between evals.  Functions taking a set accept NULL (reads
 * see an empty set, writes return MS_EINVAL) unless said otherwise. */
typedef struct MsIntervention MsIntervention;

/* An empty set for a model of n_layer blocks and n_expert routed experts
 * (both 1..65536; NULL otherwise or when out of memory).  Caller owns. */
MsIntervention *ms_intervention_new(int n_layer, int n_expert);
void ms_intervention_free(MsIntervention *iv);   /* accepts NULL */
MsIntervention *ms_intervention_copy(const MsIntervention *iv); /* caller owns; NULL for NULL */
void ms_intervention_clear(MsIntervention *iv);
bool ms_intervention_is_empty(const MsIntervention *iv);
int ms_intervention_n_layer(const MsIntervention *iv);   /* shape it was made for (0 for NULL) */
int ms_intervention_n_expert(const MsIntervention *iv);
/* Same shape and the same operators everywhere (values compared as floats,
 * so -0 equals 0; a raise/lower margin or a ser threshold only where that
 * operator is set).  Two NULLs are equal; NULL and a set are not. */
bool ms_intervention_equal(const MsIntervention *a, const MsIntervention *b);

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
 *       guaranteed a slot (METHODS §6.5 would move the selection score); nor
 *       under group-limited routing, where its group must still be chosen.
 * With group-limited routing (n_expert_groups > 1) silenced experts leave
 * their group's score, forced experts take their slot whatever their group,
 * and when the chosen groups hold too few unsilenced experts for the slots
 * (silence, a top-k override) the next best groups are opened (route.h).
 * top_k: override k for one layer (layer >= 0) or all (layer = -1); 1..E.
 * ser (threshold routing, "smart expert reduction"): per token, of the k
 *       selected experts keep the first kmin in rank order, and each further
 *       one only where its score is >= t × the best score among the k.  The
 *       score is the router probability (softmax), or the sigmoid output for
 *       sigmoid gating; a selection-only bias is not part of it.  Forced
 *       experts are always kept.  The others are not computed: they are
 *       listed after the kept ones with weight 0, and the observer reports
 *       how many each token used (MsRoutingEvent.n_used).  The kept weights
 *       follow the model's rule: with norm_w they are renormalised among the
 *       kept (as llama.cpp-style reduction does, so the layer's output keeps
 *       its scale), otherwise left as the score function gave them; then
 *       w_scale, drop and scale as for any expert.  t = 0 is plain top-k;
 *       t = 1 keeps exactly kmin (more only on exact ties with the best).
 *       1 <= kmin <= k (k after any top-k override), 0 <= t <= 1.
 * bias, scale, steer_std, raise/lower, top_k and ser replace any earlier
 * value (bias 0, scale 1, steer_std 0, and ser kmin 0 remove them; a top-k
 * override or raise/lower is removed with ms_intervention_set_layer /
 * ms_intervention_set or ms_intervention_clear_expert).
 * Setters return MS_ERANGE for a bad layer/expert/k/kmin and MS_EINVAL
 * (leaving the set unchanged) for a non-finite value (or d < 0, or t outside
 * [0, 1]) or a set that breaks a layer's rule: an expert both forced (or
 * raised) and silenced, every expert silenced, or, where a top-k override is
 * set, more forced than k, fewer than k unsilenced, or ser kmin above k.
 * raise and lower replace each other. */
int ms_intervention_silence(MsIntervention *iv, int layer, int expert);
int ms_intervention_drop(MsIntervention *iv, int layer, int expert);
int ms_intervention_force(MsIntervention *iv, int layer, int expert);
int ms_intervention_bias(MsIntervention *iv, int layer, int expert, float delta);
int ms_intervention_scale(MsIntervention *iv, int layer, int expert, float f);
int ms_intervention_steer_std(MsIntervention *iv, int layer, int expert, float lambda);
int ms_intervention_raise(MsIntervention *iv, int layer, int expert, float d);
int ms_intervention_lower(MsIntervention *iv, int layer, int expert, float d);
int ms_intervention_top_k(MsIntervention *iv, int layer, int k);
/* ser for one layer (layer >= 0) or all (layer = -1); kmin 0 removes it. */
int ms_intervention_ser(MsIntervention *iv, int layer, int kmin, float t);

/* ---- operator by operator (inspection and editing, e.g. a GUI grid) ---- */

/* Raise/lower of one expert's logit. */
typedef enum { MS_ASSIGN_LOWER = -1, MS_ASSIGN_NONE = 0, MS_ASSIGN_RAISE = 1 } MsLogitAssign;

/* Every operator of one expert at one layer, as a plain value (a copy: it
 * refers to nothing in the set).  Neutral values mean "not set":
 * MS_EXPERT_OPS_NONE is the expert with no operator. */
typedef struct {
    bool silence, drop, force;
    float bias;            /* steer: logit delta, 0 = none */
    float scale;           /* applied-weight factor, 1 = none */
    float steer_std;       /* steer-std lambda, 0 = none */
    MsLogitAssign assign;  /* raise / lower / none */
    float margin;          /* raise/lower margin d >= 0; 0 and ignored without assign */
} MsExpertOps;
#define MS_EXPERT_OPS_NONE ((MsExpertOps){ .scale = 1.0f })

/* The operators of one layer as a whole. */
typedef struct {
    int top_k;             /* k override, 0 = none (the model's k) */
    int ser_kmin;          /* ser: experts always kept, 0 = no ser */
    float ser_t;           /* ser threshold in [0, 1]; 0 and ignored without ser */
} MsLayerOps;

/* Read one expert's operators into *out (MS_EXPERT_OPS_NONE when nothing is
 * set).  Returns 0, MS_ERANGE for a bad layer/expert, MS_EINVAL for NULLs. */
int ms_intervention_get(const MsIntervention *iv, int layer, int expert, MsExpertOps *out);
/* Replace every operator of one expert with *ops, all or nothing: the value
 * rules of the setters above (finite values, margin >= 0, assign one of the
 * three) and the layer's rule.  On error the set is unchanged, err names the
 * layer, the expert and the problem; MS_ERANGE for a bad layer/expert,
 * MS_EINVAL otherwise.  Passing MS_EXPERT_OPS_NONE equals clear_expert. */
int ms_intervention_set(MsIntervention *iv, int layer, int expert, const MsExpertOps *ops, MsError *err);
/* Remove every operator of one expert (always allowed).  0 or MS_ERANGE. */
int ms_intervention_clear_expert(MsIntervention *iv, int layer, int expert);
/* k override at layer (0 = none, and for a NULL set or a bad layer). */
int ms_intervention_top_k_get(const MsIntervention *iv, int layer);
/* A layer's own operators: read, and replace all or nothing (top_k 0 and
 * ser_kmin 0 remove them; top_k in 1..E, ser as ms_intervention_ser, and the
 * layer's rule with the new k).  Errors as ms_intervention_set. */
int ms_intervention_get_layer(const MsIntervention *iv, int layer, MsLayerOps *out);
int ms_intervention_set_layer(MsIntervention *iv, int layer, const MsLayerOps *ops, MsError *err);

/* What is set, in order of layer, then expert: for each layer, first its own
 * entry (expert = -1, `layer` valid) when it has a top-k override or ser,
 * then one entry per expert with any operator (`ops` valid).  The entry is
 * borrowed for the call.  fn returns 0 to go on; any other value stops the
 * walk and is returned.  Returns 0 at the end, MS_EINVAL for NULL iv/fn. */
typedef struct {
    int layer;
    int expert;            /* routed expert, or -1 for the layer's own entry */
    MsExpertOps ops;       /* expert >= 0 */
    MsLayerOps lops;       /* expert == -1 */
} MsInterventionEntry;
typedef int (*MsInterventionVisitFn)(void *user, const MsInterventionEntry *entry);
int ms_intervention_list(const MsIntervention *iv, MsInterventionVisitFn fn, void *user);

/* ---- text form (docs/interventions.md) ---- */

/* Parse a CLI spec and apply it.  kind: "silence" "drop" "force" "steer"
 * (L:E:DELTA) "scale" (L:E:F) "steer-std" (L:E:LAMBDA) "raise" / "lower"
 * (L:E, margin 0.01, or L:E:D) "top-k" (K or L:K) "ser" (KMIN:T or
 * L:KMIN:T).  L and E take comma lists, ranges a-b and '*'.  All or nothing;
 * errors are one line "--KIND SPEC: problem". */
int ms_intervention_parse(MsIntervention *iv, const char *kind, const char *spec, MsError *err);
/* Canonical text form (e.g. "silence 3:5; steer 0-2:7:+1.5"), one line,
 * malloc'd (caller frees); "" for an empty set, NULL when out of memory.
 * ms_intervention_parse_text reads it back to an equal set. */
char *ms_intervention_to_string(const MsIntervention *iv);
/* Parse the text form above back, applied on top of iv, all or nothing:
 * clauses "KIND SPEC [SPEC...]" separated by ';' or line ends, '#' starts a
 * comment to the end of its line, blank clauses are skipped.  Errors are
 * "KIND SPEC: problem", preceded by "line N: " when the text has several
 * lines.  Text that is not valid UTF-8, in a comment too, is refused. */
int ms_intervention_parse_text(MsIntervention *iv, const char *text, MsError *err);
/* The same from a file (a plan written by an analysis, a saved set): errors
 * are "PATH:LINE: problem" (or "PATH: problem" for I/O, a NUL byte or a file
 * over 16 MiB). */
int ms_intervention_load(MsIntervention *iv, const char *path, MsError *err);
/* Check a set against a model before use: same n_layer/n_expert, and at every
 * layer (k = override or k_default) forced experts <= k <= unsilenced experts
 * and ser kmin <= k.  The setters can only check this against overrides,
 * since the set does not know the model's k; ms_context_set_intervention
 * calls this. */
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
