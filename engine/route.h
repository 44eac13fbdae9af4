/* route.h — the router of one MoE layer, in llama.cpp's order
 * (build_moe_ffn: logits -> probs -> selection bias -> top-k -> weights ->
 * normalise -> scale), with the interventions applied where they belong.
 * Pure functions over arrays: forward.c calls them, tests call them directly.
 * Implemented in route.c. */
#ifndef MS_ROUTE_H
#define MS_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    int n_expert;        /* E */
    int k;               /* expert_used_count (before overrides) */
    MsGating gating;     /* softmax over all experts, per-expert sigmoid, or
                          * softmax over the k selected logits (probs = logits) */
    bool norm_w;         /* divide the k weights by their sum */
    float w_scale;       /* multiply the weights by this (1 = none) */
    const float *sel_bias; /* [E] selection-only bias (deepseek2 exp_probs_b), or NULL */
    int n_group;         /* group-limited routing: E experts in n_group equal groups (<= 1: none) */
    int n_group_used;    /* ... experts come only from the n_group_used best groups */
} MsRouteCfg;

/* k in force at this layer (top-k override or cfg->k), always in 1..E. */
int ms_route_k(const MsRouteCfg *cfg, const MsIntervention *iv, int layer);

/* Route n tokens of one layer.
 *   logits [n][E]  in: raw router logits; out: the logits the router used
 *                  (raw + steering bias), which is what observers see
 *   probs  [n][E]  out: score function of those logits
 *   ids    [n][k]  out: selected experts, ranked (forced first, then by
 *                  descending selection score, lower id first on ties)
 *   w      [n][k]  out: applied weights (normalised, scaled, then steering
 *                  scale; 0 for dropped experts)
 * k = ms_route_k(cfg, iv, layer).  iv may be NULL; a set made for another
 * shape (n_expert, layer range) is ignored.
 *
 * Order of operations per token: max, min and population std of the raw
 * logits z; logits += steering bias; += lambda · std(z) (steer-std); raised
 * experts := max(z) + d, lowered := min(z) − d; probs = softmax
 * (ggml order: expf(x - max) per element, sum in double, one float multiply
 * by 1/sum), sigmoid, or the logits themselves (SOFTMAX_TOPK); selection
 * score = probs + sel_bias, -inf if silenced; with groups (n_group > 1), a
 * group's score is the sum of its two largest selection scores among its
 * unsilenced experts (one: that score alone; none: -inf), the n_group_used
 * best groups are kept (lower group id first on ties) and the other groups'
 * experts cannot be selected — if the kept groups hold fewer unsilenced
 * experts than the slots left after the forced ones, the next best groups
 * are opened until they do; forced experts take the first slots whatever
 * their group, the rest by score (lower id first on exact ties; llama.cpp's
 * own tie order is build-dependent, GGUF-MOE.md 6); weights = unbiased probs
 * of the chosen (SOFTMAX_TOPK: the softmax over the chosen logits); norm_w
 * divides by their sum (summed in double, clamped below at 6.103515625e-5
 * as llama.cpp does since late 2025); times w_scale; then dropped experts
 * get 0 (no renormalisation) and the rest times their steering scale.  ser
 * (engine.h) acts between selection and weights: the experts it leaves out
 * move behind the used ones in ids and get weight 0, and the normalisation
 * (SOFTMAX_TOPK: the softmax) runs over the used ones only.  A set that
 * leaves fewer than k unsilenced experts (only
 * possible if it skipped ms_intervention_validate) fills the missing slots
 * with silenced experts at weight 0 rather than failing. */
void ms_route(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
              float *logits, float *probs, int32_t *ids, float *w);
/* ms_route, and n_used [n] (may be NULL): how many of each token's k experts
 * are used, k unless ser leaves some out (those follow the used ones). */
void ms_route_used(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
                   float *logits, float *probs, int32_t *ids, float *w, int32_t *n_used);

#endif
