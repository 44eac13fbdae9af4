/* route.h — the router of one MoE layer, in llama.cpp's order
 * (build_moe_ffn: logits -> probs -> selection bias -> top-k -> weights ->
 * normalise -> scale), with the interventions applied where they belong.
 * Pure functions over arrays: forward.c calls them, tests call them directly.
 * Implemented in intervene.c. */
#ifndef MS_ROUTE_H
#define MS_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    int n_expert;        /* E */
    int k;               /* expert_used_count (before overrides) */
    MsGating gating;     /* softmax over all experts, or per-expert sigmoid */
    bool norm_w;         /* divide the k weights by their sum */
    float w_scale;       /* multiply the weights by this (1 = none) */
    const float *sel_bias; /* [E] selection-only bias (deepseek2 exp_probs_b), or NULL */
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
 * k = ms_route_k(cfg, iv, layer).  iv may be NULL. */
void ms_route(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
              float *logits, float *probs, int32_t *ids, float *w);

#endif
