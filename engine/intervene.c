/* intervene.c — the intervention set (engine.h: ms_intervention_*): its
 * lifecycle, the setters and the check against a model.  The storage is in
 * intervene-internal.h, the text form in intervene-text.c, the router that
 * reads the set in route.c.
 *
 * Consistency rule (checked by the setters, by the parser and, with the
 * model's own k, by ms_intervention_validate): at every layer the forced
 * experts must fit into k, at least k experts must stay unsilenced, and no
 * expert may be both forced and silenced.  ms_route still never fails: a set
 * that breaks the rule anyway fills missing slots with silenced experts at
 * weight 0 (see route.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "intervene-internal.h"

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
    iv->ser_kmin = calloc((size_t)n_layer, sizeof(int));
    iv->ser_t = calloc((size_t)n_layer, sizeof(float));
    if (!iv->flags || !iv->bias || !iv->scale || !iv->lam || !iv->margin || !iv->k || !iv->ser_kmin ||
        !iv->ser_t) {
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
    free(iv->ser_kmin);
    free(iv->ser_t);
    free(iv);
}

void ms_iv_assign(MsIntervention *dst, const MsIntervention *src)
{
    size_t ne = (size_t)src->n_layer * (size_t)src->n_expert;
    memcpy(dst->flags, src->flags, ne);
    memcpy(dst->bias, src->bias, ne * sizeof(float));
    memcpy(dst->scale, src->scale, ne * sizeof(float));
    memcpy(dst->lam, src->lam, ne * sizeof(float));
    memcpy(dst->margin, src->margin, ne * sizeof(float));
    memcpy(dst->k, src->k, (size_t)src->n_layer * sizeof(int));
    memcpy(dst->ser_kmin, src->ser_kmin, (size_t)src->n_layer * sizeof(int));
    memcpy(dst->ser_t, src->ser_t, (size_t)src->n_layer * sizeof(float));
}

MsIntervention *ms_intervention_copy(const MsIntervention *iv)
{
    if (!iv) return NULL;
    MsIntervention *c = ms_intervention_new(iv->n_layer, iv->n_expert);
    if (c) ms_iv_assign(c, iv);
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
    memset(iv->ser_kmin, 0, (size_t)iv->n_layer * sizeof(int));
    memset(iv->ser_t, 0, (size_t)iv->n_layer * sizeof(float));
}

bool ms_intervention_is_empty(const MsIntervention *iv)
{
    if (!iv) return true;
    size_t ne = (size_t)iv->n_layer * (size_t)iv->n_expert;
    for (size_t i = 0; i < ne; i++)
        if (iv->flags[i] || iv->bias[i] != 0.0f || iv->scale[i] != 1.0f || iv->lam[i] != 0.0f) return false;
    for (int l = 0; l < iv->n_layer; l++)
        if (iv->k[l] || iv->ser_kmin[l]) return false;
    return true;
}

int ms_intervention_n_layer(const MsIntervention *iv) { return iv ? iv->n_layer : 0; }
int ms_intervention_n_expert(const MsIntervention *iv) { return iv ? iv->n_expert : 0; }

/* One expert's operators as the public value (margin only with raise/lower). */
static MsExpertOps expert_ops(const MsIntervention *iv, size_t i)
{
    MsExpertOps o = MS_EXPERT_OPS_NONE;
    uint8_t f = iv->flags[i];
    o.silence = f & F_SILENCE;
    o.drop = f & F_DROP;
    o.force = f & F_FORCE;
    o.bias = iv->bias[i];
    o.scale = iv->scale[i];
    o.steer_std = iv->lam[i];
    o.assign = f & F_RAISE ? MS_ASSIGN_RAISE : f & F_LOWER ? MS_ASSIGN_LOWER : MS_ASSIGN_NONE;
    o.margin = o.assign != MS_ASSIGN_NONE ? iv->margin[i] : 0.0f;
    return o;
}

static bool ops_equal(const MsExpertOps *a, const MsExpertOps *b)
{
    return a->silence == b->silence && a->drop == b->drop && a->force == b->force && a->bias == b->bias &&
           a->scale == b->scale && a->steer_std == b->steer_std && a->assign == b->assign &&
           a->margin == b->margin;
}

static bool ops_is_none(const MsExpertOps *o)
{
    const MsExpertOps none = MS_EXPERT_OPS_NONE;
    return ops_equal(o, &none);
}

static MsLayerOps layer_ops(const MsIntervention *iv, int l)
{
    MsLayerOps o = { iv->k[l], iv->ser_kmin[l], iv->ser_kmin[l] ? iv->ser_t[l] : 0.0f };
    return o;
}

bool ms_intervention_equal(const MsIntervention *a, const MsIntervention *b)
{
    if (!a || !b) return a == b;
    if (a->n_layer != b->n_layer || a->n_expert != b->n_expert) return false;
    for (int l = 0; l < a->n_layer; l++) {
        MsLayerOps la = layer_ops(a, l), lb = layer_ops(b, l);
        if (la.top_k != lb.top_k || la.ser_kmin != lb.ser_kmin || la.ser_t != lb.ser_t) return false;
        for (int e = 0; e < a->n_expert; e++) {
            size_t i = (size_t)l * a->n_expert + e;
            MsExpertOps oa = expert_ops(a, i), ob = expert_ops(b, i);
            if (!ops_equal(&oa, &ob)) return false;
        }
    }
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
int ms_iv_layer_check(const MsIntervention *iv, int layer, int k, MsError *err)
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
    if (k > 0 && iv->ser_kmin[layer] > k) {
        char t[32];
        ms_iv_fmt_float(t, sizeof t, iv->ser_t[layer], false);
        return ms_error_set(err, MS_EINVAL, "layer %d: ser %d:%d:%s keeps at least %d experts but only %d "
                            "are selected (top-k)", layer, layer, iv->ser_kmin[layer], t, iv->ser_kmin[layer], k);
    }
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
    if (ms_iv_layer_check(iv, layer, iv->k[layer], NULL) != 0) {
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
    if (ms_iv_layer_check(iv, layer, iv->k[layer], NULL) != 0) {
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
        if (ms_iv_layer_check(iv, l, k, NULL) != 0) return MS_EINVAL;
    for (int l = l0; l <= l1; l++) iv->k[l] = k;
    return 0;
}

int ms_intervention_ser(MsIntervention *iv, int layer, int kmin, float t)
{
    if (!iv) return MS_EINVAL;
    if (layer < -1 || layer >= iv->n_layer || kmin < 0 || kmin > iv->n_expert) return MS_ERANGE;
    if (kmin > 0 && !(t >= 0.0f && t <= 1.0f)) return MS_EINVAL;   /* NaN fails too */
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? iv->n_layer - 1 : layer;
    for (int l = l0; l <= l1; l++)
        if (iv->k[l] && kmin > iv->k[l]) return MS_EINVAL;
    for (int l = l0; l <= l1; l++) {
        iv->ser_kmin[l] = kmin;
        iv->ser_t[l] = kmin ? t : 0.0f;
    }
    return 0;
}

/* ------------------------------------------------ operator by operator */

int ms_intervention_get(const MsIntervention *iv, int layer, int expert, MsExpertOps *out)
{
    if (!out) return MS_EINVAL;
    int rc = check_le(iv, layer, expert);
    if (rc) return rc;
    *out = expert_ops(iv, (size_t)layer * iv->n_expert + expert);
    return 0;
}

int ms_intervention_set(MsIntervention *iv, int layer, int expert, const MsExpertOps *ops, MsError *err)
{
    if (!iv || !ops) return ms_error_set(err, MS_EINVAL, "intervention: no set or no operators");
    if (check_le(iv, layer, expert))
        return ms_error_set(err, MS_ERANGE, "intervention: layer %d expert %d outside %d layers x %d experts",
                            layer, expert, iv->n_layer, iv->n_expert);
    const char *bad = !isfinite(ops->bias) ? "steer delta is not finite"
                    : !isfinite(ops->scale) ? "scale factor is not finite"
                    : !isfinite(ops->steer_std) ? "steer-std lambda is not finite"
                    : ops->assign != MS_ASSIGN_NONE && ops->assign != MS_ASSIGN_RAISE &&
                      ops->assign != MS_ASSIGN_LOWER ? "raise/lower is neither raise, lower nor none"
                    : ops->assign != MS_ASSIGN_NONE && !(isfinite(ops->margin) && ops->margin >= 0.0f)
                      ? "raise/lower margin is not a finite number >= 0" : NULL;
    if (bad) return ms_error_set(err, MS_EINVAL, "intervention: layer %d expert %d: %s", layer, expert, bad);
    size_t i = (size_t)layer * iv->n_expert + expert;
    uint8_t old = iv->flags[i];
    iv->flags[i] = (uint8_t)((ops->silence ? F_SILENCE : 0) | (ops->drop ? F_DROP : 0) |
                             (ops->force ? F_FORCE : 0) | (ops->assign == MS_ASSIGN_RAISE ? F_RAISE : 0) |
                             (ops->assign == MS_ASSIGN_LOWER ? F_LOWER : 0));
    MsError e2;
    int rc = ms_iv_layer_check(iv, layer, iv->k[layer], &e2);
    if (rc) {
        iv->flags[i] = old;
        const char *why = strstr(e2.msg, ": ");   /* after the checker's "layer L: " */
        return ms_error_set(err, rc, "intervention: layer %d expert %d: %s", layer, expert, why ? why + 2 : e2.msg);
    }
    iv->bias[i] = ops->bias;
    iv->scale[i] = ops->scale;
    iv->lam[i] = ops->steer_std;
    iv->margin[i] = ops->assign != MS_ASSIGN_NONE ? ops->margin : 0.0f;
    return 0;
}

int ms_intervention_clear_expert(MsIntervention *iv, int layer, int expert)
{
    const MsExpertOps none = MS_EXPERT_OPS_NONE;
    int rc = check_le(iv, layer, expert);
    /* removing operators cannot break a layer's rule */
    return rc ? rc : ms_intervention_set(iv, layer, expert, &none, NULL);
}

int ms_intervention_top_k_get(const MsIntervention *iv, int layer)
{
    return iv && layer >= 0 && layer < iv->n_layer ? iv->k[layer] : 0;
}

int ms_intervention_get_layer(const MsIntervention *iv, int layer, MsLayerOps *out)
{
    if (!iv || !out) return MS_EINVAL;
    if (layer < 0 || layer >= iv->n_layer) return MS_ERANGE;
    *out = layer_ops(iv, layer);
    return 0;
}

int ms_intervention_set_layer(MsIntervention *iv, int layer, const MsLayerOps *ops, MsError *err)
{
    if (!iv || !ops) return ms_error_set(err, MS_EINVAL, "intervention: no set or no operators");
    if (layer < 0 || layer >= iv->n_layer)
        return ms_error_set(err, MS_ERANGE, "intervention: layer %d outside 0..%d", layer, iv->n_layer - 1);
    if (ops->top_k < 0 || ops->top_k > iv->n_expert)
        return ms_error_set(err, MS_ERANGE, "intervention: layer %d: top-k %d outside 1..%d (0 = none)", layer,
                            ops->top_k, iv->n_expert);
    if (ops->ser_kmin < 0 || ops->ser_kmin > iv->n_expert)
        return ms_error_set(err, MS_ERANGE, "intervention: layer %d: ser KMIN %d outside 1..%d (0 = none)",
                            layer, ops->ser_kmin, iv->n_expert);
    if (ops->ser_kmin > 0 && !(ops->ser_t >= 0.0f && ops->ser_t <= 1.0f))
        return ms_error_set(err, MS_EINVAL, "intervention: layer %d: ser threshold outside 0..1", layer);
    MsLayerOps old = layer_ops(iv, layer);
    iv->k[layer] = ops->top_k;
    iv->ser_kmin[layer] = ops->ser_kmin;
    iv->ser_t[layer] = ops->ser_kmin ? ops->ser_t : 0.0f;
    int rc = ms_iv_layer_check(iv, layer, iv->k[layer], err);
    if (rc) {
        iv->k[layer] = old.top_k;
        iv->ser_kmin[layer] = old.ser_kmin;
        iv->ser_t[layer] = old.ser_t;
        ms_error_prefix(err, "intervention: ");
    }
    return rc;
}

int ms_intervention_list(const MsIntervention *iv, MsInterventionVisitFn fn, void *user)
{
    if (!iv || !fn) return MS_EINVAL;
    for (int l = 0; l < iv->n_layer; l++) {
        MsInterventionEntry en = { .layer = l, .expert = -1, .ops = MS_EXPERT_OPS_NONE, .lops = layer_ops(iv, l) };
        int rc;
        if ((en.lops.top_k || en.lops.ser_kmin) && (rc = fn(user, &en))) return rc;
        en.lops = (MsLayerOps){ 0 };
        for (int e = 0; e < iv->n_expert; e++) {
            en.expert = e;
            en.ops = expert_ops(iv, (size_t)l * iv->n_expert + e);
            if (!ops_is_none(&en.ops) && (rc = fn(user, &en))) return rc;
        }
    }
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
        int rc = ms_iv_layer_check(iv, l, k, err);
        if (rc) {
            ms_error_prefix(err, "intervention: ");
            return rc;
        }
    }
    return 0;
}
