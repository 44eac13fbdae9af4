/* intervene-internal.h — private to the intervention set (intervene.c), its
 * text form (intervene-text.c) and the router (route.c): the set's storage
 * and the consistency rule.  Not an interface for others.
 *
 * Storage is dense: one flag byte, one logit bias, one weight scale, one
 * steer-std lambda and one raise/lower margin per (layer, expert), plus a
 * k override and a ser rule per layer.  That keeps ms_route a plain indexed lookup and
 * makes "changeable between calls" a matter of copying a few arrays. */
#ifndef MS_INTERVENE_INTERNAL_H
#define MS_INTERVENE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

enum { F_SILENCE = 1, F_DROP = 2, F_FORCE = 4, F_RAISE = 8, F_LOWER = 16 };

struct MsIntervention {
    int n_layer, n_expert;
    uint8_t *flags;  /* [n_layer][n_expert] F_* bits */
    float *bias;     /* [n_layer][n_expert] router-logit delta, 0 = none */
    float *scale;    /* [n_layer][n_expert] applied-weight factor, 1 = none */
    float *lam;      /* [n_layer][n_expert] steer-std λ (logit += λ·std), 0 = none */
    float *margin;   /* [n_layer][n_expert] raise/lower margin D (with F_RAISE / F_LOWER) */
    int *k;          /* [n_layer] top-k override, 0 = none */
    int *ser_kmin;   /* [n_layer] ser: experts always kept, 0 = no ser */
    float *ser_t;    /* [n_layer] ser threshold in [0, 1] (0 where ser_kmin is 0) */
};

/* Copy src's contents into dst of the same shape. */
void ms_iv_assign(MsIntervention *dst, const MsIntervention *src);

/* Consistency rule for one layer with k in force (k <= 0: not known yet,
 * only what can be decided without k is checked): no expert both forced (or
 * raised) and silenced, at least one unsilenced, forced <= k <= unsilenced,
 * ser KMIN <= k.  Returns 0 or MS_EINVAL with a message "layer L: problem". */
int ms_iv_layer_check(const MsIntervention *iv, int layer, int k, MsError *err);

/* Shortest decimal that reads back as the same float, C locale ("+" sign
 * forced when plus) (intervene-text.c). */
void ms_iv_fmt_float(char *out, size_t cap, float v, bool plus);

#endif
