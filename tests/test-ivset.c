/* test-ivset.c — the intervention set operator by operator (get / set /
 * clear / list / equal), the ser operator in the router and through the
 * engine and the trace store, and the text form: random sets round-trip,
 * '#' comments, errors by line.
 *
 * Expectations come from the definitions in engine.h (a reference ser
 * written here, hand-computed examples), or from runs without the operator
 * that ser must reproduce exactly (T = 0, and T = 1 against top-k 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "mtest.h"
#include "route.h"
#include "synth.h"
#include "trace.h"

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t x = *s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 29);
}
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

static bool one_line(const MsError *e) { return e->msg[0] && !strchr(e->msg, '\n'); }

/* ------------------------------------------------------ operator by operator */

typedef struct {
    int n;
    MsInterventionEntry e[64];
    int stop_after;   /* stop (return 7) after this many, 0 = never */
} Listed;

static int collect(void *user, const MsInterventionEntry *en)
{
    Listed *l = user;
    if (l->n < 64) l->e[l->n] = *en;
    l->n++;
    return l->stop_after && l->n >= l->stop_after ? 7 : 0;
}

static bool ops_eq(const MsExpertOps *a, const MsExpertOps *b)
{
    return a->silence == b->silence && a->drop == b->drop && a->force == b->force && a->bias == b->bias &&
           a->scale == b->scale && a->steer_std == b->steer_std && a->assign == b->assign && a->margin == b->margin;
}

static void test_expert_ops(void)
{
    const MsExpertOps none = MS_EXPERT_OPS_NONE;
    MsIntervention *iv = ms_intervention_new(3, 8);
    MsError err;
    MsExpertOps o;
    int all_none = 1;
    for (int l = 0; l < 3; l++)
        for (int e = 0; e < 8; e++) all_none &= ms_intervention_get(iv, l, e, &o) == 0 && ops_eq(&o, &none);
    MT_CHECK(all_none, "empty set: every expert reads as MS_EXPERT_OPS_NONE (scale 1, rest 0)");
    Listed ls = { 0 };
    MT_CHECK(ms_intervention_list(iv, collect, &ls) == 0 && ls.n == 0, "empty set lists nothing");
    MT_CHECK(ms_intervention_n_layer(iv) == 3 && ms_intervention_n_expert(iv) == 8 &&
             ms_intervention_n_layer(NULL) == 0, "shape getters");

    /* set every operator of one expert at once; the same set through the setters is equal */
    MsExpertOps a = none;
    a.drop = true;
    a.bias = 1.5f;
    a.scale = 0.5f;
    a.steer_std = -0.25f;
    a.assign = MS_ASSIGN_RAISE;
    a.margin = 0.02f;
    MT_CHECK(ms_intervention_set(iv, 1, 2, &a, &err) == 0, "set drop+steer+scale+steer-std+raise on 1:2");
    MT_CHECK(ms_intervention_get(iv, 1, 2, &o) == 0 && ops_eq(&o, &a), "get returns exactly what was set");
    MsIntervention *b = ms_intervention_new(3, 8);
    ms_intervention_drop(b, 1, 2);
    ms_intervention_bias(b, 1, 2, 1.5f);
    ms_intervention_scale(b, 1, 2, 0.5f);
    ms_intervention_steer_std(b, 1, 2, -0.25f);
    ms_intervention_raise(b, 1, 2, 0.02f);
    MT_CHECK(ms_intervention_equal(iv, b), "equal to the set built with the single setters");
    char *ta = ms_intervention_to_string(iv), *tb = ms_intervention_to_string(b);
    MT_CHECK(ta && tb && !strcmp(ta, tb) &&
                 !strcmp(ta, "drop 1:2; steer 1:2:+1.5; scale 1:2:0.5; steer-std 1:2:-0.25; raise 1:2:0.02"),
             "and prints the same: '%s'", ta ? ta : "");
    free(ta);
    free(tb);

    /* all or nothing, with the setters' rules */
    MsIntervention *before = ms_intervention_copy(iv);
    MsExpertOps bad = none;
    bad.silence = bad.force = true;
    ms_error_clear(&err);
    int rc = ms_intervention_set(iv, 0, 3, &bad, &err);
    MT_CHECK(rc == MS_EINVAL && strstr(err.msg, "layer 0 expert 3") && strstr(err.msg, "both") && one_line(&err),
             "silence+force rejected, naming layer and expert (%s)", err.msg);
    bad = none;
    bad.silence = true;
    bad.assign = MS_ASSIGN_RAISE;
    MT_CHECK(ms_intervention_set(iv, 0, 3, &bad, &err) == MS_EINVAL, "silence+raise rejected (%s)", err.msg);
    bad = none;
    bad.bias = NAN;
    MT_CHECK(ms_intervention_set(iv, 0, 3, &bad, &err) == MS_EINVAL && strstr(err.msg, "steer"),
             "NaN steer rejected (%s)", err.msg);
    bad = none;
    bad.scale = INFINITY;
    MT_CHECK(ms_intervention_set(iv, 0, 3, &bad, &err) == MS_EINVAL, "infinite scale rejected");
    bad = none;
    bad.assign = MS_ASSIGN_LOWER;
    bad.margin = -1.0f;
    MT_CHECK(ms_intervention_set(iv, 0, 3, &bad, &err) == MS_EINVAL && strstr(err.msg, "margin"),
             "negative margin rejected (%s)", err.msg);
    bad = none;
    bad.assign = (MsLogitAssign)5;
    MT_CHECK(ms_intervention_set(iv, 0, 3, &bad, &err) == MS_EINVAL, "unknown raise/lower value rejected");
    MT_CHECK(ms_intervention_set(iv, 3, 0, &none, &err) == MS_ERANGE &&
                 ms_intervention_set(iv, 0, 8, &none, &err) == MS_ERANGE &&
                 ms_intervention_get(iv, -1, 0, &o) == MS_ERANGE,
             "layer/expert out of range: MS_ERANGE (%s)", err.msg);
    /* every expert silenced: the eighth silence fails, the set keeps seven */
    MsExpertOps sil = none;
    sil.silence = true;
    for (int e = 0; e < 7; e++) ms_intervention_set(before, 2, e, &sil, NULL);
    ms_intervention_free(iv);
    iv = ms_intervention_copy(before);
    MT_CHECK(ms_intervention_set(iv, 2, 7, &sil, &err) == MS_EINVAL && strstr(err.msg, "every expert"),
             "silencing the last open expert rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_equal(iv, before), "a rejected set() leaves the set unchanged");
    /* with a top-k override the forced count is checked */
    MsExpertOps frc = none;
    frc.force = true;
    MT_CHECK(ms_intervention_top_k(iv, 0, 2) == 0 && ms_intervention_set(iv, 0, 0, &frc, NULL) == 0 &&
                 ms_intervention_set(iv, 0, 1, &frc, NULL) == 0,
             "top-k 0:2 with two forced accepted");
    ms_error_clear(&err);
    MT_CHECK(ms_intervention_set(iv, 0, 4, &frc, &err) == MS_EINVAL && strstr(err.msg, "forced"),
             "a third forced expert at k 2 rejected (%s)", err.msg);

    /* margin is not stored without raise/lower */
    MsExpertOps mg = none;
    mg.margin = 5.0f;
    MT_CHECK(ms_intervention_set(iv, 1, 5, &mg, NULL) == 0 && ms_intervention_get(iv, 1, 5, &o) == 0 &&
                 ops_eq(&o, &none),
             "margin without raise/lower is ignored (reads back as none)");

    /* clear_expert and set(NONE) */
    MT_CHECK(ms_intervention_clear_expert(iv, 1, 2) == 0 && ms_intervention_get(iv, 1, 2, &o) == 0 &&
                 ops_eq(&o, &none),
             "clear_expert removes every operator");
    MT_CHECK(ms_intervention_clear_expert(iv, 0, 0) == 0 && ms_intervention_clear_expert(iv, 9, 0) == MS_ERANGE,
             "clear_expert of a forced expert is allowed; bad layer MS_ERANGE");
    ms_intervention_set(iv, 0, 6, &a, NULL);
    MT_CHECK(ms_intervention_set(iv, 0, 6, &none, NULL) == 0 && ms_intervention_get(iv, 0, 6, &o) == 0 &&
                 ops_eq(&o, &none),
             "set(MS_EXPERT_OPS_NONE) clears too");

    /* layer operators */
    MsLayerOps lo;
    MT_CHECK(ms_intervention_top_k_get(iv, 0) == 2 && ms_intervention_top_k_get(iv, 1) == 0 &&
                 ms_intervention_top_k_get(iv, 7) == 0 && ms_intervention_top_k_get(NULL, 0) == 0,
             "top_k_get: override, 0 for none / bad layer / NULL");
    MsLayerOps set1 = { .top_k = 3, .ser_kmin = 2, .ser_t = 0.5f };
    MT_CHECK(ms_intervention_set_layer(iv, 1, &set1, &err) == 0 && ms_intervention_get_layer(iv, 1, &lo) == 0 &&
                 lo.top_k == 3 && lo.ser_kmin == 2 && lo.ser_t == 0.5f && ms_intervention_top_k_get(iv, 1) == 3,
             "set_layer top-k 3 + ser 2:0.5, read back");
    ms_intervention_set(iv, 0, 0, &frc, NULL);   /* 0:0 and 0:1 forced again */
    MsIntervention *keep = ms_intervention_copy(iv);
    MsLayerOps badl = { .top_k = 3, .ser_kmin = 4, .ser_t = 0.5f };
    MT_CHECK(ms_intervention_set_layer(iv, 1, &badl, &err) == MS_EINVAL && strstr(err.msg, "ser") &&
                 one_line(&err),
             "ser KMIN 4 above top-k 3 rejected (%s)", err.msg);
    badl = (MsLayerOps){ .ser_kmin = 1, .ser_t = 1.5f };
    MT_CHECK(ms_intervention_set_layer(iv, 1, &badl, &err) == MS_EINVAL, "ser T 1.5 rejected (%s)", err.msg);
    badl = (MsLayerOps){ .top_k = 9 };
    MT_CHECK(ms_intervention_set_layer(iv, 1, &badl, &err) == MS_ERANGE, "top-k 9 of 8 rejected (%s)", err.msg);
    badl = (MsLayerOps){ .top_k = 1 };
    MT_CHECK(ms_intervention_set_layer(iv, 0, &badl, &err) == MS_EINVAL && strstr(err.msg, "forced"),
             "top-k 1 below the forced count rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_equal(iv, keep), "rejected set_layer calls leave the set unchanged");
    ms_intervention_free(keep);

    /* list: layer entry first, then experts in order; stops on request */
    ms_intervention_clear(iv);
    ms_intervention_set(iv, 2, 5, &a, NULL);
    ms_intervention_silence(iv, 0, 7);
    ms_intervention_top_k(iv, 2, 4);
    ms_intervention_ser(iv, 0, 1, 0.25f);
    ms_intervention_force(iv, 2, 1);
    memset(&ls, 0, sizeof ls);
    MT_CHECK(ms_intervention_list(iv, collect, &ls) == 0 && ls.n == 5, "list visits 5 entries (%d)", ls.n);
    MT_CHECK(ls.e[0].layer == 0 && ls.e[0].expert == -1 && ls.e[0].lops.ser_kmin == 1 &&
                 ls.e[0].lops.ser_t == 0.25f && ls.e[0].lops.top_k == 0 &&
                 ls.e[1].layer == 0 && ls.e[1].expert == 7 && ls.e[1].ops.silence &&
                 ls.e[2].layer == 2 && ls.e[2].expert == -1 && ls.e[2].lops.top_k == 4 &&
                 ls.e[3].layer == 2 && ls.e[3].expert == 1 && ls.e[3].ops.force &&
                 ls.e[4].layer == 2 && ls.e[4].expert == 5 && ops_eq(&ls.e[4].ops, &a),
             "entries: (0, layer: ser 1:0.25), (0,7 silence), (2, layer: top-k 4), (2,1 force), (2,5 all)");
    memset(&ls, 0, sizeof ls);
    ls.stop_after = 2;
    MT_CHECK(ms_intervention_list(iv, collect, &ls) == 7 && ls.n == 2, "a nonzero callback value stops the walk");
    MT_CHECK(ms_intervention_list(NULL, collect, &ls) == MS_EINVAL && ms_intervention_list(iv, NULL, NULL) == MS_EINVAL,
             "list with NULL: MS_EINVAL");

    /* equal */
    MsIntervention *c = ms_intervention_copy(iv), *other = ms_intervention_new(3, 9);
    MT_CHECK(ms_intervention_equal(iv, c) && ms_intervention_equal(NULL, NULL) && !ms_intervention_equal(iv, NULL) &&
                 !ms_intervention_equal(NULL, iv),
             "equal: copy, NULL with NULL; not NULL with a set");
    ms_intervention_clear(other);
    MsIntervention *e38 = ms_intervention_new(3, 8);
    MT_CHECK(!ms_intervention_equal(other, e38) && ms_intervention_is_empty(other),
             "two empty sets of different shape are not equal");
    ms_intervention_bias(c, 1, 1, -0.0f);
    MT_CHECK(ms_intervention_equal(iv, c), "steer -0 equals no steer");
    ms_intervention_ser(c, 0, 1, 0.5f);
    MT_CHECK(!ms_intervention_equal(iv, c), "a different ser threshold is not equal");
    ms_intervention_ser(c, 0, 1, 0.25f);
    ms_intervention_scale(c, 2, 5, 0.75f);
    MT_CHECK(!ms_intervention_equal(iv, c), "a different scale is not equal");
    ms_intervention_free(c);
    ms_intervention_free(other);
    ms_intervention_free(e38);

    /* ser setter rules */
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_ser(iv, -1, 2, 0.5f) == 0 && !ms_intervention_is_empty(iv), "ser on all layers; not empty");
    MT_CHECK(ms_intervention_ser(iv, 0, 9, 0.5f) == MS_ERANGE && ms_intervention_ser(iv, 3, 1, 0.5f) == MS_ERANGE,
             "ser KMIN above E or bad layer: MS_ERANGE");
    MT_CHECK(ms_intervention_ser(iv, 0, 1, -0.1f) == MS_EINVAL && ms_intervention_ser(iv, 0, 1, 1.01f) == MS_EINVAL &&
                 ms_intervention_ser(iv, 0, 1, NAN) == MS_EINVAL,
             "ser T outside [0, 1] or NaN: MS_EINVAL");
    MT_CHECK(ms_intervention_top_k(iv, 1, 1) == MS_EINVAL, "top-k 1 below ser KMIN 2 rejected");
    MT_CHECK(ms_intervention_top_k(iv, 1, 2) == 0 && ms_intervention_ser(iv, 1, 3, 0.5f) == MS_EINVAL,
             "ser KMIN 3 above top-k 2 rejected");
    MT_CHECK(ms_intervention_ser(iv, -1, 0, 0.0f) == 0 && ms_intervention_get_layer(iv, 0, &lo) == 0 &&
                 lo.ser_kmin == 0 && lo.ser_t == 0.0f,
             "ser KMIN 0 removes it");
    ms_error_clear(&err);
    ms_intervention_clear(iv);
    ms_intervention_ser(iv, -1, 3, 0.5f);
    MT_CHECK(ms_intervention_validate(iv, 3, 8, 2, &err) == MS_EINVAL && strstr(err.msg, "ser") && one_line(&err),
             "validate: ser KMIN 3 with the model's k 2 rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_validate(iv, 3, 8, 4, &err) == 0, "validate: ser KMIN 3 with k 4 accepted");

    ms_intervention_free(b);
    ms_intervention_free(before);
    ms_intervention_free(iv);
}

/* ----------------------------------------------------------- ser in the router */

/* ser by its definition (engine.h), on a plain top-k result: keep the first
 * kmin, forced ones, and those with prob >= t * max prob of the k; weights
 * renormalised among the kept under norm_w, then w_scale. */
static int ref_ser(const MsRouteCfg *cfg, int k, const float *prob, const int32_t *plain_ids, const bool *forced,
                   int kmin, float t, int32_t *ids, double *w)
{
    double best = -INFINITY;
    for (int j = 0; j < k; j++) best = fmax(best, prob[plain_ids[j]]);
    int n = 0;
    for (int j = 0; j < k; j++) {
        int e = plain_ids[j];
        if (j < kmin || (forced && forced[e]) || prob[e] >= (double)(t * (float)best)) ids[n++] = e;
    }
    int nu = n;
    for (int j = 0; j < k; j++) {
        bool in = false;
        for (int i = 0; i < nu; i++) in |= ids[i] == plain_ids[j];
        if (!in) ids[n++] = plain_ids[j];
    }
    double s = 0;
    for (int j = 0; j < nu; j++) s += prob[ids[j]];
    for (int j = 0; j < k; j++) w[j] = j < nu ? prob[ids[j]] / (cfg->norm_w ? s : 1.0) * cfg->w_scale : 0.0;
    return nu;
}

static void test_ser_router(void)
{
    enum { E = 16, K = 6, NT = 64 };
    uint64_t st = 4242;
    float selb[E];
    for (int e = 0; e < E; e++) selb[e] = (float)(rng_unit(&st) * 0.2);
    int t0_same = 1, t0_cases = 0, t1_exact = 1, ref_ok = 1, route_same = 1;
    for (int g = 0; g < 2; g++)
        for (int norm = 0; norm < 2; norm++)
            for (int sb = 0; sb < 2; sb++) {
                MsRouteCfg cfg = { .n_expert = E, .k = K, .gating = g ? MS_GATING_SIGMOID : MS_GATING_SOFTMAX,
                                   .norm_w = norm, .w_scale = norm ? 1.0f : 2.5f, .sel_bias = sb ? selb : NULL };
                float raw[NT * E];
                for (int i = 0; i < NT * E; i++) raw[i] = (float)(rng_unit(&st) * 6.0 - 3.0);
                float lp[NT * E], pp[NT * E], wp[NT * K];
                int32_t ip[NT * K];
                memcpy(lp, raw, sizeof lp);
                ms_route(&cfg, NULL, 0, NT, lp, pp, ip, wp);
                for (int kmin = 1; kmin <= K; kmin++) {
                    MsIntervention *iv = ms_intervention_new(1, E);
                    ms_intervention_ser(iv, 0, kmin, 0.0f);
                    float l2[NT * E], p2[NT * E], w2[NT * K];
                    int32_t i2[NT * K], nu[NT];
                    memcpy(l2, raw, sizeof l2);
                    ms_route_used(&cfg, iv, 0, NT, l2, p2, i2, w2, nu);
                    bool all_k = true;
                    for (int t = 0; t < NT; t++) all_k &= nu[t] == K;
                    t0_same &= all_k && !memcmp(lp, l2, sizeof lp) && !memcmp(pp, p2, sizeof pp) &&
                               !memcmp(ip, i2, sizeof ip) && !memcmp(wp, w2, sizeof wp);
                    t0_cases++;
                    for (int ti = 0; ti < 3; ti++) {
                        float T = ti == 0 ? 1.0f : ti == 1 ? 0.5f : (float)rng_unit(&st);
                        ms_intervention_ser(iv, 0, kmin, T);
                        memcpy(l2, raw, sizeof l2);
                        ms_route_used(&cfg, iv, 0, NT, l2, p2, i2, w2, nu);
                        for (int t = 0; t < NT; t++) {
                            int32_t rid[K];
                            double rw[K];
                            int rn = ref_ser(&cfg, K, pp + t * E, ip + t * K, NULL, kmin, T, rid, rw);
                            bool ok = rn == nu[t];
                            for (int j = 0; j < K && ok; j++) ok = rid[j] == i2[t * K + j] && near(w2[t * K + j], rw[j]);
                            if (!ok && ref_ok) mt_diag("ser mismatch: gating %d norm %d selb %d kmin %d T %g token %d", g,
                                                       norm, sb, kmin, T, t);
                            ref_ok &= ok;
                            /* T = 1 and no selection bias: the best is the first, so exactly kmin (random
                             * floats: no ties) */
                            if (ti == 0 && !sb) t1_exact &= nu[t] == kmin;
                        }
                        float l3[NT * E], p3[NT * E], w3[NT * K];
                        int32_t i3[NT * K];
                        memcpy(l3, raw, sizeof l3);
                        ms_route(&cfg, iv, 0, NT, l3, p3, i3, w3);
                        route_same &= !memcmp(i2, i3, sizeof i3) && !memcmp(w2, w3, sizeof w3);
                    }
                    ms_intervention_free(iv);
                }
            }
    MT_CHECK(t0_same, "ser T = 0 equals plain top-k bit for bit: ids, weights, probs, logits (%d cases: softmax/"
             "sigmoid x norm_w x selection bias x KMIN 1..6)", t0_cases);
    MT_CHECK(t1_exact, "ser T = 1 keeps exactly KMIN experts for every token");
    MT_CHECK(ref_ok, "ser T in {1, 0.5, random}: used experts, order and weights match the definition");
    MT_CHECK(route_same, "ms_route and ms_route_used agree under ser");

    /* hand example: z = base row, k 3, ranking 1 (3.0), 4 (2.5), 2 (2.0);
     * p4/p1 = e^-0.5 = 0.607 >= 0.5 kept, p2/p1 = e^-1 = 0.368 dropped */
    const float base6[6] = { 1.0f, 3.0f, 2.0f, 0.5f, 2.5f, -1.0f };
    double p[6], s = 0;
    for (int e = 0; e < 6; e++) s += (p[e] = exp(base6[e]));
    for (int e = 0; e < 6; e++) p[e] /= s;
    MsIntervention *iv = ms_intervention_new(1, 6);
    MT_CHECK(ms_intervention_parse(iv, "ser", "1:0.5", NULL) == 0, "--ser 1:0.5 parses");
    for (int norm = 0; norm < 2; norm++) {
        MsRouteCfg c = { .n_expert = 6, .k = 3, .gating = MS_GATING_SOFTMAX, .norm_w = norm, .w_scale = 1.0f };
        float z[6], pr[6], w[3];
        int32_t ids[3], nu;
        memcpy(z, base6, sizeof z);
        ms_route_used(&c, iv, 0, 1, z, pr, ids, w, &nu);
        double d = norm ? p[1] + p[4] : 1.0;
        MT_CHECK(nu == 2 && ids[0] == 1 && ids[1] == 4 && ids[2] == 2 && near(w[0], p[1] / d) &&
                     near(w[1], p[4] / d) && w[2] == 0.0f,
                 "ser 1:0.5, k 3%s: used {1, 4}, 2 listed last at weight 0, weights %s (got %d: %d %d %d, %g %g %g)",
                 norm ? ", norm_w" : "", norm ? "renormalised among the kept" : "left as the softmax gave them",
                 nu, ids[0], ids[1], ids[2], w[0], w[1], w[2]);
    }
    /* forced experts are always kept; drop and scale still apply to the kept */
    ms_intervention_force(iv, 0, 5);
    ms_intervention_parse(iv, "ser", "1:1", NULL);
    ms_intervention_scale(iv, 0, 1, 0.5f);
    {
        MsRouteCfg c = { .n_expert = 6, .k = 3, .gating = MS_GATING_SOFTMAX, .norm_w = true, .w_scale = 1.0f };
        float z[6], pr[6], w[3];
        int32_t ids[3], nu;
        memcpy(z, base6, sizeof z);
        ms_route_used(&c, iv, 0, 1, z, pr, ids, w, &nu);
        double d = p[5] + p[1];
        MT_CHECK(nu == 2 && ids[0] == 5 && ids[1] == 1 && ids[2] == 4 && near(w[0], p[5] / d) &&
                     near(w[1], 0.5 * p[1] / d) && w[2] == 0.0f,
                 "ser 1:1 with 5 forced: forced 5 kept first, 1 kept (the best score), 4 left out; scale after");
    }
    ms_intervention_free(iv);
}

/* --------------------------------------------------------------- text form */

/* A random set through the setters: every operator, values with full float
 * mantissas as well as round ones. */
static MsIntervention *random_set(uint64_t *st, int L, int E, int n_ops)
{
    MsIntervention *a = ms_intervention_new(L, E);
    for (int j = 0; j < n_ops; j++) {
        uint64_t r = rng_next(st);
        int l = (int)(r % (uint64_t)L), e = (int)((r >> 8) % (uint64_t)E), op = (int)((r >> 16) % 12);
        float v = (r >> 24) % 3 == 0 ? (float)((int)((r >> 28) % 41) - 20) / 8.0f
                                     : (float)(rng_unit(st) * 20.0 - 10.0);
        float u = (r >> 36) % 4 == 0 ? (float)((r >> 40) % 3) * 0.5f : (float)rng_unit(st);   /* [0, 1] */
        switch (op) {
        case 0: ms_intervention_silence(a, l, e); break;
        case 1: ms_intervention_drop(a, l, e); break;
        case 2: ms_intervention_force(a, l, e); break;
        case 3: ms_intervention_bias(a, l, e, v); break;
        case 4: ms_intervention_scale(a, l, e, v); break;
        case 5: ms_intervention_steer_std(a, l, e, v); break;
        case 6: ms_intervention_raise(a, l, e, fabsf(v)); break;
        case 7: ms_intervention_lower(a, l, e, fabsf(v)); break;
        case 8: ms_intervention_top_k(a, (r >> 44) % 2 ? -1 : l, 1 + (int)((r >> 45) % 6)); break;
        case 9: ms_intervention_ser(a, (r >> 44) % 3 ? l : -1, 1 + (int)((r >> 46) % 4), u); break;
        case 10: {   /* a whole range with one value: exercises the merged printing */
            int e2 = e + (int)((r >> 48) % 4);
            for (int x = e; x < E && x <= e2; x++)
                for (int m = l; m < L && m <= l + 1; m++) ms_intervention_bias(a, m, x, v);
            break;
        }
        default: {
            MsExpertOps o = MS_EXPERT_OPS_NONE;
            o.drop = (r >> 50) & 1;
            o.scale = (r >> 51) & 1 ? v : 1.0f;
            o.assign = (MsLogitAssign)((int)((r >> 52) % 3) - 1);
            o.margin = fabsf(v);
            ms_intervention_set(a, l, e, &o, NULL);
            break;
        }
        }
    }
    return a;
}

static void test_text_roundtrip(void)
{
    uint64_t st = 20240611;
    int n_sets = 0, n_nonempty = 0, eq_ok = 1, txt_ok = 1, kinds_seen = 0;
    static const char *const kinds[] = { "silence ", "drop ", "force ", "steer ", "scale ", "steer-std ",
                                         "raise ", "lower ", "top-k ", "ser " };
    for (int trial = 0; trial < 400; trial++) {
        int L = 1 + (int)(rng_next(&st) % 6), E = 2 + (int)(rng_next(&st) % 15);
        MsIntervention *a = random_set(&st, L, E, 1 + (int)(rng_next(&st) % 20));
        char *t1 = ms_intervention_to_string(a);
        MsIntervention *b = ms_intervention_new(L, E);
        MsError err;
        ms_error_clear(&err);
        int rc = t1 ? ms_intervention_parse_text(b, t1, &err) : -1;
        char *t2 = ms_intervention_to_string(b);
        bool eq = rc == 0 && ms_intervention_equal(a, b);
        bool same = t1 && t2 && !strcmp(t1, t2);
        if ((!eq || !same) && eq_ok && txt_ok)
            mt_diag("round trip %d: '%s' -> '%s' (rc %d %s)", trial, t1 ? t1 : "", t2 ? t2 : "", rc, err.msg);
        eq_ok &= eq;
        txt_ok &= same;
        n_sets++;
        n_nonempty += !ms_intervention_is_empty(a);
        for (size_t i = 0; t1 && i < MS_ARRAY_LEN(kinds); i++) {
            char mid[32];
            snprintf(mid, sizeof mid, "; %s", kinds[i]);
            if (!strncmp(t1, kinds[i], strlen(kinds[i])) || strstr(t1, mid)) kinds_seen |= 1 << i;
        }
        free(t1);
        free(t2);
        ms_intervention_free(a);
        ms_intervention_free(b);
    }
    MT_CHECK(kinds_seen == (1 << MS_ARRAY_LEN(kinds)) - 1, "the random sets use all 10 operators (mask %#x)",
             kinds_seen);
    MT_CHECK(eq_ok, "%d random sets (%d non-empty): parse(print(set)) equals set", n_sets, n_nonempty);
    MT_CHECK(txt_ok, "print(parse(print(set))) == print(set)");

    /* ser text forms */
    struct { const char *in, *want; } sv[] = {
        { "ser 3:2:0.5", "ser 3:2:0.5" },
        { "ser *:2:0.5", "ser *:2:0.5" },
        { "ser 2:0.5", "ser *:2:0.5" },
        { "ser 0-1:1:0; ser 3:1:0", "ser 0-1,3:1:0" },
        { "ser 0:1:1 1:2:0.25", "ser 0:1:1 1:2:0.25" },
        { "top-k 2; ser 2:2:1e-1", "top-k 2; ser 2:2:0.1" },
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(sv); i++) {
        MsIntervention *iv = ms_intervention_new(4, 8);
        MsError err;
        int rc = ms_intervention_parse_text(iv, sv[i].in, &err);
        char *t = ms_intervention_to_string(iv);
        MT_CHECK(rc == 0 && t && !strcmp(t, sv[i].want), "'%s' prints '%s' (got '%s'%s%s)", sv[i].in, sv[i].want,
                 t ? t : "", rc ? ", " : "", rc ? err.msg : "");
        free(t);
        ms_intervention_free(iv);
    }

    /* ser errors: one line naming the spec, set unchanged */
    struct { const char *spec, *want; } bad[] = {
        { "5:0.5", "5:0.5" }, { "9:0.5", "KMIN 9" }, { "0:0.5", "KMIN 0" }, { "2:1.5", "'1.5'" },
        { "2:-0.1", "'-0.1'" }, { "2:nan", "'nan'" }, { "2:", "threshold" }, { "2", "KMIN:T" },
        { "a:0.5", "KMIN" }, { "1:2:3:4", "KMIN:T" }, { "4:1:0.5", "layer 4" }, { "*:x:0.5", "KMIN" },
    };
    MsIntervention *iv = ms_intervention_new(4, 8);
    ms_intervention_top_k(iv, -1, 4);
    ms_intervention_parse(iv, "top-k", "1:2", NULL);
    char *before = ms_intervention_to_string(iv);
    for (size_t i = 0; i < MS_ARRAY_LEN(bad); i++) {
        MsError err;
        ms_error_clear(&err);
        int rc = ms_intervention_parse(iv, "ser", bad[i].spec, &err);
        char *now = ms_intervention_to_string(iv);
        MT_CHECK(rc < 0 && err.code == rc && one_line(&err) && strstr(err.msg, "--ser") && strstr(err.msg, bad[i].spec) &&
                     strstr(err.msg, bad[i].want) && now && !strcmp(now, before),
                 "--ser %s: one-line error naming the spec and '%s', set unchanged (%s)", bad[i].spec, bad[i].want,
                 err.msg);
        free(now);
    }
    MsError err;
    MT_CHECK(ms_intervention_parse(iv, "ser", "3:0.5", &err) < 0 && strstr(err.msg, "layer 1") &&
                 strstr(err.msg, "top-k") && one_line(&err),
             "--ser 3:0.5 with top-k 1:2: KMIN above k at layer 1 (%s)", err.msg);
    free(before);
    ms_intervention_free(iv);
}

static void write_text(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(s, 1, n, f);
        fclose(f);
    }
}

static void test_text_file(void)
{
    const char *text =
        "# a plan, with comments\n"
        "silence 0:1   # trailing comment; force 1:2 is commented out\n"
        "\n"
        "   # indented comment\r\n"
        "steer 0-1:3:+1.5 2:4:-0.5; ser *:1:0.25\r\n"
        "top-k 2:3 ;; raise 1:0\t# tab before the comment\n"
        "#\n";
    MsIntervention *a = ms_intervention_new(3, 8), *want = ms_intervention_new(3, 8);
    MsError err;
    ms_error_clear(&err);
    int rc = ms_intervention_parse_text(a, text, &err);
    ms_intervention_silence(want, 0, 1);
    ms_intervention_bias(want, 0, 3, 1.5f);
    ms_intervention_bias(want, 1, 3, 1.5f);
    ms_intervention_bias(want, 2, 4, -0.5f);
    ms_intervention_ser(want, -1, 1, 0.25f);
    ms_intervention_top_k(want, 2, 3);
    ms_intervention_raise(want, 1, 0, 0.01f);
    MT_CHECK(rc == 0 && ms_intervention_equal(a, want), "'#' comments, blank lines, CRLF, ';;' and tabs (%s)",
             rc ? err.msg : "ok");
    MT_CHECK(ms_intervention_parse_text(a, "# only a comment\n\n", &err) == 0 &&
                 ms_intervention_parse_text(a, "", &err) == 0 && ms_intervention_equal(a, want),
             "comment-only and empty texts change nothing");

    /* errors: by line in a text, "PATH:LINE: problem" from a file, all or nothing */
    MsIntervention *keep = ms_intervention_copy(a);
    ms_error_clear(&err);
    rc = ms_intervention_parse_text(a, "silence 0:1\n# two\nforce 2:1\ndrop 0:99 # bad\n", &err);
    MT_CHECK(rc < 0 && !strncmp(err.msg, "line 4: drop 0:99: ", 19) && strstr(err.msg, "expert 99") && one_line(&err),
             "text error names line 4 and the spec (%s)", err.msg);
    MT_CHECK(ms_intervention_equal(a, keep), "and leaves the set unchanged (force 2:1 of line 3 not applied)");
    /* invalid UTF-8 is refused wherever it is, as a file refuses it (a fuzz finding) */
    rc = ms_intervention_parse_text(a, "silence 0:1\n# com\xe1" "ent\n", &err);
    MT_CHECK(rc < 0 && strstr(err.msg, "line 2, column 6: invalid UTF-8 (byte 0xe1)") && one_line(&err) &&
                 ms_intervention_equal(a, keep),
             "invalid UTF-8 in a comment is refused with its line and column (%s)", err.msg);
    rc = ms_intervention_parse_text(a, "silence 0:1; bogus 1:2", &err);
    MT_CHECK(rc < 0 && strstr(err.msg, "bogus") && !strstr(err.msg, "line "), "one-line text: no line number (%s)",
             err.msg);
    rc = ms_intervention_parse_text(a, "silence 0:1\nsilence\n", &err);
    MT_CHECK(rc < 0 && !strncmp(err.msg, "line 2: ", 8) && strstr(err.msg, "without a spec"),
             "kind without a spec on line 2 (%s)", err.msg);

    char path[600];
    snprintf(path, sizeof path, "%s/plan.txt", mt_tmpdir());
    write_text(path, text, strlen(text));
    MsIntervention *f = ms_intervention_new(3, 8);
    rc = ms_intervention_load(f, path, &err);
    MT_CHECK(rc == 0 && ms_intervention_equal(f, want), "load: the same text from a file (%s)", rc ? err.msg : "ok");
    const char *badtext = "# header\nsilence 0:1\n\nser 1:7:0.5  # fine: no override at layer 1\n"
                          "steer 0:1:abc\n";
    write_text(path, badtext, strlen(badtext));
    MsIntervention *g = ms_intervention_copy(want);
    ms_error_clear(&err);
    rc = ms_intervention_load(g, path, &err);
    char pre[700];
    snprintf(pre, sizeof pre, "%s:5: steer 0:1:abc: ", path);
    MT_CHECK(rc < 0 && !strncmp(err.msg, pre, strlen(pre)) && one_line(&err) && ms_intervention_equal(g, want),
             "load: error is 'PATH:5: steer 0:1:abc: problem', set unchanged (%s)", err.msg);
    write_text(path, "silence 0:1\0force 1:1\n", 23);
    rc = ms_intervention_load(g, path, &err);
    MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, path) && strstr(err.msg, "NUL"), "load: NUL byte refused (%s)",
             err.msg);
    snprintf(pre, sizeof pre, "%s/missing.txt", mt_tmpdir());
    rc = ms_intervention_load(g, pre, &err);
    MT_CHECK(rc == MS_EIO && strstr(err.msg, "missing.txt") && one_line(&err), "load: missing file (%s)", err.msg);
    ms_intervention_free(a);
    ms_intervention_free(keep);
    ms_intervention_free(want);
    ms_intervention_free(f);
    ms_intervention_free(g);
}

/* -------------------------------------------------- ser through the engine */

#define NT 24
#define ML 4
#define MK 4

typedef struct {
    int k[ML];
    bool n_used_null[ML];
    int32_t nu[ML][NT];
    int32_t ids[ML][NT][MK];
    float w[ML][NT][MK], mx[ML][NT][MK];
    int32_t am[ML][NT][MK];
    float probs[ML][NT][8], logits[ML][NT][8];
    float *out;
    MsObserver inner;   /* also fed (the trace writer), or zeroed */
    long n_used_sum;
} Cap;

static void cap_routing(void *user, const MsRoutingEvent *ev)
{
    Cap *c = user;
    if (c->inner.on_routing) c->inner.on_routing(c->inner.user, ev);
    if (ev->layer < 0 || ev->layer >= ML || ev->k > MK || ev->n_expert != 8) return;
    c->k[ev->layer] = ev->k;
    c->n_used_null[ev->layer] = ev->n_used == NULL;
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0 || p >= NT) continue;
        c->nu[ev->layer][p] = ev->n_used ? ev->n_used[t] : ev->k;
        c->n_used_sum += c->nu[ev->layer][p];
        for (int j = 0; j < ev->k; j++) {
            c->ids[ev->layer][p][j] = ev->experts[t * ev->k + j];
            c->w[ev->layer][p][j] = ev->weights[t * ev->k + j];
            c->mx[ev->layer][p][j] = ev->out_maxabs[t * ev->k + j];
            c->am[ev->layer][p][j] = ev->out_argmax[t * ev->k + j];
        }
        memcpy(c->probs[ev->layer][p], ev->probs + (size_t)t * 8, sizeof(float) * 8);
        memcpy(c->logits[ev->layer][p], ev->logits + (size_t)t * 8, sizeof(float) * 8);
    }
}

static void cap_hidden(void *user, const MsHiddenEvent *ev)
{
    Cap *c = user;
    if (c->inner.on_hidden) c->inner.on_hidden(c->inner.user, ev);
}

static int run_cap(MsContext *ctx, const MsIntervention *iv, const int32_t *tok, Cap *c, MsError *err)
{
    memset(c->k, 0, sizeof c->k);
    c->n_used_sum = 0;
    ms_context_reset(ctx);
    int rc = ms_context_set_intervention(ctx, iv, err);
    if (rc) return rc;
    MsObserver o = { cap_routing, cap_hidden, c };
    ms_context_set_observer(ctx, &o);
    rc = ms_context_eval(ctx, tok, NT, c->out, true, err);
    ms_context_set_observer(ctx, NULL);
    return rc;
}

/* Same routing (ids, weights, logits) at every MoE layer and same model logits. */
static bool same_run(const Cap *a, const Cap *b, int n_layer, size_t out_bytes)
{
    for (int l = 0; l < n_layer; l++) {
        if (a->k[l] != b->k[l]) return false;
        if (memcmp(a->ids[l], b->ids[l], sizeof a->ids[l]) || memcmp(a->w[l], b->w[l], sizeof a->w[l]) ||
            memcmp(a->logits[l], b->logits[l], sizeof a->logits[l]))
            return false;
    }
    return !memcmp(a->out, b->out, out_bytes);
}

typedef struct { long n; } Count;
static int count_row(void *user, int n, const char *const *names, const char *const *vals)
{
    Count *c = user;
    c->n = vals[n - 1] ? atol(vals[n - 1]) : -1;
    (void)names;
    return 0;
}

static void test_engine_arch(const char *arch)
{
    char path[600];
    snprintf(path, sizeof path, "%s/ser-%s.gguf", mt_tmpdir(), arch);
    MsSynthParams sp = ms_synth_default_params();
    sp.arch = arch;
    sp.n_layer = ML - 1;
    sp.n_embd = 64;
    sp.n_head = 4;
    sp.n_head_kv = strcmp(arch, "olmoe") && strcmp(arch, "deepseek2") ? 2 : 0;
    sp.n_expert = 8;
    sp.n_expert_used = MK;
    sp.n_ff = 32;
    sp.n_vocab = 400;
    sp.seed = 11;
    MsError err;
    ms_error_clear(&err);
    if (!MT_CHECK(ms_synth_write(path, &sp, &err) == 0, "%s: synth model written (%s)", arch, err.msg)) return;
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", arch, err.msg)) return;
    const MsModelInfo *mi = ms_model_info(m);
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.n_batch = 10;   /* several micro-batches */
    MsContext *ctx = ms_context_new(m, &cp, &err);
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (int32_t)("Threshold routing, KMIN!"[i] & 0xff);
    size_t out_bytes = sizeof(float) * NT * (size_t)mi->n_vocab;
    Cap *base = calloc(1, sizeof *base), *r = calloc(1, sizeof *r), *r2 = calloc(1, sizeof *r2);
    base->out = malloc(out_bytes);
    r->out = malloc(out_bytes);
    r2->out = malloc(out_bytes);
    MsIntervention *iv = ms_intervention_new(mi->n_layer, mi->n_expert);
    int L0 = -1;
    for (int l = 0; l < mi->n_layer && L0 < 0; l++)
        if (ms_model_layer_is_moe(m, l)) L0 = l;
    if (!MT_CHECK(ctx && run_cap(ctx, NULL, tok, base, &err) == 0 && L0 >= 0, "%s: baseline run (%s)", arch, err.msg))
        goto out;
    MT_CHECK(base->n_used_null[L0], "%s: no ser: the event's n_used is NULL", arch);

    /* T = 0: exactly the plain run */
    int t0 = 1;
    for (int kmin = 1; kmin <= MK; kmin++) {
        ms_intervention_clear(iv);
        ms_intervention_ser(iv, -1, kmin, 0.0f);
        t0 &= run_cap(ctx, iv, tok, r, &err) == 0 && same_run(base, r, mi->n_layer, out_bytes) && r->n_used_null[L0];
    }
    MT_CHECK(t0, "%s: ser KMIN:0 for KMIN 1..%d: routing (ids, weights, logits) and model logits identical to no "
             "ser, every token used k", arch, MK);

    /* T = 1, KMIN 1: one expert per token, the others listed after it, not computed; the
     * model output equals top-k 1 exactly (same expert, same weight, whatever norm_w) */
    ms_intervention_clear(iv);
    ms_intervention_ser(iv, -1, 1, 1.0f);
    int rc = run_cap(ctx, iv, tok, r, &err);
    ms_intervention_clear(iv);
    ms_intervention_top_k(iv, -1, 1);
    int rc2 = run_cap(ctx, iv, tok, r2, &err);
    bool one = rc == 0 && rc2 == 0, listed = true;
    for (int l = 0; l < mi->n_layer; l++) {
        if (!ms_model_layer_is_moe(m, l)) continue;
        one &= !r->n_used_null[l] && r->k[l] == MK;
        for (int t = 0; t < NT; t++) {
            one &= r->nu[l][t] == 1 && r->ids[l][t][0] == r2->ids[l][t][0] && r->w[l][t][0] == r2->w[l][t][0];
            for (int j = 1; j < MK; j++) listed &= r->w[l][t][j] == 0.0f && r->mx[l][t][j] == 0.0f && r->am[l][t][j] == -1;
            bool perm = true;   /* the k listed are still the top k of the layer */
            for (int j = 0; j < MK; j++)
                for (int i = j + 1; i < MK; i++) perm &= r->ids[l][t][i] != r->ids[l][t][j];
            listed &= perm;
        }
    }
    MT_CHECK(one, "%s: ser 1:1: every token of every MoE layer used 1 expert, the one top-k 1 picks, same weight",
             arch);
    MT_CHECK(listed, "%s: the 3 left out follow it with weight 0, out_maxabs 0 and out_argmax -1 (not computed)",
             arch);
    MT_CHECK(rc == 0 && rc2 == 0 && !memcmp(r->out, r2->out, out_bytes),
             "%s: model logits under ser 1:1 equal top-k 1 bit for bit", arch);
    MT_CHECK(memcmp(r->out, base->out, out_bytes) != 0, "%s: and differ from the plain run", arch);

    /* T = 0.5, KMIN 2 at the first MoE layer only: the count per token follows the
     * baseline scores there (same input), the other layers use all k */
    ms_intervention_clear(iv);
    ms_intervention_ser(iv, L0, 2, 0.5f);
    rc = run_cap(ctx, iv, tok, r, &err);
    bool cnt_ok = rc == 0, some_less = false, some_more = false;
    for (int t = 0; t < NT && cnt_ok; t++) {
        float best = 0;
        for (int j = 0; j < MK; j++) best = fmaxf(best, base->probs[L0][t][base->ids[L0][t][j]]);
        int want = 2;
        for (int j = 2; j < MK; j++) want += base->probs[L0][t][base->ids[L0][t][j]] >= 0.5f * best;
        cnt_ok &= r->nu[L0][t] == want;
        some_less |= want == 2;
        some_more |= want > 2;
    }
    for (int l = L0 + 1; l < mi->n_layer; l++) cnt_ok &= r->n_used_null[l];
    MT_CHECK(cnt_ok, "%s: ser %d:2:0.5: experts used per token as the definition gives from the scores; other "
             "layers untouched (n_used NULL)", arch, L0);
    mt_diag("%s: ser 2:0.5 at layer %d: tokens with 2 used: %s, with more: %s", arch, L0, some_less ? "yes" : "no",
            some_more ? "yes" : "no");

    /* an in-memory comparison (jobs/) sees the experts used: at the first MoE layer the
     * input is the baseline's, ser 1:1 keeps its top expert, so every position shares
     * 1 of the baseline's k: Jaccard 1/k */
    if (!strcmp(arch, "llama")) {
        MsCompareOptions co;
        ms_compare_options_init(&co);
        co.n_gen = 4;
        co.n_threads = 2;
        MsPromptCompare pc;
        memset(&pc, 0, sizeof pc);
        ms_intervention_clear(iv);
        ms_intervention_ser(iv, -1, 1, 1.0f);
        rc = ms_compare_prompt(&co, m, iv, "The river ran past the mill.", 28, &pc, &err);
        const MsCompareLayer *cl = rc == 0 && pc.n_layers > 0 ? &pc.layers[0] : NULL;
        MT_CHECK(cl && cl->layer == L0 && cl->n_pos > 0 && cl->n_changed == cl->n_pos &&
                     fabs(cl->jaccard_sum / cl->n_pos - 1.0 / MK) < 1e-12,
                 "llama: compare_prompt with ser 1:1: routing shift at layer %d is Jaccard 1/%d at every position "
                 "(%s: %g over %d)", L0, MK, rc ? err.msg : "ok", cl ? cl->jaccard_sum / cl->n_pos : -1.0,
                 cl ? cl->n_pos : 0);
        ms_prompt_compare_clear(&pc);
    }

    /* validation against the model's k */
    ms_intervention_clear(iv);
    ms_intervention_ser(iv, -1, MK + 1, 0.5f);
    ms_error_clear(&err);
    MT_CHECK(ms_context_set_intervention(ctx, iv, &err) == MS_EINVAL && strstr(err.msg, "ser") && one_line(&err),
             "%s: ser KMIN %d above the model's k %d refused (%s)", arch, MK + 1, MK, err.msg);
    ms_context_set_intervention(ctx, NULL, NULL);

    /* a trace with ser stores the reduced counts */
    if (!strcmp(arch, "llama")) {
        ms_error_clear(&err);
        char dbp[700];
        snprintf(dbp, sizeof dbp, "%s/ser.db", mt_tmpdir());
        MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_CREATE, &err);
        MsTraceModel tm;
        int64_t run = -1;
        MsTraceWriter *w = NULL;
        ms_intervention_clear(iv);
        ms_intervention_ser(iv, -1, 1, 0.5f);
        char *ivs = ms_intervention_to_string(iv);
        if (db && ms_trace_model_from_engine(&tm, m, path, &err) == 0) {
            tm.model_id = ms_trace_model_add(db, &tm, &err);
            MsTraceRunDesc d = { .model_id = tm.model_id, .kind = "trace", .interventions = ivs, .has_stats = true };
            run = tm.model_id > 0 ? ms_trace_run_new(db, &d, &err) : -1;
            w = run > 0 ? ms_trace_writer_new(db, run, &err) : NULL;
        }
        bool wrote = false;
        if (w) {
            r->inner = ms_trace_writer_observer(w);
            wrote = ms_trace_writer_begin(w, 0, "x", 1, NULL, &err) == 0;
            for (int t = 0; t < NT && wrote; t++)
                wrote = ms_trace_writer_token(w, t, tok[t], "x", 1, false, NAN, NAN, &err) == 0;
            wrote = wrote && run_cap(ctx, iv, tok, r, &err) == 0 && ms_trace_writer_commit(w, NULL, &err) == 0;
            r->inner = (MsObserver){ 0 };
        }
        if (MT_CHECK(wrote, "llama: traced with ser 1:0.5 (%s)", err.msg)) {
            Count c = { -1 };
            ms_trace_query(db, "SELECT count(*) FROM routing", count_row, &c, &err);
            long n_moe = 0, reduced = 0;
            for (int l = 0; l < mi->n_layer; l++) n_moe += ms_model_layer_is_moe(m, l);
            for (int l = 0; l < mi->n_layer; l++)
                for (int t = 0; t < NT; t++) reduced += ms_model_layer_is_moe(m, l) && r->nu[l][t] < MK;
            MT_CHECK(c.n == r->n_used_sum && c.n < n_moe * NT * MK && reduced > 0,
                     "routing view: %ld rows = experts used (%ld), fewer than tokens x layers x k (%ld); %ld "
                     "token-layers reduced", c.n, r->n_used_sum, n_moe * NT * MK, reduced);
            Count s = { -1 };
            ms_trace_query(db, "SELECT count(*) FROM expert_stats", count_row, &s, &err);
            MT_CHECK(s.n == r->n_used_sum, "expert_stats view: one row per used expert (%ld)", s.n);
            MsTraceCursor *cur = ms_trace_routing(db, run, 0, &err);
            MsTraceRoutePacked pk;
            int prc, rows = 0, rows_ok = 1;
            while (cur && (prc = ms_trace_routing_next_packed(cur, &pk, &err)) == 1) {
                rows++;
                if (pk.layer < 0 || pk.layer >= ML || pk.pos < 0 || pk.pos >= NT) { rows_ok = 0; continue; }
                rows_ok &= pk.k == r->nu[pk.layer][pk.pos];
                for (int j = 0; j < pk.k; j++)
                    rows_ok &= (pk.experts[2 * j] | pk.experts[2 * j + 1] << 8) == r->ids[pk.layer][pk.pos][j];
            }
            ms_trace_cursor_free(cur);
            MT_CHECK(rows == n_moe * NT && rows_ok,
                     "packed reader: %d rows, each with the token's used experts in rank order", rows);
            MsTraceRoute rb[64];
            cur = ms_trace_routing(db, run, 0, &err);
            long n_rows = 0;
            int got, rank_ok = 1;
            while (cur && (got = ms_trace_routing_next(cur, rb, 64, &err)) > 0)
                for (int i = 0; i < got; i++, n_rows++) rank_ok &= rb[i].rank < r->nu[rb[i].layer][rb[i].pos];
            ms_trace_cursor_free(cur);
            MT_CHECK(n_rows == r->n_used_sum && rank_ok, "chunked reader: %ld rows, ranks below the used count",
                     n_rows);
        }
        ms_trace_writer_free(w);
        ms_trace_close(db);
        free(ivs);
    }
out:
    ms_intervention_free(iv);
    free(base->out);
    free(r->out);
    free(r2->out);
    free(base);
    free(r);
    free(r2);
    ms_context_free(ctx);
    ms_model_free(m);
}

int main(void)
{
    test_expert_ops();
    test_ser_router();
    test_text_roundtrip();
    test_text_file();
    test_engine_arch("llama");      /* norm_w: kept weights renormalised */
    test_engine_arch("olmoe");      /* no norm_w */
    test_engine_arch("deepseek2");  /* leading dense block, w_scale 1.5 */
    return mt_done();
}
