/* analysis.h — the routing studies of ../shared/METHODS.md as plain C over
 * arrays (no database, no GTK).  Every module is an accumulator fed one token
 * (or one sequence) at a time, so traces of any length stream through in
 * bounded memory; the db-facing drivers (analysis/db/run.h) only read chunks
 * and call these.
 *
 * Library: libmsanalysis (analysis/), the pure half: this header may include
 * the C library and engine/ms-common.h only; the sources add BLAS.  Never
 * sqlite3, jansson or db/.  The typed results built from these accumulators
 * are in results.h.
 *
 * Conventions (METHODS.md §0.3): natural logs, population standard
 * deviations, ties broken by the lower index, a ratio with a zero
 * denominator is NaN.  Expert ids are routed-expert indices 0..E-1; negative
 * ids in a selection are ignored (capacity drops / padding).
 * Handles are opaque, *_free accepts NULL, results returned through pointers
 * stay owned by the handle unless a comment says otherwise. */
#ifndef MS_ANALYSIS_H
#define MS_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "ms-common.h"

#define MS_ANALYSIS_VERSION "1"

/* ------------------------------------------------------------ §1 load */

typedef struct {
    int n_expert, k;
    int64_t n_tokens;        /* M: tokens counted */
    int64_t n_selections;    /* Σ_e c_e (= k·M when every set is full) */
    const int64_t *counts;   /* c_e, E entries */
    const double *share;     /* f_e = c_e / Σc */
    const double *coverage;  /* coverage[i]: load share of the i+1 most-loaded experts */
    double mean, std, cv, max_over_mean, maxvio;
    double entropy, entropy_norm, exp_entropy, kl_uniform, gini;
    int n_dead;              /* c_e = 0 */
    int n_cold;              /* r_e < 0.1·k/E (METHODS §1.1 "rare") */
    double jaccard_mean;     /* adjacent-token Jaccard inside sequences; NaN if no pairs */
    int64_t n_jaccard_pairs;
    /* from full probabilities, when fed (n_prob_tokens > 0), else NaN/NULL */
    int64_t n_prob_tokens;
    const double *pbar;      /* P̄_e */
    const double *importance;/* I_e */
    double laux;             /* E·Σ r_e·P̄_e with r_e = c_e/M (balanced = k) */
    double importance_cv2;   /* CV(I)² */
    double token_entropy_mean, token_entropy_std;
    double top1_margin_mean; /* p_(1) − p_(2) */
} MsLoadStats;

typedef struct MsLoadAcc MsLoadAcc;

MsLoadAcc *ms_load_acc_new(int n_expert, int k);
void ms_load_acc_free(MsLoadAcc *a);
/* Marks a sequence boundary (adjacent Jaccard never crosses it). */
void ms_load_acc_begin_seq(MsLoadAcc *a);
/* One token's selection (n ids, any order). MS_ERANGE on an id >= E. */
int ms_load_acc_add(MsLoadAcc *a, const int32_t *ids, int n);
/* One token's full router distribution (E values). The token must also be
 * fed through ms_load_acc_add for L_aux to be meaningful. */
int ms_load_acc_add_probs(MsLoadAcc *a, const float *p);
/* Computes the statistics; pointers in *out stay valid until the next call
 * on a or its free. */
void ms_load_acc_stats(MsLoadAcc *a, MsLoadStats *out);

/* The router's distribution over all E experts from one stored `probs` row
 * (docs/schema.md), by the model's score_func: "softmax" — as stored;
 * "sigmoid" — the scores divided by their sum; "softmax_topk" (gpt-oss),
 * whose stored `probs` are the biased router logits — the softmax of those
 * logits (renormalised over the chosen k it gives exactly the applied
 * weights).  Anything else is taken as stored.  Returns p or out (E floats). */
const float *ms_router_distribution(const char *score_func, const float *p, int E, float *out);

/* Statistics of a bare count vector (the same formulas as above). */
double ms_gini(const int64_t *c, int n);
/* Per-token routing entropy −Σ p ln p (0·ln0 = 0). */
double ms_entropy_d(const double *p, int n);
/* ST-MoE z-loss term (logsumexp z)². */
double ms_zloss_term(const float *z, int n);

/* ------------------------------------------------------ §1 coactivation */

typedef struct MsCoactAcc MsCoactAcc;

/* N = AᵀA accumulated through cblas_ssyrk on chunks of multi-hot rows. */
MsCoactAcc *ms_coact_acc_new(int n_expert);
void ms_coact_acc_free(MsCoactAcc *a);
int ms_coact_acc_add(MsCoactAcc *a, const int32_t *ids, int n);
/* Joint counts N (E×E row-major, diagonal = c_i) and n_tokens; the
 * normalised forms: coact[i][j] = N_ij/N_i (diag 0, NaN row if N_i = 0),
 * jaccard[i][j] = N_ij/(N_i+N_j−N_ij), lift[i][j] = N_ij·M/(N_i·N_j).
 * Any output pointer may be NULL; arrays have E·E entries, caller-owned. */
void ms_coact_acc_result(MsCoactAcc *a, int64_t *N, double *coact, double *jaccard,
                         double *lift, int64_t *n_tokens);

/* ------------------------------------------------------ §2 affinity */

typedef struct MsAffAcc MsAffAcc;

/* One layer pair (l, l+d).  Top-k membership counts are a cblas_sgemm
 * X_lᵀ X_{l+d} per chunk; the top-1 (ExFlow-exact) and weighted variants are
 * accumulated alongside. */
MsAffAcc *ms_aff_acc_new(int n_expert);
void ms_aff_acc_free(MsAffAcc *a);
/* ids in router rank order (first = top-1); w may be NULL (weighted = 0). */
int ms_aff_acc_add(MsAffAcc *a, const int32_t *ids_from, const float *w_from, int n_from,
                   const int32_t *ids_to, const float *w_to, int n_to);

typedef enum { MS_AFF_TOPK = 0, MS_AFF_TOP1 = 1, MS_AFF_WEIGHTED = 2 } MsAffVariant;

typedef struct {
    int n_expert;
    int64_t n_tokens;
    const double *C;   /* E×E counts (weighted sums for MS_AFF_WEIGHTED) */
    const double *n;   /* n_i: tokens with i at `from` (top-k: c_{l,i}; top-1: row sums) */
    const double *P;   /* C/n_i (top-k membership, rows sum to k); = Q for top-1/weighted */
    const double *Q;   /* row-normalised C/Σ_j C */
    const double *lift;/* Q[i,j]/q_to(j) */
    double concentration; /* Σ π_i max_j Q[i,j] */
    double nmi;        /* top-1 only: I(e_l; e_l+d)/H(e_l+d), else NaN */
} MsAffResult;

/* Result for one variant; pointers valid until the next call / free. */
void ms_aff_acc_result(MsAffAcc *a, MsAffVariant v, MsAffResult *out);

/* ExFlow placement cost (§2.1) of one token path of L layers: place[l*E+e]
 * is the GPU id; returns cost and adds crossings. */
int ms_placement_cost(const int32_t *path, int L, int E, const int32_t *place,
                      int gpus_per_node, int *cross_gpu, int *cross_node);

/* ------------------------------------------------------ §3 consistency */

/* Adds one sequence's window histograms for window length m: act lists, per
 * token t (T tokens), the n[t] selected ids at ids[t*stride ..]; hist has
 * E·(m+1) entries (expert-major).  Sequences with T < m add nothing. */
int ms_srp_hist_add(int64_t *hist, int E, int m, const int32_t *ids, const int *n,
                    int stride, int T);

typedef struct { double srp; int alpha; double rho; double act_r; int64_t A, windows; } MsSrp;

/* SRP from a histogram h[0..m] (one expert, or summed over a group). */
MsSrp ms_srp_from_hist(const int64_t *h, int m);

/* SCH simulation of one sequence (METHODS §3.2 exact semantics).  ids: T×k
 * ranked ids (row stride k, negative = absent), universe U ids 0..U−1,
 * look-ahead m, cache C; cold = textbook cold start.  Returns hits (≥ 0) and
 * the number of requests in *requests; negative MS_E* on bad input. */
typedef struct MsSchSim MsSchSim;
MsSchSim *ms_sch_sim_new(int universe);
void ms_sch_sim_free(MsSchSim *s);
int64_t ms_sch_sim_run(MsSchSim *s, const int32_t *ids, int T, int k, int m, int C,
                       bool cold, int64_t *requests);

/* ------------------------------------------------------ §4 super experts */

typedef enum {
    MS_SE_PAPER = 0,   /* > P99.5 and > floor(max/10) (reference code, default) */
    MS_SE_P995 = 1,    /* > P99.5 only */
    MS_SE_MEAN3SD = 2, /* > mean + 3σ */
    MS_SE_MEAN50 = 3,  /* > 50 × mean */
} MsSeRule;

/* numpy.percentile (linear interpolation) of n values; x is not modified. */
double ms_percentile(const double *x, int n, double q);
/* Python round(): half to even. */
long ms_round_half_even(double x);

typedef struct {
    double p995, max_div10, threshold, mean, std, max;
    int n_candidates, layer_cut;
} MsSeInfo;

/* values[i] = a_{layer[i], expert[i]} for n candidates (expert −1 = shared).
 * Candidates with layer >= layer_cut are excluded (layer_cut =
 * round_half_even(include_frac·n_layers)).  is_se[i] receives the verdict
 * (excluded candidates get false).  Returns the number of SEs. */
int ms_superexperts(const double *values, const int *layer, int n, int n_layers,
                    double include_frac, MsSeRule rule, bool *is_se, MsSeInfo *info);

/* ------------------------------------------------------ §5 nPMI, §6 RD */

/* nPMI with METHODS §5.1 edge cases: n_xy = 0 → −1, n_xy = N → 1,
 * n_x = 0 or n_y = 0 → NaN.  Base-invariant (computed in log2). */
double ms_npmi(int64_t n_xy, int64_t n_x, int64_t n_y, int64_t N);

typedef struct MsNpmiAcc MsNpmiAcc;
/* Counts per MoE layer slot (0..n_layer−1), class (0..n_class−1), expert. */
MsNpmiAcc *ms_npmi_acc_new(int n_layer, int n_expert, int n_class);
void ms_npmi_acc_free(MsNpmiAcc *a);
/* One token position of one layer: the token's classes (any number, may be
 * 0) and its selection. */
int ms_npmi_acc_add(MsNpmiAcc *a, int layer, const int *classes, int n_classes,
                    const int32_t *ids, int n);
int64_t ms_npmi_acc_N(const MsNpmiAcc *a, int layer);
int64_t ms_npmi_acc_nx(const MsNpmiAcc *a, int layer, int cls);
int64_t ms_npmi_acc_ny(const MsNpmiAcc *a, int layer, int expert);
int64_t ms_npmi_acc_nxy(const MsNpmiAcc *a, int layer, int cls, int expert);

/* SteerMoE risk difference a1/N1 − a2/N2 (NaN when a set is empty). */
double ms_risk_diff(int64_t a1, int64_t n1, int64_t a2, int64_t n2);

typedef struct { int layer, expert; double rd; } MsRdPick;
/* From rd[l*E+e] (L layers): order by |RD| desc (stable), flip the sign when
 * reverse, take the first n_pos with RD > 0 (at most k per layer) and the
 * first n_neg with RD < 0.  Outputs are caller arrays of n_pos / n_neg
 * entries; counts returned through *got_pos / *got_neg. */
int ms_rd_select(const double *rd, int L, int E, int k, int n_pos, int n_neg, bool reverse,
                 MsRdPick *pos, int *got_pos, MsRdPick *neg, int *got_neg);

/* ------------------------------------------------------ §9 crosslingual */

/* Entropy-normalised JS divergence D_HJS(p, q); NaN when the normaliser
 * ln E − (H(p)+H(q))/2 ≤ 1e-8. */
double ms_dhjs(const double *p, const double *q, int E);
double ms_jsd(const double *p, const double *q, int E);

/* ------------------------------------------------------ §10 pathways */

/* Shortest prefix of experts by descending g (ties lower id) whose
 * cumulative weight reaches tau; writes ids to out (E entries) and returns
 * its length. */
int ms_pathway_layer(const double *g, int E, double tau, int *out);
/* Pathway string "0,1-1,2-2,0,1" (malloc'd) from L layer lists. */
char *ms_pathway_string(const int *const *lists, const int *lens, int L);
/* Levenshtein distance with unit costs over int symbols. */
int ms_levenshtein(const int *a, int na, const int *b, int nb);
/* Token-level symbol sequence: ids with −1 as the layer separator; out needs
 * Σ lens + L − 1 entries; returns its length. */
int ms_pathway_tokens(const int *const *lists, const int *lens, int L, int *out);
/* Pathway consistency (§10.3): gbar L×E, router rows W[l] E×d row-major.
 * Writes the paper's C_i and the plain mean cosine S_i (NaN if ill-defined). */
int ms_pathway_consistency(const double *gbar, const float *const *W, int L, int E, int d,
                           double *C_i, double *S_i);

#endif
