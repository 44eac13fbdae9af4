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

void ms_iv_assign(MsIntervention *dst, const MsIntervention *src)
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
