/* route.c — the router of one MoE layer (route.h), reading an intervention
 * set's storage (intervene-internal.h) directly: a plain indexed lookup per
 * (layer, expert). */
#include <math.h>
#include <string.h>

#include "intervene-internal.h"
#include "route.h"

int ms_route_k(const MsRouteCfg *cfg, const MsIntervention *iv, int layer)
{
    int e = cfg->n_expert > 0 ? cfg->n_expert : 1;
    int k = cfg->k;
    if (iv && iv->n_expert == cfg->n_expert && layer >= 0 && layer < iv->n_layer && iv->k[layer] > 0)
        k = iv->k[layer];
    if (k < 1) k = 1;
    if (k > e) k = e;
    return k;
}

/* a ranks before b: forced first, then higher score; NaN ranks like -inf so
 * a broken logit row still yields a full, valid selection. */
static inline bool ranks_before(bool fa, float sa, bool fb, float sb)
{
    if (fa != fb) return fa;
    if (isnan(sb)) return !isnan(sa);
    return sa > sb; /* strict: the scan runs upward, so ties keep the lower id */
}

/* ggml's soft_max order: exp(x - max) in float, sum in double, then one
 * float multiply by 1/sum. */
static void softmax_row(float *out, const float *x, int n)
{
    float max = -INFINITY;
    for (int e = 0; e < n; e++)
        if (x[e] > max) max = x[e];
    double sum = 0.0;
    for (int e = 0; e < n; e++) {
        float v = expf(x[e] - max);
        out[e] = v;
        sum += (double)v;
    }
    float inv = (float)(1.0 / sum);
    for (int e = 0; e < n; e++) out[e] *= inv;
}

/* Selection score of expert e: probs + selection bias, -inf if silenced. */
static inline float sel_score(const MsRouteCfg *cfg, const uint8_t *f, const float *prob, int e)
{
    if (f && (f[e] & F_SILENCE)) return -INFINITY;
    return prob[e] + (cfg->sel_bias ? cfg->sel_bias[e] : 0.0f);
}

/* Group-limited routing (route.h): set open_bits to the experts of the
 * kept groups.  need = slots to fill after the forced experts. */
static void group_mask(const MsRouteCfg *cfg, int need, const uint8_t *f, const float *prob, uint64_t *open_bits)
{
    const int E = cfg->n_expert, G = cfg->n_group, gs = E / G;
    float gscore[64];
    int n_open[64];
    for (int g = 0; g < G; g++) {
        float a = -INFINITY, b = -INFINITY;   /* the two largest scores (NaN ignored) */
        n_open[g] = 0;
        for (int e = g * gs; e < (g + 1) * gs; e++) {
            if (f && (f[e] & F_SILENCE)) continue;   /* silenced: not in the group score */
            /* forced experts score for their group as usual, but fill their own slot */
            if (!(f && (f[e] & F_FORCE))) n_open[g]++;
            float v = sel_score(cfg, f, prob, e);
            if (v > a) { b = a; a = v; }
            else if (v > b) b = v;
        }
        gscore[g] = b == -INFINITY ? a : a + b;
    }
    memset(open_bits, 0, sizeof(uint64_t) * (size_t)((E + 63) / 64));
    bool kept[64] = { false };
    int have = 0;
    for (int used = 0; used < G && (used < cfg->n_group_used || have < need); used++) {
        int best = -1;
        for (int g = 0; g < G; g++)
            if (!kept[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
        kept[best] = true;
        have += n_open[best];
        for (int e = best * gs; e < (best + 1) * gs; e++) open_bits[e >> 6] |= (uint64_t)1 << (e & 63);
    }
}

/* One token.  f/bias/scale are this layer's rows of iv, or NULL; lam and
 * margin too, non-NULL only when the layer has steer-std / raise / lower;
 * ser_kmin 0 = no ser.  *n_used_out receives the count of experts used. */
static void route_one(const MsRouteCfg *cfg, int k, const uint8_t *f, const float *bias,
                      const float *scale, const float *lam, const float *margin, int ser_kmin, float ser_t,
                      float *logit, float *prob, int32_t *ids, float *w, int32_t *n_used_out)
{
    const int E = cfg->n_expert;

    /* The logit operators of METHODS §6.3 / §9.3 read the token's
     * unmodified logits: population std, max and min. */
    float zmax = -INFINITY, zmin = INFINITY, zstd = 0.0f;
    if (lam || margin) {
        double mean = 0.0, var = 0.0;
        for (int e = 0; e < E; e++) {
            mean += logit[e];
            if (logit[e] > zmax) zmax = logit[e];
            if (logit[e] < zmin) zmin = logit[e];
        }
        mean /= E;
        for (int e = 0; e < E; e++) var += ((double)logit[e] - mean) * ((double)logit[e] - mean);
        zstd = (float)sqrt(var / E);
    }
    if (bias)
        for (int e = 0; e < E; e++) logit[e] += bias[e];
    if (lam)
        for (int e = 0; e < E; e++) logit[e] += lam[e] * zstd;
    if (margin)
        for (int e = 0; e < E; e++) {
            if (f[e] & F_RAISE) logit[e] = zmax + margin[e];
            else if (f[e] & F_LOWER) logit[e] = zmin - margin[e];
        }

    if (cfg->gating == MS_GATING_SIGMOID) {
        for (int e = 0; e < E; e++) prob[e] = 1.0f / (1.0f + expf(-logit[e]));
    } else if (cfg->gating == MS_GATING_SOFTMAX_TOPK) {
        memcpy(prob, logit, (size_t)E * sizeof *prob);   /* selection by the logits themselves */
    } else {
        softmax_row(prob, logit, E);
    }

    /* Group limit: which experts may be chosen (besides forced ones). */
    uint64_t open_bits[64];
    const bool grouped = cfg->n_group > 1 && cfg->n_group <= 64 && E % cfg->n_group == 0 && E <= 64 * 64;
    if (grouped) {
        int n_force = 0;
        for (int e = 0; f && e < E; e++) n_force += (f[e] & F_FORCE) != 0;
        group_mask(cfg, k - n_force, f, prob, open_bits);
    }

    /* Selection by repeated scan: k passes over E; k and E are small
     * (llama.cpp caps E at 512) and this needs no scratch memory. */
    uint64_t taken_bits[64];
    const bool use_bits = E <= 64 * 64;
    if (use_bits) memset(taken_bits, 0, sizeof(uint64_t) * (size_t)((E + 63) / 64));
    for (int j = 0; j < k; j++) {
        int best = -1;
        bool bf = false;
        float bs = 0.0f;
        for (int e = 0; e < E; e++) {
            bool taken;
            if (use_bits) {
                taken = (taken_bits[e >> 6] >> (e & 63)) & 1;
            } else {
                taken = false;
                for (int i = 0; i < j && !taken; i++) taken = ids[i] == e;
            }
            if (taken) continue;
            bool fe = f && (f[e] & F_FORCE);
            float se = sel_score(cfg, f, prob, e);
            if (grouped && !fe && !((open_bits[e >> 6] >> (e & 63)) & 1)) se = -INFINITY;
            if (best < 0 || ranks_before(fe, se, bf, bs)) {
                best = e;
                bf = fe;
                bs = se;
            }
        }
        ids[j] = best;
        if (use_bits) taken_bits[best >> 6] |= (uint64_t)1 << (best & 63);
    }

    /* ser: keep the first kmin in rank order, the forced experts, and those
     * whose score reaches t x the best score of the k (silenced filler
     * aside); the others move behind the kept ones, in rank order, and are
     * not used.  Scores that are NaN compare false, so they are kept, as at
     * t = 0. */
    int n_used = k;
    if (ser_kmin > 0 && ser_kmin < k) {
        float best = -INFINITY;
        for (int j = 0; j < k; j++)
            if (!(f && (f[ids[j]] & F_SILENCE)) && prob[ids[j]] > best) best = prob[ids[j]];
        /* SOFTMAX_TOPK compares weights, whose ratio to the best one's is
         * exp(logit - best logit): that against t */
        const bool topk = cfg->gating == MS_GATING_SOFTMAX_TOPK;
        const float thr = topk ? ser_t : ser_t * best;
        n_used = 0;
        for (int j = 0; j < k; j++) {
            int32_t e = ids[j];
            float sc = topk ? expf(prob[e] - best) : prob[e];
            if (j < ser_kmin || (f && (f[e] & F_FORCE)) || !(sc < thr)) {
                /* stable: shift the left-out ones seen so far one place right */
                for (int i = j; i > n_used; i--) ids[i] = ids[i - 1];
                ids[n_used++] = e;
            }
        }
    }
    *n_used_out = n_used;

    /* Weights from the unbiased probs of the used experts; a silenced expert
     * can only be here as filler for an inconsistent set, and contributes
     * nothing. */
    for (int j = 0; j < n_used; j++)
        w[j] = (f && (f[ids[j]] & F_SILENCE)) ? 0.0f : prob[ids[j]];
    if (cfg->gating == MS_GATING_SOFTMAX_TOPK) {
        /* softmax over the chosen (used) logits in ggml's order; fillers stay at 0 */
        float max = -INFINITY;
        for (int j = 0; j < n_used; j++)
            if (!(f && (f[ids[j]] & F_SILENCE)) && w[j] > max) max = w[j];
        double sum = 0.0;
        for (int j = 0; j < n_used; j++) {
            if (f && (f[ids[j]] & F_SILENCE)) continue;
            w[j] = expf(w[j] - max);
            sum += (double)w[j];
        }
        const float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
        for (int j = 0; j < n_used; j++) w[j] *= inv;
    }
    if (cfg->norm_w) {
        double sum = 0.0; /* ggml sum_rows accumulates in double */
        for (int j = 0; j < n_used; j++) sum += (double)w[j];
        float s = (float)sum;
        if (s < 6.103515625e-5f) s = 6.103515625e-5f;   /* llama.cpp's clamp (late 2025 on) */
        for (int j = 0; j < n_used; j++) w[j] = w[j] / s;
    }
    if (cfg->w_scale != 1.0f)
        for (int j = 0; j < n_used; j++) w[j] *= cfg->w_scale;
    if (f) {
        for (int j = 0; j < n_used; j++) {
            if (f[ids[j]] & F_DROP) w[j] = 0.0f;
            else w[j] *= scale[ids[j]];
        }
    }
    for (int j = n_used; j < k; j++) w[j] = 0.0f;
}

void ms_route_used(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
                   float *logits, float *probs, int32_t *ids, float *w, int32_t *n_used)
{
    if (!cfg || cfg->n_expert <= 0 || n <= 0) return;
    const int E = cfg->n_expert;
    const int k = ms_route_k(cfg, iv, layer);
    /* A set made for another shape is ignored rather than read out of bounds. */
    const bool use_iv = iv && iv->n_expert == E && layer >= 0 && layer < iv->n_layer;
    const uint8_t *f = NULL;
    const float *bias = NULL, *scale = NULL, *lam = NULL, *margin = NULL;
    int ser_kmin = 0;
    float ser_t = 0.0f;
    if (use_iv) {
        size_t off = (size_t)layer * (size_t)E;
        f = iv->flags + off;
        scale = iv->scale + off;
        for (int e = 0; e < E; e++) {
            if (iv->bias[off + e] != 0.0f) bias = iv->bias + off;
            if (iv->lam[off + e] != 0.0f) lam = iv->lam + off;
            if (f[e] & (F_RAISE | F_LOWER)) margin = iv->margin + off;
        }
        ser_kmin = iv->ser_kmin[layer];
        ser_t = iv->ser_t[layer];
    }
    for (int t = 0; t < n; t++) {
        int32_t nu;
        route_one(cfg, k, f, bias, scale, lam, margin, ser_kmin, ser_t, logits + (size_t)t * E,
                  probs + (size_t)t * E, ids + (size_t)t * k, w + (size_t)t * k, &nu);
        if (n_used) n_used[t] = nu;
    }
}

void ms_route(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
              float *logits, float *probs, int32_t *ids, float *w)
{
    ms_route_used(cfg, iv, layer, n, logits, probs, ids, w, NULL);
}
