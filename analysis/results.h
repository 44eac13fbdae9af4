/* results.h — the typed results of the nine analysis modules, the options
 * that shape them, the pure steps that turn the accumulators of analysis.h
 * into those results (rankings, selections, plans, pairings, pathway
 * strings) and the result tables each result is written as.
 *
 * Library: libmsanalysis (analysis/), the pure half.  This header and its
 * sources may include the C library, engine/ms-common.h, engine/engine.h
 * (intervention sets for the steering plans) and analysis.h — never
 * sqlite3.h, jansson.h or anything of db/.  Reading a trace and writing the
 * tables is the glue library's job (analysis/db/run.h); turning a result
 * into the JSON the command prints is analysis/db/result-json.h.
 *
 * Conventions for every result:
 *  - one malloc'd struct that owns all its arrays and strings; release it
 *    with its *_free (accepts NULL);
 *  - `layer`, `from`, `to` fields are decoder-block indices (the model's own
 *    numbering, METHODS §0.1), never dense slot numbers;
 *  - per-expert arrays have head.n_expert entries, E×E matrices are
 *    row-major; every array is given with its length;
 *  - NaN means "undefined" (a zero denominator, no data); the JSON forms
 *    write it as null and the result tables as NULL. */
#ifndef MS_ANALYSIS_RESULTS_H
#define MS_ANALYSIS_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "analysis.h"
#include "ms-common.h"

#define MS_AN_MAX_LIST 64

/* ------------------------------------------------------------- options */

typedef struct {
    int64_t run_id;          /* 0 = the newest run */
    int layer;               /* block index, -1 = every MoE layer */
    bool write;              /* write result tables (default true) */
    const char *role;        /* token scope: "all" | "prompt" | "generated"; NULL = module default */

    /* affinity */
    int distance;            /* d >= 1 (MoE layers), default 1 */
    const char *variant;     /* "topk" (default) | "top1" | "weighted": extra matrices in the doc */
    int top;                 /* top transitions per pair (default 10) / npmi plan size (default 2); 0 = default */

    /* consistency */
    int segments[MS_AN_MAX_LIST], n_segments;   /* default 4,16,64,256 */
    int cache[MS_AN_MAX_LIST * 4], n_cache;     /* layer cache sizes C, default 1..E */
    bool cold;               /* SCH cold start (default warm, the reference) */

    /* superexperts */
    double include_frac;     /* default 0.75 */
    MsSeRule se_rule;

    /* npmi */
    const char *by;          /* "token" | "text" | "label:NAME" | "pos:B" (default "text") */
    int min_support;         /* rows with n_xy >= this (default 5) */
    int max_classes;         /* --by token: most frequent token ids kept (default 512) */
    const char *plan_class;  /* write a steering plan for this class */
    double beta;             /* plan: boost = bias ln(beta); <= 0 = suppress (silence) */

    /* riskdiff */
    const char *label;       /* prompt label key that splits the two sets */
    const char *set1, *set2; /* its values (set 1 = behaviour to promote) */
    int n_pos, n_neg;        /* experts to activate / deactivate */
    bool reverse;

    /* crosslingual */
    const char *lang_key, *pair_key, *ref_lang;
    double tau;              /* Δ threshold (default 0.3) */
    int mid_lo, mid_hi;      /* middle layer range (block indices), -1 = middle half */
    bool cl_hard;            /* plan operator: hard (raise to max, METHODS §9.3 eq. 5) instead of soft */
    double cl_lambda;        /* soft operator: logit += lambda · std (default 0.5) */

    /* pathways */
    double path_tau;         /* default 0.7 */
    bool token_level;        /* edit distance granularity (default char) */
    int n_pairs;             /* sampled pairs when there are more (default 2000) */
    uint64_t seed;
    bool sparse_weights;     /* use top-k combine weights instead of probs */

    const char *plan_out;    /* write the intervention set text here too */

    /* long work (engine/ms-common.h): progress reports on the calling
     * thread and a cancel flag any thread may set; NULL = none */
    MsProgressFn progress;
    void *progress_user;
    const MsCancel *cancel;
} MsAnOptions;

void ms_an_options_default(MsAnOptions *o);

/* ------------------------------------------------------ common pieces */

typedef enum {
    MS_AN_LOAD = 0, MS_AN_COACTIVATION, MS_AN_AFFINITY, MS_AN_CONSISTENCY, MS_AN_SUPEREXPERTS,
    MS_AN_NPMI, MS_AN_RISKDIFF, MS_AN_CROSSLINGUAL, MS_AN_PATHWAYS,
    MS_AN_N_MODULES
} MsAnModule;

/* "load", "coactivation", ... (static); NULL for an unknown value. */
const char *ms_an_module_name(MsAnModule m);
/* Module of a name, or MS_ENOTFOUND. */
int ms_an_module_from_name(const char *name);

typedef enum { MS_AN_ROLE_ALL = 0, MS_AN_ROLE_PROMPT, MS_AN_ROLE_GENERATED } MsAnRole;
const char *ms_an_role_name(MsAnRole r);                  /* "all" | "prompt" | "generated" */
/* NULL gives dflt; anything but the three names is MS_EINVAL with a message. */
int ms_an_role_parse(const char *s, MsAnRole dflt, MsAnRole *out, MsError *err);

/* What every result starts with: the run and the model's shape. */
typedef struct {
    int64_t run_id;
    int layer;               /* the --layer filter (block index), -1 = every MoE layer */
    int n_layer;             /* decoder blocks of the model */
    int n_expert;            /* routed experts E: the length of every per-expert array */
} MsAnHead;

/* ----------------------------------------------------------- §1 load */

typedef struct {
    int layer;
    int64_t n_tokens, n_selections;
    int64_t *counts;                 /* c_e */
    double *share;                   /* f_e = c_e / Σc */
    double *coverage;                /* share of the 1, 2, … most-loaded experts */
    double entropy, entropy_norm, exp_entropy, kl_uniform, gini, cv, max_over_mean, maxvio;
    int n_dead, n_cold;
    int *dead, *cold;                /* expert ids: c_e = 0; r_e < 0.1·k/E */
    double jaccard_adjacent;         /* NaN without adjacent pairs */
    /* router probabilities (n_prob_tokens > 0; else NaN and NULL) */
    int64_t n_prob_tokens;
    double token_entropy_mean, token_entropy_std, top1_margin_mean, importance_cv2, laux;
    double *pbar, *importance;
} MsLoadLayer;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    int n_layers;
    MsLoadLayer *layers;
} MsLoadResult;

void ms_load_result_free(MsLoadResult *r);
/* From one accumulator per MoE layer (layers[i] its block). NULL = no memory. */
MsLoadResult *ms_load_result_build(const MsAnHead *h, MsAnRole role, MsLoadAcc *const *acc,
                                   const int *layers, int n);

/* --------------------------------------------------- §1.1 coactivation */

typedef struct {
    int layer;
    int64_t n_tokens;
    int64_t *N;                      /* E×E joint counts, diagonal c_i */
    double *coact, *jaccard, *lift;  /* E×E */
} MsCoactLayer;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    int n_layers;
    MsCoactLayer *layers;
} MsCoactivationResult;

void ms_coactivation_result_free(MsCoactivationResult *r);
MsCoactivationResult *ms_coactivation_result_build(const MsAnHead *h, MsAnRole role, MsCoactAcc *const *acc,
                                                   const int *layers, int n);

/* -------------------------------------------------------- §2 affinity */

typedef struct { int i, j; double C, P, Q, lift; } MsAffPath;

typedef struct {
    int from, to;
    int64_t n_tokens;
    double *C, *P, *Q, *lift;        /* E×E, top-k membership (P rows sum to k, Q rows to 1) */
    double *n;                       /* n_i = c_{from,i} */
    double concentration, concentration_top1, nmi_top1;
    /* the --variant's matrices (top1 or weighted); NULL for topk */
    double *var_C, *var_Q;
    double var_concentration;
    int n_top;
    MsAffPath *top;                  /* the largest transitions (C > 0), C descending */
} MsAffPair;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    int distance;
    MsAffVariant variant;
    int n_pairs;
    MsAffPair *pairs;
} MsAffinityResult;

void ms_affinity_result_free(MsAffinityResult *r);
/* acc[i] covers the block pair (from[i], to[i]); top = transitions kept. */
MsAffinityResult *ms_affinity_result_build(const MsAnHead *h, MsAnRole role, int distance, MsAffVariant v,
                                           int top, MsAffAcc *const *acc, const int *from, const int *to,
                                           int n);
const char *ms_aff_variant_name(MsAffVariant v);   /* "topk" | "top1" | "weighted" */

/* ----------------------------------------------------- §3 consistency */

typedef struct {
    int layer;
    double *srp, *rho_hat, *act_r;   /* n_m: pooled over the layer's experts (NaN: no windows) */
    double *sch;                     /* n_m × n_c: mean per-sequence hit rate (NaN: no sequence) */
    double *expert_srp, *expert_rho, *expert_act_r;   /* n_m × E */
} MsConsLayer;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    bool cold;                       /* SCH cold start */
    int n_m, *m;                     /* window lengths */
    int n_c, *C;                     /* layer cache sizes (model level: C × MoE layers) */
    int n_layers;
    MsConsLayer *layers;
    bool has_model;                  /* model level (only without --layer) */
    double *model_srp, *model_rho_hat;   /* n_m */
    double *model_sch;                   /* n_m × n_c */
} MsConsistencyResult;

void ms_consistency_result_free(MsConsistencyResult *r);

/* The consistency accumulator: one sequence (prompt) at a time, all MoE
 * slots, slots lo..hi−1 studied; model = also the model level.  The layer
 * part and the model part own disjoint state, so one thread may feed
 * MS_CONS_LAYERS (worker 0) while another feeds MS_CONS_MODEL (worker 1). */
typedef struct MsConsAcc MsConsAcc;
enum { MS_CONS_LAYERS = 1, MS_CONS_MODEL = 2 };
MsConsAcc *ms_cons_acc_new(int n_slot, int n_expert, int k, int lo, int hi, const int *m, int n_m,
                           const int *C, int n_c, bool cold, bool model);
void ms_cons_acc_free(MsConsAcc *a);
/* ids: T × n_slot × k (−1 padded, rank order), n: T × n_slot counts.
 * MS_ECANCELLED once the flag of ms_cons_acc_set_cancel is set (polled
 * between the simulations of a sequence). */
int ms_cons_acc_add_seq(MsConsAcc *a, unsigned parts, int worker, const int32_t *ids, const int *n, int T);
void ms_cons_acc_set_cancel(MsConsAcc *a, const MsCancel *cancel);
/* slot_layer: block of each slot. NULL = no memory. */
MsConsistencyResult *ms_cons_acc_result(const MsConsAcc *a, const MsAnHead *h, MsAnRole role,
                                        const int *slot_layer);

/* --------------------------------------------------- §4 super experts */

typedef struct {
    int rank, layer, expert;
    double value;                    /* a_{l,e} */
    int64_t n_routed;
    int prompt, pos;                 /* prompt index and position of the maximum */
    int channel;                     /* output channel of the maximum, −1 = not stored */
} MsSuperExpert;

typedef struct {
    int layer;
    double max, mean_token_max, ratio;
    int prompt, pos, channel;        /* where the max is (channel −1 = not stored) */
} MsMassiveAct;

typedef struct {
    MsAnHead head;
    MsSeRule rule;
    double include_frac;
    MsSeInfo info;                   /* P99.5, ⌊max/10⌋, threshold, layer cut, candidates */
    int n_se;
    MsSuperExpert *se;               /* ranked by value */
    int n_slots;
    int *slot_layer;                 /* the MoE blocks: rows of a and is_se */
    double *a;                       /* n_slots × E (0 = never routed) */
    bool *is_se;                     /* n_slots × E */
    int n_massive;
    MsMassiveAct *massive;           /* blocks with residual stats */
} MsSuperExpertsResult;

void ms_superexperts_result_free(MsSuperExpertsResult *r);
const char *ms_se_rule_name(MsSeRule r);   /* "paper" | "p99.5" | "mean+3sd" | "50xmean" */
/* From the per-candidate maxima (n_slots × E: value, tokens routed, prompt
 * index and position of the maximum; pos −1 = none).  Channels are left
 * −1 for the caller.  MS_EINVAL on bad options, MS_ENOMEM. */
int ms_superexperts_result_build(const MsAnHead *h, MsSeRule rule, double include_frac, const double *a,
                                 const int64_t *n_routed, const int *prompt, const int *pos,
                                 const int *slot_layer, int n_slots, MsSuperExpertsResult **out, MsError *err);
/* The massive-activation profile from per-block max, sum and count of the
 * token residual max (blocks with count 0 are left out). */
int ms_superexperts_set_massive(MsSuperExpertsResult *r, const double *hmax, const double *hsum,
                                const int64_t *hn, const int *prompt, const int *pos, const int *channel,
                                int n_layer);

/* --------------------------------------------------------------- §5 nPMI */

typedef enum { MS_NPMI_BY_TEXT = 0, MS_NPMI_BY_TOKEN, MS_NPMI_BY_LABEL, MS_NPMI_BY_POS } MsNpmiBy;
enum { MS_NPMI_POS_BUCKETS = 64 };

/* Parses --by: kind, the label name (borrowed from by) and the bucket. */
int ms_npmi_parse_by(const char *by, MsNpmiBy *kind, const char **label, int *bucket, MsError *err);
/* Token-text class of a piece: 0 empty, 1 whitespace, 2 digit, 3 punct,
 * 4 word, 5 other (docs/analysis.md); names from ms_text_class_name. */
int ms_text_class(const char *piece, size_t len);
const char *ms_text_class_name(int c);
enum { MS_TEXT_CLASSES = 6 };

/* A class list: names (owned) and the map from token id / prompt to class. */
typedef struct {
    int n;
    char **names;
    int32_t *of_token;   /* --by token: id → class (−1), n_tokens entries */
    int32_t n_tokens;
    int *of_prompt;      /* --by label: prompt → class (−1) */
} MsNpmiClasses;
void ms_npmi_classes_clear(MsNpmiClasses *c);
/* The fixed lists of --by text and --by pos:B. */
int ms_npmi_classes_text(MsNpmiClasses *c);
int ms_npmi_classes_pos(MsNpmiClasses *c, int bucket);
/* --by token: the max_classes most frequent ids (count[id], ids 0..n−1;
 * ties to the lower id). */
int ms_npmi_classes_token(MsNpmiClasses *c, const int64_t *count, int32_t n, int max_classes);
/* --by label: the distinct non-empty values in prompt order. */
int ms_npmi_classes_label(MsNpmiClasses *c, const char *const *value, int n_prompt);

typedef struct {
    int layer, expert, cls;          /* cls: index into classes */
    double npmi;
    int64_t count, n_x, n_y, N;
} MsNpmiRow;

typedef struct { int layer, expert; double npmi; } MsNpmiPick;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    bool role_fallback;              /* default scope, run without generated tokens: all */
    char *by;                        /* as given ("text" by default) */
    MsNpmiBy kind;
    int min_support, max_classes;
    int n_classes;
    char **classes;
    int64_t n_rows;
    MsNpmiRow *rows;                 /* grouped by class; nPMI desc, n_xy desc, layer, expert */
    /* --plan CLASS */
    char *plan_class;                /* NULL = no plan asked */
    double beta;                     /* > 0: boost by ln beta, else silence */
    int n_plan;
    MsNpmiPick *plan_experts;
    char *plan;                      /* intervention set text ("" when no expert qualifies) */
} MsNpmiResult;

void ms_npmi_result_free(MsNpmiResult *r);
/* Rows and plan from the counts (acc layer i = block layers[i]); takes the
 * class names of cls.  MS_ENOTFOUND when o->plan_class is not a class. */
int ms_npmi_result_build(const MsAnHead *h, const MsAnOptions *o, MsAnRole role, bool role_fallback,
                         const MsNpmiAcc *acc, const int *layers, int n_layers, MsNpmiClasses *cls,
                         MsNpmiResult **out, MsError *err);

/* --------------------------------------------------- §6 risk difference */

/* Per-set activation counts: a[set][slot][e], N1, N2 (tokens). */
typedef struct {
    int n_slot, n_expert;
    int64_t *a1, *a2;
    int64_t n1, n2;
} MsRdCounts;
MsRdCounts *ms_rd_counts_new(int n_slot, int n_expert);
void ms_rd_counts_free(MsRdCounts *c);
/* One token of set 1 or 2: ids of every slot (stride k), n[slot] counts. */
void ms_rd_counts_add(MsRdCounts *c, int set, const int32_t *ids, const int *n, int k);

typedef struct { int layer, expert; double rd; int64_t a1, a2; } MsRdRow;

typedef struct {
    MsAnHead head;
    MsAnRole role;
    bool role_fallback;
    char *label, *set1, *set2;
    int n_activate, n_deactivate;    /* as asked */
    bool reverse;
    int64_t n1, n2;
    int n_rows;
    MsRdRow *rows;                   /* |RD| descending (stable), RD ≠ 0 */
    int n_act, n_deact;
    MsRdPick *activate, *deactivate; /* .layer is a block index here */
    char *plan;                      /* NULL when nothing is selected */
} MsRiskDiffResult;

void ms_riskdiff_result_free(MsRiskDiffResult *r);
/* Slots lo..hi−1 are studied; k caps activations per layer; n_layer
 * blocks for the plan.  MS_ENOTFOUND when a set has no tokens. */
int ms_riskdiff_result_build(const MsAnHead *h, const MsAnOptions *o, MsAnRole role, bool role_fallback,
                             const MsRdCounts *c, const int *slot_layer, int lo, int hi, int k,
                             MsRiskDiffResult **out, MsError *err);

/* ------------------------------------ per-prompt mean routing (§9, §10) */

/* Mean router distribution per prompt and MoE slot (q_i of §9.1, ḡ of
 * §10.1) and relative activation frequency a_i/L_i (§9.2), [prompt][slot][E];
 * nq / nf: tokens behind each. */
typedef struct {
    int n_prompt, n_slot, n_expert;
    bool sparse;                     /* q from top-k combine weights (else from probabilities) */
    double *q, *freq;
    int64_t *nq, *nf;
} MsPromptMeans;
MsPromptMeans *ms_prompt_means_new(int n_prompt, int n_slot, int n_expert, bool sparse);
void ms_prompt_means_free(MsPromptMeans *pm);
/* One token of prompt p: every slot's ids (stride k), weights w (same
 * layout, used when sparse), counts n. */
void ms_prompt_means_add_token(MsPromptMeans *pm, int p, const int32_t *ids, const float *w, const int *n,
                               int k);
/* One stored router distribution (E values) of prompt p at a slot. */
void ms_prompt_means_add_probs(MsPromptMeans *pm, int p, int slot, const float *probs);
/* Sums to means (once, after the last add). */
void ms_prompt_means_finish(MsPromptMeans *pm);

/* ------------------------------------------------------ §9 crosslingual */

typedef struct {
    int layer;
    double *div;                     /* per language: mean D_HJS to the reference (NaN: ref, no pairs) */
    double *entropy;                 /* per language: mean routing entropy */
    int64_t *n_pairs;                /* per language: translation pairs behind div */
} MsClLayer;

typedef struct { int layer, lang; double div; int64_t n_pairs; } MsClRow;
typedef struct { int layer, expert; double delta; } MsClSteer;

typedef struct {
    MsAnHead head;
    char *lang_key, *pair_key, *ref_lang;
    double tau, lambda;
    bool hard, sparse_weights;
    int n_languages;
    char **languages;                /* in first-seen prompt order */
    int ref;                         /* index of the reference language */
    int n_layers;
    MsClLayer *layers;
    int n_rows;
    MsClRow *rows;                   /* (layer, language with pairs) */
    int mid_lo, mid_hi;              /* middle blocks searched for the steer set */
    int n_steer;
    MsClSteer *steer;                /* Δ = freq_ref − freq_lang > τ */
    char *plan;                      /* NULL when no expert is chosen */
} MsCrosslingualResult;

void ms_crosslingual_result_free(MsCrosslingualResult *r);
/* lang / pair: each prompt's label values ("" = absent).  Slots lo..hi−1
 * are reported; slot_layer over all n_slot slots.  MS_ENOTFOUND when no
 * prompt has the reference language. */
int ms_crosslingual_result_build(const MsAnHead *h, const MsAnOptions *o, const MsPromptMeans *pm,
                                 const char *const *lang, const char *const *pair, const int *slot_layer,
                                 int lo, int hi, MsCrosslingualResult **out, MsError *err);

/* ---------------------------------------------------------- §10 pathways */

typedef struct {
    int prompt;                      /* prompt index */
    char *pathway;                   /* "3,1-0,2-…" */
    int length;                      /* symbols compared (chars, or ids and separators) */
    int *lens;                       /* experts per layer (n_layers) */
    int *experts;                    /* the layers' lists, concatenated */
} MsPathSample;

typedef struct {
    MsAnHead head;
    double tau;
    bool token_level, sparse_weights;
    int max_pairs;                   /* --pairs */
    uint64_t seed;
    int n_samples;
    MsPathSample *samples;           /* prompts with a distribution at every layer studied */
    int64_t n_pairs;
    double mean_distance;
    int n_layers;
    int *layers;
    double *layer_mean_distance;
} MsPathwaysResult;

void ms_pathways_result_free(MsPathwaysResult *r);
/* Slots lo..hi−1; cancel polled between pairs (MS_ECANCELLED). */
int ms_pathways_result_build(const MsAnHead *h, const MsAnOptions *o, const MsPromptMeans *pm,
                             const int *slot_layer, int lo, int hi, MsPathwaysResult **out, MsError *err);

/* ------------------------------------------------------- any result */

typedef struct {
    MsAnModule module;
    union {
        void *any;
        MsLoadResult *load;
        MsCoactivationResult *coactivation;
        MsAffinityResult *affinity;
        MsConsistencyResult *consistency;
        MsSuperExpertsResult *superexperts;
        MsNpmiResult *npmi;
        MsRiskDiffResult *riskdiff;
        MsCrosslingualResult *crosslingual;
        MsPathwaysResult *pathways;
    };
} MsAnResult;

/* Frees the result it holds and zeroes r (accepts NULL and zeroed). */
void ms_an_result_clear(MsAnResult *r);
const MsAnHead *ms_an_result_head(const MsAnResult *r);   /* NULL when empty */
/* The steering plan (intervention set text) or NULL. */
const char *ms_an_result_plan(const MsAnResult *r);

/* ------------------------------------------------------ result tables */

typedef enum { MS_AN_NULL = 0, MS_AN_INT = 1, MS_AN_REAL = 2, MS_AN_TEXT = 3 } MsAnCellType;
typedef struct {
    MsAnCellType type;
    int64_t i;
    double r;                        /* a non-finite REAL is written as NULL */
    const char *s;                   /* borrowed from the result (or static) */
} MsAnCell;

/* One result table as typed rows generated on demand (bounded memory).
 * Columns are the table's after its leading run_id.  A column's SQL type
 * is the type of its first non-NULL cell, a non-finite REAL counting as
 * NULL (REAL when all are NULL). */
typedef struct {
    char name[48];                   /* "an_load", "an_load_experts", ... */
    int n_cols;
    const char *const *cols;
    int64_t n_rows;
    const void *src;
    void (*row)(const void *src, int64_t i, MsAnCell *out);   /* fills n_cols cells */
} MsAnTable;

enum { MS_AN_MAX_TABLES = 4 };
/* The tables of a result in the order they are written: the module's
 * extra tables, its plan table (when there is a plan), its main table
 * an_<module> last — the rows `moescope analyze` displays.  Returns the
 * count (0 for an empty result).  Tables without rows are not written. */
int ms_an_result_tables(const MsAnResult *r, MsAnTable t[MS_AN_MAX_TABLES]);
/* Cells of row i into out (t->n_cols entries). */
static inline void ms_an_table_row(const MsAnTable *t, int64_t i, MsAnCell *out) { t->row(t->src, i, out); }
/* SQL type of column c as described above. */
MsAnCellType ms_an_table_col_type(const MsAnTable *t, int c);

#endif
