/* intervene.c — the MoE router (route.h) and the intervention set that steers
 * it (engine.h: ms_intervention_*).
 *
 * Storage is dense: one flag byte, one logit bias, one weight scale, one
 * steer-std lambda and one raise/lower margin per (layer, expert), plus one
 * k override per layer.  That keeps ms_route a
 * plain indexed lookup and makes "changeable between calls" a matter of
 * copying a few arrays.
 *
 * Consistency rule (checked by the setters, by the parser and, with the
 * model's own k, by ms_intervention_validate): at every layer the forced
 * experts must fit into k, at least k experts must stay unsilenced, and no
 * expert may be both forced and silenced.  ms_route still never fails: a set
 * that breaks the rule anyway fills missing slots with silenced experts at
 * weight 0 (see route_one). */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

enum { F_SILENCE = 1, F_DROP = 2, F_FORCE = 4, F_RAISE = 8, F_LOWER = 16 };

struct MsIntervention {
    int n_layer, n_expert;
    uint8_t *flags;  /* [n_layer][n_expert] F_* bits */
    float *bias;     /* [n_layer][n_expert] router-logit delta, 0 = none */
    float *scale;    /* [n_layer][n_expert] applied-weight factor, 1 = none */
    float *lam;      /* [n_layer][n_expert] steer-std λ (logit += λ·std), 0 = none */
    float *margin;   /* [n_layer][n_expert] raise/lower margin D (with F_RAISE / F_LOWER) */
    int *k;          /* [n_layer] top-k override, 0 = none */
};

/* ------------------------------------------------------------ lifecycle */

MsIntervention *ms_intervention_new(int n_layer, int n_expert)
{
    if (n_layer <= 0 || n_expert <= 0 || n_layer > (1 << 16) || n_expert > (1 << 16)) return NULL;
    size_t ne = (size_t)n_layer * (size_t)n_expert;
    MsIntervention *iv = calloc(1, sizeof *iv);
    if (!iv) return NULL;
    iv->n_layer = n_layer;
    iv->n_expert = n_expert;
    iv->flags = calloc(ne, 1);
    iv->bias = calloc(ne, sizeof(float));
    iv->scale = malloc(ne * sizeof(float));
    iv->lam = calloc(ne, sizeof(float));
    iv->margin = calloc(ne, sizeof(float));
    iv->k = calloc((size_t)n_layer, sizeof(int));
    if (!iv->flags || !iv->bias || !iv->scale || !iv->lam || !iv->margin || !iv->k) {
        ms_intervention_free(iv);
        return NULL;
    }
    for (size_t i = 0; i < ne; i++) iv->scale[i] = 1.0f;
    return iv;
}

void ms_intervention_free(MsIntervention *iv)
{
    if (!iv) return;
    free(iv->flags);
    free(iv->bias);
    free(iv->scale);
    free(iv->lam);
    free(iv->margin);
    free(iv->k);
    free(iv);
}

static void iv_assign(MsIntervention *dst, const MsIntervention *src)
{
    size_t ne = (size_t)src->n_layer * (size_t)src->n_expert;
    memcpy(dst->flags, src->flags, ne);
    memcpy(dst->bias, src->bias, ne * sizeof(float));
    memcpy(dst->scale, src->scale, ne * sizeof(float));
    memcpy(dst->lam, src->lam, ne * sizeof(float));
    memcpy(dst->margin, src->margin, ne * sizeof(float));
    memcpy(dst->k, src->k, (size_t)src->n_layer * sizeof(int));
}

MsIntervention *ms_intervention_copy(const MsIntervention *iv)
{
    if (!iv) return NULL;
    MsIntervention *c = ms_intervention_new(iv->n_layer, iv->n_expert);
    if (c) iv_assign(c, iv);
    return c;
}

void ms_intervention_clear(MsIntervention *iv)
{
    if (!iv) return;
    size_t ne = (size_t)iv->n_layer * (size_t)iv->n_expert;
    memset(iv->flags, 0, ne);
    memset(iv->bias, 0, ne * sizeof(float));
    memset(iv->lam, 0, ne * sizeof(float));
    memset(iv->margin, 0, ne * sizeof(float));
    for (size_t i = 0; i < ne; i++) iv->scale[i] = 1.0f;
    memset(iv->k, 0, (size_t)iv->n_layer * sizeof(int));
}

bool ms_intervention_is_empty(const MsIntervention *iv)
{
    if (!iv) return true;
    size_t ne = (size_t)iv->n_layer * (size_t)iv->n_expert;
    for (size_t i = 0; i < ne; i++)
        if (iv->flags[i] || iv->bias[i] != 0.0f || iv->scale[i] != 1.0f || iv->lam[i] != 0.0f) return false;
    for (int l = 0; l < iv->n_layer; l++)
        if (iv->k[l]) return false;
    return true;
}

/* ------------------------------------------------------------- setters */

static int count_flag(const MsIntervention *iv, int layer, int flag)
{
    const uint8_t *f = iv->flags + (size_t)layer * iv->n_expert;
    int n = 0;
    for (int e = 0; e < iv->n_expert; e++) n += (f[e] & flag) != 0;
    return n;
}

/* The rule from the file comment for one layer with k in force; k <= 0 means
 * "not known yet" (no override and no model k), which checks only what can be
 * decided without k. */
static int layer_check(const MsIntervention *iv, int layer, int k, MsError *err)
{
    const uint8_t *f = iv->flags + (size_t)layer * iv->n_expert;
    for (int e = 0; e < iv->n_expert; e++) {
        if ((f[e] & F_SILENCE) && (f[e] & (F_FORCE | F_RAISE)))
            return ms_error_set(err, MS_EINVAL, "layer %d: expert %d is both %s and silenced", layer, e,
                                f[e] & F_FORCE ? "forced" : "raised");
    }
    int n_force = count_flag(iv, layer, F_FORCE);
    int n_open = iv->n_expert - count_flag(iv, layer, F_SILENCE);
    if (n_open < 1)
        return ms_error_set(err, MS_EINVAL, "layer %d: every expert is silenced", layer);
    if (k > 0 && n_force > k)
        return ms_error_set(err, MS_EINVAL, "layer %d: %d experts forced but only %d selected (top-k)",
                            layer, n_force, k);
    if (k > 0 && n_open < k)
        return ms_error_set(err, MS_EINVAL,
                            "layer %d: only %d experts left unsilenced but %d must be selected (top-k)",
                            layer, n_open, k);
    return 0;
}

static int check_le(const MsIntervention *iv, int layer, int expert)
{
    if (!iv) return MS_EINVAL;
    if (layer < 0 || layer >= iv->n_layer || expert < 0 || expert >= iv->n_expert) return MS_ERANGE;
    return 0;
}

/* Set or clear one flag, undoing the change if it breaks the layer rule. */
static int set_flag(MsIntervention *iv, int layer, int expert, int flag)
{
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    uint8_t *f = &iv->flags[(size_t)layer * iv->n_expert + expert];
    uint8_t old = *f;
    *f |= (uint8_t)flag;
    if (layer_check(iv, layer, iv->k[layer], NULL) != 0) {
        *f = old;
        return MS_EINVAL;
    }
    return 0;
}

int ms_intervention_silence(MsIntervention *iv, int layer, int expert)
{
    return set_flag(iv, layer, expert, F_SILENCE);
}

int ms_intervention_drop(MsIntervention *iv, int layer, int expert)
{
    return set_flag(iv, layer, expert, F_DROP);
}

int ms_intervention_force(MsIntervention *iv, int layer, int expert)
{
    return set_flag(iv, layer, expert, F_FORCE);
}

int ms_intervention_bias(MsIntervention *iv, int layer, int expert, float delta)
{
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    if (!isfinite(delta)) return MS_EINVAL;
    iv->bias[(size_t)layer * iv->n_expert + expert] = delta;
    return 0;
}

int ms_intervention_scale(MsIntervention *iv, int layer, int expert, float f)
{
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    if (!isfinite(f)) return MS_EINVAL;
    iv->scale[(size_t)layer * iv->n_expert + expert] = f;
    return 0;
}

int ms_intervention_steer_std(MsIntervention *iv, int layer, int expert, float lambda)
{
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    if (!isfinite(lambda)) return MS_EINVAL;
    iv->lam[(size_t)layer * iv->n_expert + expert] = lambda;
    return 0;
}

/* raise (up) or lower one expert's logit to the token's max + D / min − D */
static int set_assign(MsIntervention *iv, int layer, int expert, float d, bool up)
{
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    if (!isfinite(d) || d < 0) return MS_EINVAL;
    size_t i = (size_t)layer * iv->n_expert + expert;
    uint8_t old = iv->flags[i];
    iv->flags[i] = (uint8_t)((old & ~(F_RAISE | F_LOWER)) | (up ? F_RAISE : F_LOWER));
    if (layer_check(iv, layer, iv->k[layer], NULL) != 0) {
        iv->flags[i] = old;
        return MS_EINVAL;
    }
    iv->margin[i] = d;
    return 0;
}

int ms_intervention_raise(MsIntervention *iv, int layer, int expert, float d)
{
    return set_assign(iv, layer, expert, d, true);
}

int ms_intervention_lower(MsIntervention *iv, int layer, int expert, float d)
{
    return set_assign(iv, layer, expert, d, false);
}

int ms_intervention_top_k(MsIntervention *iv, int layer, int k)
{
    if (!iv) return MS_EINVAL;
    if (layer < -1 || layer >= iv->n_layer || k < 1 || k > iv->n_expert) return MS_ERANGE;
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? iv->n_layer - 1 : layer;
    for (int l = l0; l <= l1; l++)
        if (layer_check(iv, l, k, NULL) != 0) return MS_EINVAL;
    for (int l = l0; l <= l1; l++) iv->k[l] = k;
    return 0;
}

int ms_intervention_validate(const MsIntervention *iv, int n_layer, int n_expert, int k_default,
                             MsError *err)
{
    if (!iv) return 0;
    if (iv->n_layer != n_layer || iv->n_expert != n_expert)
        return ms_error_set(err, MS_EINVAL,
                            "intervention: made for %d layers x %d experts, model has %d x %d",
                            iv->n_layer, iv->n_expert, n_layer, n_expert);
    for (int l = 0; l < iv->n_layer; l++) {
        int k = iv->k[l] ? iv->k[l] : MS_MIN(k_default, n_expert);
        int rc = layer_check(iv, l, k, err);
        if (rc) {
            ms_error_prefix(err, "intervention: ");
            return rc;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- router */

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

/* One token.  f/bias/scale are this layer's rows of iv, or NULL; lam and
 * margin too, non-NULL only when the layer has steer-std / raise / lower. */
static void route_one(const MsRouteCfg *cfg, int k, const uint8_t *f, const float *bias,
                      const float *scale, const float *lam, const float *margin, float *logit, float *prob,
                      int32_t *ids, float *w)
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
    } else {
        /* ggml's soft_max order: exp(x - max) in float, sum in double,
         * then one float multiply by 1/sum. */
        float max = -INFINITY;
        for (int e = 0; e < E; e++)
            if (logit[e] > max) max = logit[e];
        double sum = 0.0;
        for (int e = 0; e < E; e++) {
            float v = expf(logit[e] - max);
            prob[e] = v;
            sum += (double)v;
        }
        float inv = (float)(1.0 / sum);
        for (int e = 0; e < E; e++) prob[e] *= inv;
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
            float se = (f && (f[e] & F_SILENCE)) ? -INFINITY
                     : prob[e] + (cfg->sel_bias ? cfg->sel_bias[e] : 0.0f);
            if (best < 0 || ranks_before(fe, se, bf, bs)) {
                best = e;
                bf = fe;
                bs = se;
            }
        }
        ids[j] = best;
        if (use_bits) taken_bits[best >> 6] |= (uint64_t)1 << (best & 63);
    }

    /* Weights from the unbiased probs; a silenced expert can only be here as
     * filler for an inconsistent set, and contributes nothing. */
    for (int j = 0; j < k; j++)
        w[j] = (f && (f[ids[j]] & F_SILENCE)) ? 0.0f : prob[ids[j]];
    if (cfg->norm_w) {
        double sum = 0.0; /* ggml sum_rows accumulates in double */
        for (int j = 0; j < k; j++) sum += (double)w[j];
        float s = (float)sum;
        /* Feb-2025 llama.cpp does not clamp; we only skip an exact 0 (which
         * would give NaN there) so forced/filler edge cases stay finite. */
        if (s != 0.0f)
            for (int j = 0; j < k; j++) w[j] = w[j] / s;
    }
    if (cfg->w_scale != 1.0f)
        for (int j = 0; j < k; j++) w[j] *= cfg->w_scale;
    if (f) {
        for (int j = 0; j < k; j++) {
            if (f[ids[j]] & F_DROP) w[j] = 0.0f;
            else w[j] *= scale[ids[j]];
        }
    }
}

void ms_route(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, int n,
              float *logits, float *probs, int32_t *ids, float *w)
{
    if (!cfg || cfg->n_expert <= 0 || n <= 0) return;
    const int E = cfg->n_expert;
    const int k = ms_route_k(cfg, iv, layer);
    /* A set made for another shape is ignored rather than read out of bounds. */
    const bool use_iv = iv && iv->n_expert == E && layer >= 0 && layer < iv->n_layer;
    const uint8_t *f = NULL;
    const float *bias = NULL, *scale = NULL, *lam = NULL, *margin = NULL;
    if (use_iv) {
        size_t off = (size_t)layer * (size_t)E;
        f = iv->flags + off;
        scale = iv->scale + off;
        for (int e = 0; e < E; e++) {
            if (iv->bias[off + e] != 0.0f) bias = iv->bias + off;
            if (iv->lam[off + e] != 0.0f) lam = iv->lam + off;
            if (f[e] & (F_RAISE | F_LOWER)) margin = iv->margin + off;
        }
    }
    for (int t = 0; t < n; t++)
        route_one(cfg, k, f, bias, scale, lam, margin, logits + (size_t)t * E, probs + (size_t)t * E,
                  ids + (size_t)t * k, w + (size_t)t * k);
}

/* --------------------------------------------------------------- parser */

/* Set of indices 0..n-1 as a byte mask. */
typedef struct {
    int n;
    uint8_t *on;
} IdxSet;

/* Parse a decimal index without sign, spaces or overflow. */
static int parse_index(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "a,b-c,*" over 0..set->n-1; what names the field in messages. */
static int parse_list(const char *s, size_t len, IdxSet *set, const char *what, const char *kind,
                      const char *spec, MsError *err)
{
    if (len == 0)
        return ms_error_set(err, MS_EINVAL, "--%s %.80s: empty %s list", kind, spec, what);
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != ',') j++;
        const char *it = s + i;
        size_t il = j - i;
        if (il == 0)
            return ms_error_set(err, MS_EINVAL, "--%s %.80s: empty item in %s list", kind, spec, what);
        if (il == 1 && it[0] == '*') {
            memset(set->on, 1, (size_t)set->n);
        } else {
            const char *dash = memchr(it, '-', il);
            long a, b;
            if (dash) {
                if (parse_index(it, (size_t)(dash - it), &a) ||
                    parse_index(dash + 1, il - (size_t)(dash - it) - 1, &b))
                    return ms_error_set(err, MS_EINVAL, "--%s %.80s: bad %s range '%.*s'", kind, spec,
                                        what, (int)MS_MIN(il, 40), it);
                if (b < a)
                    return ms_error_set(err, MS_EINVAL, "--%s %.80s: reversed %s range %ld-%ld", kind,
                                        spec, what, a, b);
            } else {
                if (parse_index(it, il, &a))
                    return ms_error_set(err, MS_EINVAL, "--%s %.80s: bad %s '%.*s'", kind, spec, what,
                                        (int)MS_MIN(il, 40), it);
                b = a;
            }
            if (b >= set->n)
                return ms_error_set(err, MS_ERANGE, "--%s %.80s: %s %ld out of range 0..%d", kind, spec,
                                    what, b, set->n - 1);
            memset(set->on + a, 1, (size_t)(b - a + 1));
        }
        i = j + 1;
    }
    return 0;
}

/* A finite float, whole field, in the C locale whatever the process uses. */
static int parse_float(const char *s, size_t len, float *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    /* Only plain decimal syntax: no spaces, hex, inf or nan words. */
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return -1;
    }
    locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_loc == (locale_t)0) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod_l(buf, &end, c_loc);
    freelocale(c_loc);
    if (end != buf + len || errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38) return -1;
    *out = (float)v;
    return 0;
}

typedef enum { K_SILENCE, K_DROP, K_FORCE, K_STEER, K_SCALE, K_STEER_STD, K_RAISE, K_LOWER, K_TOPK, K_COUNT } Kind;
static const char *const kind_names[K_COUNT] = { "silence", "drop", "force", "steer", "scale", "steer-std",
                                                 "raise", "lower", "top-k" };

static int parse_into(MsIntervention *iv, Kind kind, const char *spec, MsError *err)
{
    const char *kn = kind_names[kind];
    const char *f[4];
    size_t fl[4];
    int nf = 0;
    const char *p = spec;
    for (;;) {
        const char *c = strchr(p, ':');
        if (nf == 4) return ms_error_set(err, MS_EINVAL, "--%s %.80s: too many ':' fields", kn, spec);
        f[nf] = p;
        fl[nf] = c ? (size_t)(c - p) : strlen(p);
        nf++;
        if (!c) break;
        p = c + 1;
    }
    /* raise / lower take an optional margin (default 0.01, SteerMoE's) */
    bool assign = kind == K_RAISE || kind == K_LOWER;
    int want = kind == K_STEER || kind == K_SCALE || kind == K_STEER_STD ? 3
             : kind == K_TOPK ? (nf == 1 ? 1 : 2) : assign && nf == 3 ? 3 : 2;
    if (nf != want) {
        const char *form = kind == K_STEER ? "L:E:DELTA" : kind == K_SCALE ? "L:E:F"
                         : kind == K_STEER_STD ? "L:E:LAMBDA" : kind == K_TOPK ? "K or L:K"
                         : assign ? "L:E or L:E:D" : "L:E";
        return ms_error_set(err, MS_EINVAL, "--%s %.80s: expected %s", kn, spec, form);
    }

    int rc = 0;
    IdxSet ls = { iv->n_layer, calloc((size_t)iv->n_layer, 1) };
    IdxSet es = { iv->n_expert, calloc((size_t)iv->n_expert, 1) };
    if (!ls.on || !es.on) {
        rc = ms_error_set(err, MS_ENOMEM, "--%s: out of memory", kn);
        goto out;
    }

    if (kind == K_TOPK) {
        long k;
        const char *ks = f[nf - 1];
        size_t kl = fl[nf - 1];
        if (parse_index(ks, kl, &k)) {
            rc = ms_error_set(err, MS_EINVAL, "--%s %.80s: bad k '%.*s'", kn, spec, (int)MS_MIN(kl, 40), ks);
            goto out;
        }
        if (k < 1 || k > iv->n_expert) {
            rc = ms_error_set(err, MS_ERANGE, "--%s %.80s: k %ld out of range 1..%d", kn, spec, k,
                              iv->n_expert);
            goto out;
        }
        if (nf == 1) memset(ls.on, 1, (size_t)ls.n);
        else if ((rc = parse_list(f[0], fl[0], &ls, "layer", kn, spec, err))) goto out;
        for (int l = 0; l < iv->n_layer; l++) {
            if (!ls.on[l]) continue;
            if ((rc = layer_check(iv, l, (int)k, err))) {
                ms_error_prefix(err, "--%s %.80s: ", kn, spec);
                goto out;
            }
        }
        for (int l = 0; l < iv->n_layer; l++)
            if (ls.on[l]) iv->k[l] = (int)k;
        goto out;
    }

    if ((rc = parse_list(f[0], fl[0], &ls, "layer", kn, spec, err))) goto out;
    if ((rc = parse_list(f[1], fl[1], &es, "expert", kn, spec, err))) goto out;
    float val = assign ? 0.01f : 0.0f;
    if (nf == 3 && (parse_float(f[2], fl[2], &val) || (assign && val < 0))) {
        rc = ms_error_set(err, MS_EINVAL, "--%s %.80s: bad %s '%.*s' (want a finite number%s)", kn, spec,
                          kind == K_STEER ? "delta" : kind == K_STEER_STD ? "lambda" : assign ? "margin" : "factor",
                          (int)MS_MIN(fl[2], 40), f[2], assign ? " >= 0" : "");
        goto out;
    }
    for (int l = 0; l < iv->n_layer; l++) {
        if (!ls.on[l]) continue;
        size_t off = (size_t)l * iv->n_expert;
        for (int e = 0; e < iv->n_expert; e++) {
            if (!es.on[e]) continue;
            switch (kind) {
            case K_SILENCE: iv->flags[off + e] |= F_SILENCE; break;
            case K_DROP: iv->flags[off + e] |= F_DROP; break;
            case K_FORCE: iv->flags[off + e] |= F_FORCE; break;
            case K_STEER: iv->bias[off + e] = val; break;
            case K_SCALE: iv->scale[off + e] = val; break;
            case K_STEER_STD: iv->lam[off + e] = val; break;
            case K_RAISE: case K_LOWER:
                iv->flags[off + e] = (uint8_t)((iv->flags[off + e] & ~(F_RAISE | F_LOWER)) |
                                               (kind == K_RAISE ? F_RAISE : F_LOWER));
                iv->margin[off + e] = val;
                break;
            default: break;
            }
        }
        if ((rc = layer_check(iv, l, iv->k[l], err))) {
            ms_error_prefix(err, "--%s %.80s: ", kn, spec);
            goto out;
        }
    }
out:
    free(ls.on);
    free(es.on);
    return rc;
}

int ms_intervention_parse(MsIntervention *iv, const char *kind, const char *spec, MsError *err)
{
    if (!iv) return ms_error_set(err, MS_EINVAL, "intervention: no set to apply the spec to");
    if (!kind) return ms_error_set(err, MS_EINVAL, "intervention: no kind given");
    Kind kd = K_COUNT;
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(kind, kind_names[i]) == 0) kd = (Kind)i;
    if (kd == K_COUNT)
        return ms_error_set(err, MS_EINVAL,
                            "--%.40s: unknown intervention (silence, drop, force, steer, scale, steer-std, raise, "
                            "lower, top-k)", kind);
    if (!spec || !*spec) return ms_error_set(err, MS_EINVAL, "--%s: empty spec", kind);
    /* Work on a copy so a failing spec leaves iv exactly as it was. */
    MsIntervention *tmp = ms_intervention_copy(iv);
    if (!tmp) return ms_error_set(err, MS_ENOMEM, "--%s: out of memory", kind);
    int rc = parse_into(tmp, kd, spec, err);
    if (rc == 0) iv_assign(iv, tmp);
    ms_intervention_free(tmp);
    return rc;
}

/* -------------------------------------------------------------- printer */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_add(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_add(Buf *b, const char *fmt, ...)
{
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = true; return; }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 128);
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Index mask as "*" when full, else runs: "3", "3-4", "0-2,7". */
static void buf_list(Buf *b, const uint8_t *on, int n)
{
    int cnt = 0;
    for (int i = 0; i < n; i++) cnt += on[i] != 0;
    if (cnt == n) { buf_add(b, "*"); return; }
    bool first = true;
    for (int i = 0; i < n;) {
        if (!on[i]) { i++; continue; }
        int j = i;
        while (j + 1 < n && on[j + 1]) j++;
        if (j > i) buf_add(b, "%s%d-%d", first ? "" : ",", i, j);
        else buf_add(b, "%s%d", first ? "" : ",", i);
        first = false;
        i = j + 1;
    }
}

/* Shortest decimal that reads back as the same float, C locale. */
static void fmt_float(char *out, size_t cap, float v, bool plus)
{
    locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t old = c_loc ? uselocale(c_loc) : (locale_t)0;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, cap, plus ? "%+.*g" : "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (c_loc) {
        uselocale(old);
        freelocale(c_loc);
    }
}

/* One value kind (flag bit, or bias/scale rows) printed as "kind L:E[:V] ...".
 * Entries are (value, expert set) per layer; layers with the same pair are
 * merged into one layer list.  Order: first layer, then first expert. */
static void print_kind(Buf *b, const MsIntervention *iv, Kind kind, bool *any)
{
    const int L = iv->n_layer, E = iv->n_expert;
    uint8_t *done = calloc((size_t)L * E, 1);  /* (l,e) already printed */
    uint8_t *es = malloc((size_t)E), *ls = malloc((size_t)L), *tmp = malloc((size_t)E);
    if (!done || !es || !ls || !tmp) { b->oom = true; goto out; }
    bool started = false;

    #define ACTIVE(l, e) (kind <= K_FORCE || kind >= K_RAISE ? (iv->flags[(size_t)(l) * E + (e)] & \
        (kind == K_SILENCE ? F_SILENCE : kind == K_DROP ? F_DROP : kind == K_FORCE ? F_FORCE \
         : kind == K_RAISE ? F_RAISE : F_LOWER)) != 0 \
        : kind == K_STEER ? iv->bias[(size_t)(l) * E + (e)] != 0.0f \
        : kind == K_STEER_STD ? iv->lam[(size_t)(l) * E + (e)] != 0.0f : iv->scale[(size_t)(l) * E + (e)] != 1.0f)
    #define VALUE(l, e) (kind == K_STEER ? iv->bias[(size_t)(l) * E + (e)] \
        : kind == K_SCALE ? iv->scale[(size_t)(l) * E + (e)] \
        : kind == K_STEER_STD ? iv->lam[(size_t)(l) * E + (e)] \
        : kind >= K_RAISE ? iv->margin[(size_t)(l) * E + (e)] : 0.0f)

    for (int l = 0; l < L; l++) {
        for (int e = 0; e < E; e++) {
            if (done[(size_t)l * E + e] || !ACTIVE(l, e)) continue;
            float v = VALUE(l, e);
            /* expert set of this value at layer l */
            for (int x = 0; x < E; x++) es[x] = ACTIVE(l, x) && VALUE(l, x) == v;
            /* layers with exactly the same set for this value */
            memset(ls, 0, (size_t)L);
            for (int m = l; m < L; m++) {
                bool same = true;
                for (int x = 0; x < E && same; x++) {
                    tmp[x] = ACTIVE(m, x) && VALUE(m, x) == v;
                    same = tmp[x] == es[x];
                }
                if (same) ls[m] = 1;
            }
            for (int m = 0; m < L; m++)
                if (ls[m])
                    for (int x = 0; x < E; x++)
                        if (es[x]) done[(size_t)m * E + x] = 1;
            if (!started) {
                buf_add(b, "%s%s", *any ? "; " : "", kind_names[kind]);
                started = true;
                *any = true;
            }
            buf_add(b, " ");
            buf_list(b, ls, L);
            buf_add(b, ":");
            buf_list(b, es, E);
            if (kind >= K_STEER) {
                char num[48];
                fmt_float(num, sizeof num, v, kind == K_STEER || kind == K_STEER_STD);
                buf_add(b, ":%s", num);
            }
        }
    }
    #undef ACTIVE
    #undef VALUE
out:
    free(done);
    free(es);
    free(ls);
    free(tmp);
}

char *ms_intervention_to_string(const MsIntervention *iv)
{
    Buf b = { 0 };
    bool any = false;
    buf_add(&b, "%s", "");
    if (iv) {
        for (int kd = K_SILENCE; kd < K_TOPK; kd++) print_kind(&b, iv, (Kind)kd, &any);
        /* top-k: group layers by override value, in order of first layer. */
        uint8_t *ls = calloc((size_t)iv->n_layer, 1);
        uint8_t *done = calloc((size_t)iv->n_layer, 1);
        if (!ls || !done) b.oom = true;
        bool started = false;
        for (int l = 0; ls && done && l < iv->n_layer; l++) {
            if (!iv->k[l] || done[l]) continue;
            int k = iv->k[l];
            for (int m = 0; m < iv->n_layer; m++) ls[m] = iv->k[m] == k;
            for (int m = 0; m < iv->n_layer; m++) done[m] |= ls[m];
            if (!started) {
                buf_add(&b, "%stop-k", any ? "; " : "");
                started = any = true;
            }
            int cnt = 0;
            for (int m = 0; m < iv->n_layer; m++) cnt += ls[m];
            if (cnt == iv->n_layer) {
                buf_add(&b, " %d", k);
            } else {
                buf_add(&b, " ");
                buf_list(&b, ls, iv->n_layer);
                buf_add(&b, ":%d", k);
            }
        }
        free(ls);
        free(done);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int ms_intervention_parse_text(MsIntervention *iv, const char *text, MsError *err)
{
    if (!iv) return ms_error_set(err, MS_EINVAL, "intervention: no set to apply the text to");
    if (!text) return ms_error_set(err, MS_EINVAL, "intervention: no text");
    char *s = strdup(text);
    MsIntervention *tmp = ms_intervention_copy(iv);
    int rc = 0;
    if (!s || !tmp) {
        rc = ms_error_set(err, MS_ENOMEM, "intervention: out of memory");
        goto out;
    }
    /* clauses end at ';' or a line end (a file may hold one per line) */
    char *save = NULL;
    for (char *cl = strtok_r(s, ";\n", &save); cl; cl = strtok_r(NULL, ";\n", &save)) {
        char *save2 = NULL;
        char *kind = strtok_r(cl, " \t\r", &save2);
        if (!kind) continue;   /* blank line or trailing ';' */
        int nspec = 0;
        for (char *sp = strtok_r(NULL, " \t\r", &save2); sp; sp = strtok_r(NULL, " \t\r", &save2)) {
            if ((rc = ms_intervention_parse(tmp, kind, sp, err))) goto out;
            nspec++;
        }
        if (nspec == 0) {
            rc = ms_error_set(err, MS_EINVAL, "intervention '%.80s': '%.40s' without a spec", text, kind);
            goto out;
        }
    }
    iv_assign(iv, tmp);
out:
    free(s);
    ms_intervention_free(tmp);
    return rc;
}
