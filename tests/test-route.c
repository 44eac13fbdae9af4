/* test-route.c — the router (route.h), the intervention set and its text
 * form, and the sampler, on hand-built arrays.  Expected values come from
 * the definitions (a double-precision softmax written here, hand-ranked
 * selections), never from running the code under test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <jansson.h>

#include "gguf.h"
#include "mtest.h"
#include "route.h"

#define E6 6
/* ranks by logit: 1 (3.0), 4 (2.5), 2 (2.0), 0 (1.0), 3 (0.5), 5 (-1.0) */
static const float base6[E6] = { 1.0f, 3.0f, 2.0f, 0.5f, 2.5f, -1.0f };

static void ref_softmax(const float *x, int n, double *p)
{
    double m = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++) m = fmax(m, x[i]);
    for (int i = 0; i < n; i++) s += (p[i] = exp((double)x[i] - m));
    for (int i = 0; i < n; i++) p[i] /= s;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

typedef struct {
    int k;
    int32_t ids[E6];
    float w[E6];
    float probs[E6];
    float logits[E6];
} Out;

/* Route the base row at `layer` and return the result. */
static Out run(const MsRouteCfg *cfg, const MsIntervention *iv, int layer, const float *row)
{
    Out o;
    memset(&o, 0, sizeof o);
    memcpy(o.logits, row, sizeof(float) * (size_t)cfg->n_expert);
    o.k = ms_route_k(cfg, iv, layer);
    ms_route(cfg, iv, layer, 1, o.logits, o.probs, o.ids, o.w);
    return o;
}

/* ids equal exp_ids and weights equal exp_w (within 1e-6). */
static int same(const Out *o, int k, const int *exp_ids, const double *exp_w)
{
    if (o->k != k) return 0;
    for (int j = 0; j < k; j++)
        if (o->ids[j] != exp_ids[j] || !near(o->w[j], exp_w[j])) return 0;
    return 1;
}

static MsRouteCfg cfg6(int k, MsGating g, bool norm, float scale, const float *selb)
{
    MsRouteCfg c = { .n_expert = E6, .k = k, .gating = g, .norm_w = norm, .w_scale = scale, .sel_bias = selb };
    return c;
}

static void test_router(void)
{
    double p[E6];
    ref_softmax(base6, E6, p);
    MsRouteCfg c = cfg6(2, MS_GATING_SOFTMAX, false, 1.0f, NULL);
    MsIntervention *iv = ms_intervention_new(2, E6);

    Out o = run(&c, NULL, 0, base6);
    int ids0[] = { 1, 4 };
    MT_CHECK(same(&o, 2, ids0, (double[]){ p[1], p[4] }), "plain softmax top-2 = {1,4} with weights p1,p4");
    int pok = 1;
    for (int e = 0; e < E6; e++) pok &= near(o.probs[e], p[e]) && o.logits[e] == base6[e];
    MT_CHECK(pok, "probs = softmax of logits, logits untouched");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ p[1], p[4] }), "empty intervention = no intervention");

    /* silence: next expert takes the slot, probs unchanged */
    MT_CHECK(ms_intervention_silence(iv, 0, 1) == 0, "silence 0:1 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 4, 2 }, (double[]){ p[4], p[2] }), "silence rank-0 expert: set {4,2}, weights p4,p2");
    MT_CHECK(near(o.probs[1], p[1]), "silenced expert keeps its probability");
    o = run(&c, iv, 1, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ p[1], p[4] }), "silence at layer 0 leaves layer 1 alone");
    MsRouteCfg cn = cfg6(2, MS_GATING_SOFTMAX, true, 1.0f, NULL);
    o = run(&cn, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 4, 2 }, (double[]){ p[4] / (p[4] + p[2]), p[2] / (p[4] + p[2]) }),
             "silence + norm_w renormalises over the new set");
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_is_empty(iv), "clear empties the set");

    /* drop: same set, weight 0, no renormalisation */
    MT_CHECK(ms_intervention_drop(iv, 0, 4) == 0, "drop 0:4 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ p[1], 0.0 }), "drop keeps {1,4}, zeroes 4's weight");
    o = run(&cn, iv, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ p[1] / (p[1] + p[4]), 0.0 }),
             "drop after norm_w: remaining weight not renormalised");
    ms_intervention_clear(iv);

    /* force */
    MT_CHECK(ms_intervention_force(iv, 0, 5) == 0, "force 0:5 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 5, 1 }, (double[]){ p[5], p[1] }), "force worst expert: rank 0, then best other");
    MT_CHECK(ms_intervention_force(iv, 0, 3) == 0, "force 0:3 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 3, 5 }, (double[]){ p[3], p[5] }), "two forced ranked among themselves by score");
    MT_CHECK(ms_intervention_top_k(iv, 0, 1) == MS_EINVAL, "top-k below the forced count rejected");
    MT_CHECK(ms_intervention_silence(iv, 0, 3) == MS_EINVAL, "silencing a forced expert rejected");
    MsError err;
    ms_error_clear(&err);
    MT_CHECK(ms_intervention_validate(iv, 2, E6, 1, &err) == MS_EINVAL && strstr(err.msg, "forced"),
             "validate: 2 forced with model k 1 rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_validate(iv, 2, E6, 2, &err) == 0, "validate: 2 forced with k 2 ok");
    MT_CHECK(ms_intervention_validate(iv, 3, E6, 2, &err) == MS_EINVAL, "validate: wrong layer count rejected");
    ms_intervention_clear(iv);

    /* steering bias: added to logits before softmax; weights follow */
    MT_CHECK(ms_intervention_bias(iv, 0, 0, 3.0f) == 0, "steer 0:0:+3 accepted");
    MT_CHECK(ms_intervention_bias(iv, 0, 0, NAN) == MS_EINVAL, "NaN bias rejected");
    MT_CHECK(ms_intervention_bias(iv, 0, 0, INFINITY) == MS_EINVAL, "inf bias rejected");
    float b6[E6];
    memcpy(b6, base6, sizeof b6);
    b6[0] += 3.0f;
    double pb[E6];
    ref_softmax(b6, E6, pb);
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 0, 1 }, (double[]){ pb[0], pb[1] }), "bias +3 on expert 0 moves it to rank 0");
    pok = 1;
    for (int e = 0; e < E6; e++) pok &= near(o.probs[e], pb[e]) && o.logits[e] == b6[e];
    MT_CHECK(pok, "observed logits = raw + bias, probs = softmax of them");
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_bias(iv, 0, 1, -1.0f) == 0, "steer 0:1:-1 accepted");
    memcpy(b6, base6, sizeof b6);
    b6[1] -= 1.0f;
    ref_softmax(b6, E6, pb);
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 4, 1 }, (double[]){ pb[4], pb[1] }), "bias -1 on expert 1 drops it to rank 1");
    ms_intervention_clear(iv);

    /* scale after norm and w_scale */
    MT_CHECK(ms_intervention_scale(iv, 0, 1, 0.5f) == 0, "scale 0:1:0.5 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ 0.5 * p[1], p[4] }), "scale halves expert 1's weight");
    MsRouteCfg cns = cfg6(2, MS_GATING_SOFTMAX, true, 2.5f, NULL);
    double s14 = p[1] + p[4];
    o = run(&cns, iv, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ 2.5 * 0.5 * p[1] / s14, 2.5 * p[4] / s14 }),
             "scale applies after norm_w and w_scale");
    ms_intervention_clear(iv);

    /* top-k override: global and per layer */
    MT_CHECK(ms_intervention_top_k(iv, -1, 3) == 0, "global top-k 3 accepted");
    MT_CHECK(ms_intervention_top_k(iv, 1, 1) == 0, "layer-1 top-k 1 accepted");
    o = run(&c, iv, 0, base6);
    MT_CHECK(same(&o, 3, (int[]){ 1, 4, 2 }, (double[]){ p[1], p[4], p[2] }), "global k=3 at layer 0");
    o = run(&c, iv, 1, base6);
    MT_CHECK(same(&o, 1, (int[]){ 1 }, (double[]){ p[1] }), "per-layer k=1 at layer 1");
    MT_CHECK(ms_intervention_top_k(iv, 0, 0) == MS_ERANGE && ms_intervention_top_k(iv, 0, 7) == MS_ERANGE &&
             ms_intervention_top_k(iv, 2, 2) == MS_ERANGE, "k outside 1..E or bad layer rejected");
    o = run(&cn, iv, 0, base6);
    double s3 = p[1] + p[4] + p[2];
    MT_CHECK(same(&o, 3, (int[]){ 1, 4, 2 }, (double[]){ p[1] / s3, p[4] / s3, p[2] / s3 }),
             "k override with norm_w normalises over the k chosen");
    ms_intervention_clear(iv);

    /* combination: k=3, force 5, silence 1, drop 4 */
    MT_CHECK(ms_intervention_top_k(iv, 0, 3) == 0 && ms_intervention_force(iv, 0, 5) == 0 &&
             ms_intervention_silence(iv, 0, 1) == 0 && ms_intervention_drop(iv, 0, 4) == 0,
             "combined set accepted");
    o = run(&cn, iv, 0, base6);
    double sc = p[5] + p[4] + p[2];
    MT_CHECK(same(&o, 3, (int[]){ 5, 4, 2 }, (double[]){ p[5] / sc, 0.0, p[2] / sc }),
             "force+silence+drop+k: {5,4,2}, 4 zeroed after norm");
    ms_intervention_clear(iv);

    /* sigmoid gating, norm, w_scale */
    MsRouteCfg cs = cfg6(2, MS_GATING_SIGMOID, false, 1.0f, NULL);
    double sg[E6];
    for (int e = 0; e < E6; e++) sg[e] = 1.0 / (1.0 + exp(-(double)base6[e]));
    o = run(&cs, NULL, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ sg[1], sg[4] }), "sigmoid gating: weights sigmoid(logit)");
    pok = 1;
    for (int e = 0; e < E6; e++) pok &= near(o.probs[e], sg[e]);
    MT_CHECK(pok, "sigmoid probs per expert");
    cs.norm_w = true;
    cs.w_scale = 2.5f;
    o = run(&cs, NULL, 0, base6);
    MT_CHECK(same(&o, 2, ids0, (double[]){ 2.5 * sg[1] / (sg[1] + sg[4]), 2.5 * sg[4] / (sg[1] + sg[4]) }),
             "sigmoid + norm_w + w_scale 2.5");

    /* selection bias: changes the set, not the weights */
    const float selb[E6] = { 0, 0, 0, 0, 0, 1.0f };
    MsRouteCfg cb = cfg6(2, MS_GATING_SIGMOID, false, 1.0f, selb);
    o = run(&cb, NULL, 0, base6);
    MT_CHECK(same(&o, 2, (int[]){ 5, 1 }, (double[]){ sg[5], sg[1] }), "sel_bias selects 5 first, weight unbiased");
    MT_CHECK(near(o.probs[5], sg[5]), "sel_bias does not leak into probs");

    /* ties: lower index first */
    const float tie[E6] = { 0, 0, 0, 0, 0, 0 };
    o = run(&c, NULL, 0, tie);
    MT_CHECK(same(&o, 2, (int[]){ 0, 1 }, (double[]){ 1.0 / 6, 1.0 / 6 }), "all equal: {0,1}");
    const float tie2[E6] = { 2, 2, 3, 3, 1, 1 };
    MsRouteCfg c3 = cfg6(3, MS_GATING_SOFTMAX, false, 1.0f, NULL);
    o = run(&c3, NULL, 0, tie2);
    MT_CHECK(o.ids[0] == 2 && o.ids[1] == 3 && o.ids[2] == 0, "ties broken by lower id: {2,3,0}");

    /* several tokens in one call, row by row */
    float two[2 * E6], pr[2 * E6], w2[4];
    int32_t id2[4];
    memcpy(two, base6, sizeof base6);
    memcpy(two + E6, tie2, sizeof tie2);
    ms_route(&c, NULL, 0, 2, two, pr, id2, w2);
    MT_CHECK(id2[0] == 1 && id2[1] == 4 && id2[2] == 2 && id2[3] == 3, "two tokens routed independently");

    /* inconsistent set (model k unknown to the setters): route still valid */
    MsIntervention *bad = ms_intervention_new(1, E6);
    for (int e = 0; e < 5; e++) ms_intervention_silence(bad, 0, e);
    MT_CHECK(ms_intervention_silence(bad, 0, 5) == MS_EINVAL, "silencing every expert rejected");
    ms_error_clear(&err);
    MT_CHECK(ms_intervention_validate(bad, 1, E6, 2, &err) == MS_EINVAL && strstr(err.msg, "unsilenced"),
             "validate: 1 unsilenced with k 2 rejected (%s)", err.msg);
    o = run(&c, bad, 0, base6);
    MT_CHECK(o.ids[0] == 5 && o.ids[1] >= 0 && o.ids[1] < 5 && o.w[1] == 0.0f && near(o.w[0], p[5]),
             "too few candidates: open expert first, filler at weight 0");
    MsRouteCfg c8 = { .n_expert = 8, .k = 2, .gating = MS_GATING_SOFTMAX, .w_scale = 1.0f };
    float row8[8] = { 0 }, p8[8], w8[2];
    int32_t i8[2];
    ms_route(&c8, bad, 0, 1, row8, p8, i8, w8);
    MT_CHECK(i8[0] == 0 && i8[1] == 1, "set of another shape is ignored");
    ms_intervention_free(bad);
    ms_intervention_free(iv);
}

static char *print_parsed(int L, int E, const char *const *kinds, const char *const *specs, int n, int *rc)
{
    MsIntervention *iv = ms_intervention_new(L, E);
    *rc = 0;
    for (int i = 0; i < n && !*rc; i++) *rc = ms_intervention_parse(iv, kinds[i], specs[i], NULL);
    char *s = ms_intervention_to_string(iv);
    ms_intervention_free(iv);
    return s;
}

static void test_text(void)
{
    struct {
        const char *kinds[4], *specs[4];
        int n;
        const char *want;
    } cases[] = {
        { { "drop" }, { "0,2-3:*" }, 1, "drop 0,2-3:*" },
        { { "silence" }, { "0,2-3:1-3,5" }, 1, "silence 0,2-3:1-3,5" },
        { { "steer" }, { "*:5:-2.5" }, 1, "steer *:5:-2.5" },
        { { "steer" }, { "0-2:7:1.5" }, 1, "steer 0-2:7:+1.5" },
        { { "silence", "drop" }, { "3:5", "1:0,1,2,9" }, 2, "silence 3:5; drop 1:0-2,9" },
        { { "force", "silence" }, { "0:1", "0:2,3" }, 2, "silence 0:2-3; force 0:1" },
        { { "scale", "scale" }, { "0,1:4:0.5", "1:6:0.5" }, 2, "scale 0:4:0.5 1:4,6:0.5" },
        { { "top-k" }, { "2" }, 1, "top-k 2" },
        { { "top-k", "top-k" }, { "3", "1,2:1" }, 2, "top-k 0,3:3 1-2:1" },
        { { "steer", "steer" }, { "*:*:0.1", "2:3:0" }, 2, "steer 0-1,3:*:+0.1 2:0-2,4-15:+0.1" },
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        int rc;
        char *s = print_parsed(4, 16, cases[i].kinds, cases[i].specs, cases[i].n, &rc);
        MT_CHECK(rc == 0 && s && strcmp(s, cases[i].want) == 0, "text form '%s' (got '%s')", cases[i].want,
                 s ? s : "(null)");
        free(s);
    }
    MsIntervention *iv = ms_intervention_new(4, 16);
    char *s = ms_intervention_to_string(iv);
    MT_CHECK(s && strcmp(s, "") == 0, "empty set prints as empty string");
    free(s);

    /* round trip on seeded random sets: same text and same routing */
    uint64_t st = 12345;
    int rt_ok = 1;
    for (int trial = 0; trial < 200; trial++) {
        MsIntervention *a = ms_intervention_new(4, 16);
        for (int j = 0; j < 12; j++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(st >> 33);
            int l = r % 4, e = (r >> 2) % 16, op = (r >> 6) % 9;
            float v = (float)((int)((r >> 9) % 41) - 20) / 8.0f;
            switch (op) {
            case 0: ms_intervention_silence(a, l, e); break;
            case 1: ms_intervention_drop(a, l, e); break;
            case 2: ms_intervention_force(a, l, e); break;
            case 3: ms_intervention_bias(a, l, e, v); break;
            case 4: ms_intervention_scale(a, l, e, v); break;
            case 5: ms_intervention_steer_std(a, l, e, v); break;
            case 6: ms_intervention_raise(a, l, e, fabsf(v)); break;
            case 7: ms_intervention_lower(a, l, e, fabsf(v)); break;
            default: ms_intervention_top_k(a, (r >> 15) % 2 ? -1 : l, 1 + (r >> 16) % 8); break;
            }
        }
        char *t1 = ms_intervention_to_string(a);
        MsIntervention *b = ms_intervention_new(4, 16);
        MsError err;
        int rc = ms_intervention_parse_text(b, t1, &err);
        char *t2 = ms_intervention_to_string(b);
        int ok = rc == 0 && t1 && t2 && strcmp(t1, t2) == 0;
        MsRouteCfg cfg = { .n_expert = 16, .k = 4, .gating = MS_GATING_SOFTMAX, .norm_w = true, .w_scale = 1 };
        for (int l = 0; l < 4 && ok; l++) {
            float la[16], lb[16], pa[16], pb[16], wa[16], wb[16];
            int32_t ia[16], ib[16];
            for (int e = 0; e < 16; e++) la[e] = lb[e] = (float)((e * 7 + l * 3) % 11) * 0.3f;
            ms_route(&cfg, a, l, 1, la, pa, ia, wa);
            ms_route(&cfg, b, l, 1, lb, pb, ib, wb);
            int k = ms_route_k(&cfg, a, l);
            ok = k == ms_route_k(&cfg, b, l) && memcmp(ia, ib, sizeof(int32_t) * k) == 0 &&
                 memcmp(wa, wb, sizeof(float) * k) == 0;
        }
        if (!ok) {
            mt_diag("round trip failed: '%s' -> '%s' (rc %d %s)", t1 ? t1 : "", t2 ? t2 : "", rc,
                    rc ? err.msg : "");
            rt_ok = 0;
        }
        free(t1);
        free(t2);
        ms_intervention_free(a);
        ms_intervention_free(b);
        if (!rt_ok) break;
    }
    MT_CHECK(rt_ok, "200 random sets: text -> parse_text -> text identical, routing identical");

    /* malformed specs: rejected with a message naming the spec, set unchanged */
    struct { const char *kind, *spec; } badv[] = {
        { "silence", "" }, { "silence", ":" }, { "silence", "0" }, { "silence", "0:" }, { "silence", ":1" },
        { "silence", "0:1:2" }, { "silence", "a:1" }, { "silence", "1-0:2" }, { "silence", "0-:1" },
        { "silence", "-1:2" }, { "silence", "0,,1:2" }, { "silence", "0,:1" }, { "silence", ",0:1" },
        { "silence", "4:0" }, { "silence", "0:16" }, { "silence", "99999999999999999999:0" },
        { "silence", " 0:1" }, { "silence", "0:1 " }, { "silence", "0: 1" }, { "silence", "+1:2" },
        { "silence", "0:**" }, { "silence", "0:*-3" }, { "silence", "0:1-2-3" }, { "silence", "0:1:2:3:4:5" },
        { "silence", "0:*" }, { "drop", "0x1:2" }, { "force", "0:1-16" },
        { "steer", "0:1" }, { "steer", "0:1:" }, { "steer", "0:1:nan" }, { "steer", "0:1:inf" },
        { "steer", "0:1:-inf" }, { "steer", "0:1:1e999" }, { "steer", "0:1:1.5x" }, { "steer", "0:1:1,5" },
        { "steer", "0:1: 1" }, { "steer", "0:1:0x10" }, { "steer", "0:1:--1" }, { "steer", "0:1:e" },
        { "scale", "0:1" }, { "scale", "0:1:NaN" }, { "scale", "0:1:abc" }, { "scale", "*:*:1e40" },
        { "top-k", "0" }, { "top-k", "17" }, { "top-k", "0:0" }, { "top-k", "x" }, { "top-k", "1:2:3" },
        { "top-k", "-1" }, { "top-k", "4:2" }, { "top-k", ":2" }, { "top-k", "2:" }, { "top-k", "" },
        { "steering", "0:1:1" }, { "", "0:1" }, { "silence", NULL }, { NULL, "0:1" },
    };
    MT_CHECK(ms_intervention_parse(iv, "force", "1:3", NULL) == 0 &&
             ms_intervention_parse(iv, "top-k", "1:2", NULL) == 0, "setup: force 1:3, top-k 1:2");
    char *before = ms_intervention_to_string(iv);
    int all_rej = 1, all_msg = 1, unchanged = 1;
    for (size_t i = 0; i < MS_ARRAY_LEN(badv); i++) {
        MsError err;
        ms_error_clear(&err);
        int rc = ms_intervention_parse(iv, badv[i].kind, badv[i].spec, &err);
        char *now = ms_intervention_to_string(iv);
        if (rc >= 0) { all_rej = 0; mt_diag("accepted: --%s '%s'", badv[i].kind ? badv[i].kind : "(null)", badv[i].spec ? badv[i].spec : "(null)"); }
        if (rc < 0 && (err.code != rc || !err.msg[0] || !strchr(err.msg, ':'))) all_msg = 0;
        if (!now || strcmp(now, before) != 0) unchanged = 0;
        free(now);
    }
    MT_CHECK(all_rej, "%zu malformed specs all rejected", MS_ARRAY_LEN(badv));
    MT_CHECK(all_msg, "each rejection carries a 'SPEC: problem' message");
    MT_CHECK(unchanged, "a rejected spec leaves the set unchanged");
    /* consistency rules through the parser */
    MsError err;
    MT_CHECK(ms_intervention_parse(iv, "force", "1:4,5", &err) < 0 && strstr(err.msg, "forced"),
             "parser: 3 forced at k=2 rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "silence", "1:3", &err) < 0 && strstr(err.msg, "both"),
             "parser: silencing a forced expert rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "silence", "1:0-14", &err) < 0,
             "parser: leaving 1 open at k=2 rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "silence", "0-3:0-13", &err) < 0,
             "parser: rule checked at layer 1 inside a layer list");
    MT_CHECK(ms_intervention_parse(iv, "silence", "0,2,3:0-14", &err) == 0,
             "parser: 15 of 16 silenced where k is unknown accepted");
    MT_CHECK(ms_intervention_validate(iv, 4, 16, 4, &err) < 0, "but validate with model k 4 rejects it (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "top-k", "0,2-3:1", &err) == 0 && ms_intervention_validate(iv, 4, 16, 4, &err) == 0,
             "top-k 1 on those layers makes it valid");
    MT_CHECK(ms_intervention_parse_text(iv, "silence 0:1; bogus 1:2", &err) < 0 && strstr(err.msg, "bogus"),
             "parse_text: unknown kind rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_parse_text(iv, "silence", &err) < 0, "parse_text: kind without spec rejected");
    {
        MsIntervention *f = ms_intervention_new(2, E6);
        int rc = ms_intervention_parse_text(f, "silence 0:1\r\nforce 1:2;\n\nscale 0:3:0.5\n", &err);
        char *t = ms_intervention_to_string(f);
        MT_CHECK(rc == 0 && t && !strcmp(t, "silence 0:1; force 1:2; scale 0:3:0.5"),
                 "parse_text: one clause per line (CRLF, blank lines, trailing newline): '%s'", t ? t : "");
        free(t);
        ms_intervention_free(f);
    }
    free(before);

    /* copy is deep and independent */
    MsIntervention *cp = ms_intervention_copy(iv);
    char *a = ms_intervention_to_string(iv), *b = ms_intervention_to_string(cp);
    MT_CHECK(a && b && strcmp(a, b) == 0, "copy prints the same");
    ms_intervention_clear(cp);
    MT_CHECK(ms_intervention_is_empty(cp) && !ms_intervention_is_empty(iv), "clearing the copy leaves the original");
    free(a);
    free(b);
    ms_intervention_free(cp);
    ms_intervention_free(iv);
    ms_intervention_free(NULL);
    MT_CHECK(ms_intervention_new(0, 4) == NULL && ms_intervention_new(2, -1) == NULL, "bad shape -> NULL");
}

static void test_sampler(void)
{
    const float lg[8] = { 0.1f, 1.0f, 0.5f, 1.0f, -2.0f, 0.9f, 0.0f, 0.3f };
    MsSampler *a = ms_sampler_new(1.0f, 1.0f, 42), *b = ms_sampler_new(1.0f, 1.0f, 42);
    MsSampler *c = ms_sampler_new(1.0f, 1.0f, 43);
    int same_ab = 1, diff_ac = 0;
    for (int i = 0; i < 500; i++) {
        int32_t x = ms_sampler_sample(a, lg, 8), y = ms_sampler_sample(b, lg, 8), z = ms_sampler_sample(c, lg, 8);
        same_ab &= x == y;
        diff_ac += x != z;
    }
    MT_CHECK(same_ab, "same seed, same stream (500 draws)");
    MT_CHECK(diff_ac > 100, "different seeds differ (%d of 500 draws)", diff_ac);
    ms_sampler_free(a);
    ms_sampler_free(b);
    ms_sampler_free(c);

    MsSampler *g = ms_sampler_new(0.0f, 1.0f, 1);
    MT_CHECK(ms_sampler_sample(g, lg, 8) == 1, "greedy: lowest id among tied maxima");
    ms_sampler_free(g);
    g = ms_sampler_new(-1.0f, 0.5f, 1);
    const float neg[3] = { -5.0f, -1.0f, -1.0f };
    MT_CHECK(ms_sampler_sample(g, neg, 3) == 1, "negative temp is greedy too");
    ms_sampler_free(g);
    MsSampler *t = ms_sampler_new(1.0f, 1e-6f, 7);
    int all_g = 1;
    for (int i = 0; i < 200; i++) all_g &= ms_sampler_sample(t, lg, 8) == 1;
    MT_CHECK(all_g, "top_p tiny -> always the most likely (lowest id on ties)");
    ms_sampler_free(t);

    /* distribution: p = .1 .2 .3 .4, 20000 draws, each count within 5 sigma */
    const float ld[4] = { logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f) };
    MsSampler *d = ms_sampler_new(1.0f, 1.0f, 2024);
    int cnt[4] = { 0 };
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        int32_t x = ms_sampler_sample(d, ld, 4);
        if (x >= 0 && x < 4) cnt[x]++;
    }
    int dist_ok = 1;
    for (int i = 0; i < 4; i++) {
        double pi = 0.1 * (i + 1), sd = sqrt(N * pi * (1 - pi));
        dist_ok &= fabs(cnt[i] - N * pi) < 5 * sd;
    }
    MT_CHECK(dist_ok, "frequencies match .1/.2/.3/.4 (%d %d %d %d)", cnt[0], cnt[1], cnt[2], cnt[3]);
    ms_sampler_free(d);
    /* temperature 2: p ∝ sqrt(p) */
    d = ms_sampler_new(2.0f, 1.0f, 99);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[ms_sampler_sample(d, ld, 4) & 3]++;
    double zs = sqrt(0.1) + sqrt(0.2) + sqrt(0.3) + sqrt(0.4);
    dist_ok = 1;
    for (int i = 0; i < 4; i++) {
        double pi = sqrt(0.1 * (i + 1)) / zs, sd = sqrt(N * pi * (1 - pi));
        dist_ok &= fabs(cnt[i] - N * pi) < 5 * sd;
    }
    MT_CHECK(dist_ok, "temp 2 flattens as p^(1/2) (%d %d %d %d)", cnt[0], cnt[1], cnt[2], cnt[3]);
    ms_sampler_free(d);
    /* nucleus 0.5 keeps {3 (.4), 2 (.3)} in ratio 4:3 */
    d = ms_sampler_new(1.0f, 0.5f, 5);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[ms_sampler_sample(d, ld, 4) & 3]++;
    double p3 = 4.0 / 7, sd = sqrt(N * p3 * (1 - p3));
    MT_CHECK(cnt[0] == 0 && cnt[1] == 0 && fabs(cnt[3] - N * p3) < 5 * sd,
             "top_p 0.5 keeps the two most likely, 4:3 (%d %d %d %d)", cnt[0], cnt[1], cnt[2], cnt[3]);
    ms_sampler_free(d);
    MT_CHECK(ms_sampler_sample(NULL, ld, 4) < 0, "NULL sampler -> -1");

    /* log-softmax helpers */
    const float lp[4] = { 0.0f, logf(2), logf(3), logf(4) };
    MT_CHECK(near(ms_logprob(lp, 4, 2), log(0.3)), "logprob = log(3/10)");
    const float big[2] = { 1000.0f, 1000.0f };
    MT_CHECK(near(ms_logprob(big, 2, 0), -log(2.0)), "logprob stable at logits 1000");
    MT_CHECK(near(ms_entropy(big, 2), log(2.0)), "entropy of two equal = ln 2");
    double h = 0;
    for (int i = 1; i <= 4; i++) h -= 0.1 * i * log(0.1 * i);
    MT_CHECK(near(ms_entropy(lp, 4), h), "entropy of .1/.2/.3/.4");
    const float inf1[3] = { 0.0f, -INFINITY, -INFINITY };
    MT_CHECK(ms_entropy(inf1, 3) == 0.0f && ms_logprob(inf1, 3, 0) == 0.0f && ms_logprob(inf1, 3, 1) == -INFINITY,
             "-inf logits: entropy 0, logprob 0 / -inf");
    MT_CHECK(isnan(ms_logprob(lp, 4, 4)) && isnan(ms_logprob(lp, 4, -1)), "id out of range -> NaN");
}

/* Router against llama.cpp's own routing in the reference fixtures: feed
 * log(reference probs) as logits (softmax is shift-invariant, so this gives
 * back the same probabilities up to rounding) and compare the selected set,
 * its order and the applied weights.  Exact/near ties (gap < 1e-5 relative)
 * at the k-th place are counted as ambiguous, as GGUF-MOE.md section 6 says. */
/* Group-limited routing, gpt-oss weights and the renormalisation clamp, on
 * hand-ranked rows (SOFTMAX_TOPK makes the selection scores the logits). */
static void test_groups(void)
{
    /* groups {0,1} {2,3} {4,5} {6,7}; sums of the two best: 2, 8, 2, 6.5 */
    const float row[8] = { 5.0f, -3.0f, 4.0f, 4.0f, 1.0f, 1.0f, 4.5f, 2.0f };
    MsRouteCfg c = { .n_expert = 8, .k = 2, .gating = MS_GATING_SOFTMAX_TOPK, .w_scale = 1.0f,
                     .n_group = 4, .n_group_used = 2 };
    float lg[8], pb[8], w[8];
    int32_t ids[8];
    memcpy(lg, row, sizeof row);
    ms_route(&c, NULL, 0, 1, lg, pb, ids, w);
    double w1 = 1.0 / (1.0 + exp(-0.5));   /* softmax over the chosen logits 4.5, 4 */
    MT_CHECK(ids[0] == 6 && ids[1] == 2 && near(w[0], w1) && near(w[1], 1.0 - w1) && pb[0] == 5.0f,
             "groups: the best two groups supply the experts (6, 2, not the ungrouped 0, 6); probs are the "
             "logits and the weights their softmax over the chosen (%d %d %.6f %.6f)", ids[0], ids[1], w[0], w[1]);
    MsRouteCfg c0 = c;
    c0.n_group = 0;
    memcpy(lg, row, sizeof row);
    ms_route(&c0, NULL, 0, 1, lg, pb, ids, w);
    MT_CHECK(ids[0] == 0 && ids[1] == 6, "without groups: 0, 6 (%d %d)", ids[0], ids[1]);

    MsIntervention *iv = ms_intervention_new(1, 8);
    /* silencing 6 leaves its group with one open expert (score 2): the tie of
     * groups 0, 2, 3 at 2 goes to group 0 */
    ms_intervention_silence(iv, 0, 6);
    memcpy(lg, row, sizeof row);
    ms_route(&c, iv, 0, 1, lg, pb, ids, w);
    MT_CHECK(ids[0] == 0 && ids[1] == 2, "silence under groups: out of its group's score too (%d %d)", ids[0], ids[1]);
    ms_intervention_clear(iv);
    /* a forced expert takes its slot whatever its group; the rest from the kept groups */
    ms_intervention_force(iv, 0, 5);
    memcpy(lg, row, sizeof row);
    ms_route(&c, iv, 0, 1, lg, pb, ids, w);
    double wf = 1.0 / (1.0 + exp(-3.5));
    MT_CHECK(ids[0] == 5 && ids[1] == 6 && near(w[1], wf) && near(w[0], 1.0 - wf),
             "force under groups: 5 (dropped group) then 6 (%d %d)", ids[0], ids[1]);
    ms_intervention_clear(iv);
    /* top-k 5 > the 4 experts of the kept groups: the next best group opens */
    ms_intervention_top_k(iv, 0, 5);
    memcpy(lg, row, sizeof row);
    ms_route(&c, iv, 0, 1, lg, pb, ids, w);
    MT_CHECK(ms_route_k(&c, iv, 0) == 5 && ids[0] == 0 && ids[1] == 6 && ids[2] == 2 && ids[3] == 3 && ids[4] == 7,
             "top-k beyond the kept groups opens the next group (%d %d %d %d %d)", ids[0], ids[1], ids[2], ids[3], ids[4]);
    ms_intervention_free(iv);

    /* ser under gpt-oss's router: kept when its weight is >= T x the best's,
     * i.e. exp(logit - best logit) >= T; weights the softmax over the kept */
    MsRouteCfg ct = { .n_expert = 8, .k = 3, .gating = MS_GATING_SOFTMAX_TOPK, .w_scale = 1.0f };
    const float rt[8] = { 0.0f, 3.0f, 2.5f, 1.0f, -1.0f, 0.5f, 2.0f, -2.0f };  /* top-3: 1, 2, 6 */
    iv = ms_intervention_new(1, 8);
    ms_intervention_ser(iv, 0, 1, 0.5f);      /* exp(-0.5) = 0.61 kept, exp(-1) = 0.37 left out */
    int32_t nu = 0;
    memcpy(lg, rt, sizeof rt);
    ms_route_used(&ct, iv, 0, 1, lg, pb, ids, w, &nu);
    double ws = 1.0 / (1.0 + exp(-0.5));
    MT_CHECK(nu == 2 && ids[0] == 1 && ids[1] == 2 && ids[2] == 6 && near(w[0], ws) && near(w[1], 1.0 - ws) &&
             w[2] == 0.0f, "ser with gpt-oss gating: 1 and 2 kept (weight ratio 0.61 >= 0.5), 6 left out (0.37)");
    ms_intervention_free(iv);

    /* renormalisation clamps the sum at 6.103515625e-5 (llama.cpp since late 2025) */
    MsRouteCfg cs = { .n_expert = 6, .k = 2, .gating = MS_GATING_SIGMOID, .norm_w = true, .w_scale = 1.0f };
    float tiny[6] = { -20.0f, -21.0f, -22.0f, -23.0f, -24.0f, -25.0f };
    ms_route(&cs, NULL, 0, 1, tiny, pb, ids, w);
    double p0 = 1.0 / (1.0 + exp(20.0));
    MT_CHECK(ids[0] == 0 && ids[1] == 1 && near(w[0], p0 / 6.103515625e-5), "tiny weight sums are clamped (%g)", w[0]);
}

/* k-th minus (k+1)-th largest of v[n]. */
static float kth_gap(const float *v, int n, int k)
{
    float s[256];
    memcpy(s, v, sizeof(float) * (size_t)n);
    for (int a = 0; a < n && a <= k; a++)
        for (int b = a + 1; b < n; b++)
            if (s[b] > s[a]) { float x = s[a]; s[a] = s[b]; s[b] = x; }
    return k < n ? s[k - 1] - s[k] : INFINITY;
}

/* The router replayed on one reference set: logits rebuilt from the
 * reference `probs` (log p for softmax routers, log(p/(1-p)) for sigmoid
 * ones; gpt-oss stores the logits themselves), routed with the options of
 * GGUF-MOE.md 4.1 per architecture (deepseek2 reads its own keys, selection
 * bias and groups from the model file), compared set, order and weights.
 * Decisions whose selection scores (or, with groups, group scores) nearly
 * tie are counted as ambiguous. */
static int test_reference_set(const char *dir, const char *set)
{
    char rdir[1024];
    snprintf(rdir, sizeof rdir, "%s/%s/reference", dir, set);
    DIR *d = opendir(rdir);
    if (!d) {
        mt_diag("%s not found: set skipped", rdir);
        return 0;
    }
    struct dirent *de;
    int n_files = 0;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0 || strcmp(de->d_name, "prompts.json") == 0) continue;
        char path[1400], mpath[1400];
        snprintf(path, sizeof path, "%s/%s", rdir, de->d_name);
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!MT_CHECK(root != NULL, "%s parses", de->d_name)) continue;
        const char *arch = json_string_value(json_object_get(root, "arch"));
        const char *model = json_string_value(json_object_get(root, "model"));
        int E = (int)json_integer_value(json_object_get(root, "n_expert"));
        int K = (int)json_integer_value(json_object_get(root, "n_expert_used"));
        if (!arch || !model || E <= 0 || K <= 0 || E > 256) {
            MT_CHECK(0, "%s: arch/model/n_expert present", de->d_name);
            json_decref(root);
            continue;
        }
        /* Routing options as GGUF-MOE.md 4.1 gives them per architecture;
         * deepseek2 takes its own keys from the model file. */
        MsRouteCfg cfg = { .n_expert = E, .k = K, .gating = MS_GATING_SOFTMAX, .w_scale = 1.0f };
        cfg.norm_w = strcmp(arch, "llama") == 0 || strcmp(arch, "granitemoe") == 0 || strcmp(arch, "qwen3moe") == 0 ||
                     strcmp(arch, "phimoe") == 0;
        if (strcmp(arch, "gpt-oss") == 0) cfg.gating = MS_GATING_SOFTMAX_TOPK;
        MsGguf *g = NULL;
        if (strcmp(arch, "deepseek2") == 0) {
            snprintf(mpath, sizeof mpath, "%s/%s/models/%s", dir, set, model);
            g = ms_gguf_open(mpath, NULL);
            uint32_t gf, ng, gu;
            bool nb;
            float sc;
            if (g && ms_gguf_get_f32(g, "deepseek2.expert_weights_scale", &sc, NULL) == 0) cfg.w_scale = sc;
            if (g && ms_gguf_get_bool(g, "deepseek2.expert_weights_norm", &nb, NULL) == 0) cfg.norm_w = nb;
            if (g && ms_gguf_get_u32(g, "deepseek2.expert_gating_func", &gf, NULL) == 0 && gf == 2)
                cfg.gating = MS_GATING_SIGMOID;
            if (g && ms_gguf_get_u32(g, "deepseek2.expert_group_count", &ng, NULL) == 0 &&
                ms_gguf_get_u32(g, "deepseek2.expert_group_used_count", &gu, NULL) == 0) {
                cfg.n_group = (int)ng;
                cfg.n_group_used = (int)gu;
            }
            MT_CHECK(g != NULL, "%s: read routing keys (scale %g, norm %d, groups %d/%d)", model, cfg.w_scale,
                     cfg.norm_w, cfg.n_group_used, cfg.n_group);
        }
        long n_tok = 0, n_amb = 0, n_bad_set = 0, n_bad_w = 0;
        double max_dw = 0;
        size_t pi;
        json_t *pr;
        json_array_foreach(json_object_get(root, "prompts"), pi, pr) {
            size_t li;
            json_t *lr;
            json_array_foreach(json_object_get(pr, "routing"), li, lr) {
                json_t *jex = json_object_get(lr, "experts"), *jw = json_object_get(lr, "weights"),
                       *jp = json_object_get(lr, "probs");
                int layer = (int)json_integer_value(json_object_get(lr, "layer"));
                const float *selb = NULL;
                if (g) {
                    char nm[64];
                    snprintf(nm, sizeof nm, "blk.%d.exp_probs_b.bias", layer);
                    const MsGgufTensor *bt = ms_gguf_find_tensor(g, nm);
                    if (bt && bt->type == 0 && bt->ne[0] == E) selb = bt->data;
                }
                cfg.sel_bias = selb;
                for (size_t t = 0; t < json_array_size(jp); t++) {
                    float lg[256], pb[256], w[256], rp[256], sc[256];
                    int32_t ids[256];
                    json_t *row = json_array_get(jp, t);
                    if ((int)json_array_size(row) != E) continue;
                    for (int e = 0; e < E; e++) {
                        rp[e] = (float)json_number_value(json_array_get(row, e));
                        lg[e] = cfg.gating == MS_GATING_SOFTMAX_TOPK ? rp[e]
                              : cfg.gating == MS_GATING_SIGMOID ? logf(rp[e] / (1.0f - rp[e])) : logf(rp[e]);
                        sc[e] = rp[e] + (selb ? selb[e] : 0.0f);
                    }
                    ms_route(&cfg, NULL, 0, 1, lg, pb, ids, w);
                    n_tok++;
                    /* ambiguous: near-tied selection or group scores */
                    float gap = INFINITY;
                    if (cfg.n_group > 1) {
                        float gsc[64];
                        int gs = E / cfg.n_group;
                        for (int q = 0; q < cfg.n_group; q++) {
                            float a = -INFINITY, b = -INFINITY;
                            for (int e = q * gs; e < (q + 1) * gs; e++) {
                                if (sc[e] > a) { b = a; a = sc[e]; } else if (sc[e] > b) b = sc[e];
                            }
                            gsc[q] = a + b;
                        }
                        gap = kth_gap(gsc, cfg.n_group, cfg.n_group_used);
                        float kept = -INFINITY;  /* k-th over the kept groups only */
                        float tmp[64];
                        memcpy(tmp, gsc, sizeof(float) * (size_t)cfg.n_group);
                        for (int a = 0; a < cfg.n_group_used; a++) {
                            int bi = 0;
                            for (int q = 1; q < cfg.n_group; q++) if (tmp[q] > tmp[bi]) bi = q;
                            kept = tmp[bi];
                            tmp[bi] = -INFINITY;
                        }
                        for (int q = 0; q < cfg.n_group; q++)
                            if (gsc[q] < kept)
                                for (int e = q * gs; e < (q + 1) * gs; e++) sc[e] = -INFINITY;
                    }
                    gap = fminf(gap, fminf(kth_gap(sc, E, K), K > 1 ? kth_gap(sc, E, 1) : INFINITY));
                    for (int j = 2; j < K; j++) gap = fminf(gap, kth_gap(sc, E, j));  /* order too */
                    bool amb = gap <= 1e-5f * fmaxf(1.0f, fabsf(sc[ids[0]]));
                    json_t *rex = json_array_get(jex, t), *rw = json_array_get(jw, t);
                    bool set_ok = (int)json_array_size(rex) == K;
                    for (int j = 0; j < K && set_ok; j++)
                        set_ok = json_integer_value(json_array_get(rex, j)) == ids[j];
                    if (amb) { n_amb++; continue; }
                    if (!set_ok) { n_bad_set++; continue; }
                    for (int j = 0; j < K; j++) {
                        double dw = fabs(w[j] - json_number_value(json_array_get(rw, j)));
                        if (dw > max_dw) max_dw = dw;
                        if (dw > 1e-6) n_bad_w++;
                    }
                }
            }
        }
        MT_CHECK(n_tok > 0 && n_bad_set == 0 && n_bad_w == 0,
                 "%s/%s: router on reference probs: %ld token-layers, %ld ambiguous, %ld set/order mismatches, "
                 "%ld weights off by > 1e-6 (max %.2g)", set, de->d_name, n_tok, n_amb, n_bad_set, n_bad_w, max_dw);
        n_files++;
        ms_gguf_free(g);
        json_decref(root);
    }
    closedir(d);
    return n_files;
}

static void test_reference(void)
{
    const char *dir = mt_shared_dir();
    if (!dir) {
        mt_skip("router vs llama.cpp's reference routing: %s", mt_shared_absent());
        return;
    }
    int n1 = test_reference_set(dir, "fixtures"), n2 = test_reference_set(dir, "fixtures2"),
        n3 = test_reference_set(dir, "fixtures-dsv3");
    MT_CHECK(n1 >= 5 && n2 >= 6 && n3 >= 2, "%d + %d + %d reference files compared", n1, n2, n3);
}

/* Random specs over the spec alphabet: never crash, every failure carries a
 * message, every success prints a text that reads back to the same text. */
static void test_fuzz(void)
{
    static const char alpha[] = "0120123456789:::,-*.e+naif ;";
    static const char *const kinds[] = { "silence", "drop", "force", "steer", "scale", "top-k" };
    uint64_t st = 777;
    int n_ok = 0, bad_msg = 0, bad_rt = 0;
    MsIntervention *iv = ms_intervention_new(3, 8);
    for (int i = 0; i < 20000; i++) {
        char spec[24];
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        int len = (int)((st >> 40) % 16);
        for (int j = 0; j < len; j++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            spec[j] = alpha[(st >> 33) % (sizeof alpha - 1)];
        }
        spec[len] = 0;
        if (i % 500 == 0) ms_intervention_clear(iv);
        MsError err;
        ms_error_clear(&err);
        int rc = ms_intervention_parse(iv, kinds[(st >> 20) % 6], spec, &err);
        if (rc < 0 && (!err.msg[0] || err.code != rc)) bad_msg++;
        if (rc != 0) continue;
        n_ok++;
        char *t1 = ms_intervention_to_string(iv);
        MsIntervention *b = ms_intervention_new(3, 8);
        int rc2 = ms_intervention_parse_text(b, t1, NULL);
        char *t2 = ms_intervention_to_string(b);
        if (rc2 != 0 || !t1 || !t2 || strcmp(t1, t2) != 0) {
            if (!bad_rt) mt_diag("round trip: '%s' -> '%s'", t1 ? t1 : "", t2 ? t2 : "");
            bad_rt++;
        }
        free(t1);
        free(t2);
        ms_intervention_free(b);
    }
    ms_intervention_free(iv);
    MT_CHECK(bad_msg == 0, "20000 random specs: every rejection has a message");
    MT_CHECK(bad_rt == 0 && n_ok > 50, "random specs accepted (%d): text form reads back identically", n_ok);
}

/* The logit operators of METHODS §6.3 (SteerMoE) and §9.3 (soft / hard), on
 * their worked examples (§6.7, §9.6): 4 experts, k = 2, renormalised top-k. */
static void test_logit_operators(void)
{
    MsRouteCfg c = { .n_expert = 4, .k = 2, .gating = MS_GATING_SOFTMAX, .norm_w = true, .w_scale = 1.0f };
    MsIntervention *iv = ms_intervention_new(1, 4);
    float z[4], p[4], w[2];
    int32_t ids[2];

    /* §6.7: z = [2, 1, 0.5, -1], activate {3}, deactivate {0} */
    const float z67[4] = { 2, 1, 0.5f, -1 };
    memcpy(z, z67, sizeof z);
    ms_route(&c, iv, 0, 1, z, p, ids, w);
    MT_CHECK(ids[0] == 0 && ids[1] == 1 && fabs(w[0] - 0.7310586) < 1e-6 && fabs(w[1] - 0.2689414) < 1e-6,
             "§6.7 unsteered: top-2 (0, 1) with (0.7310586, 0.2689414)");
    MT_CHECK(ms_intervention_raise(iv, 0, 3, 0.01f) == 0 && ms_intervention_lower(iv, 0, 0, 0.01f) == 0,
             "raise 0:3, lower 0:0 accepted");
    memcpy(z, z67, sizeof z);
    ms_route(&c, iv, 0, 1, z, p, ids, w);
    MT_CHECK(ids[0] == 3 && ids[1] == 1 && fabs(w[0] - 0.7330201492) < 1e-6 && fabs(w[1] - 0.2669798508) < 1e-6,
             "§6.7 SteerMoE: top-2 (3, 1) with (0.7330201492, 0.2669798508): got (%d, %d) (%.10f, %.10f)",
             ids[0], ids[1], w[0], w[1]);
    /* in log-softmax space the steered row is [-3.505182, -1.495182, -1.995182, -0.485182]: the same up to
     * the shift log-sum-exp(z), which softmax ignores */
    double lse = log(exp(2.0) + exp(1.0) + exp(0.5) + exp(-1.0));
    const double st67[4] = { -3.505182, -1.495182, -1.995182, -0.485182 };
    int zok = 1;
    for (int e = 0; e < 4; e++) zok &= fabs((z[e] - lse) - st67[e]) < 1e-5;
    MT_CHECK(zok, "§6.7 steered logits = the reference's log-softmax row up to its shift");
    char *t = ms_intervention_to_string(iv);
    MT_CHECK(t && !strcmp(t, "raise *:3:0.01; lower *:0:0.01"), "text form '%s'", t ? t : "");
    free(t);
    MT_CHECK(ms_intervention_silence(iv, 0, 3) == MS_EINVAL, "silencing a raised expert rejected");
    MT_CHECK(ms_intervention_raise(iv, 0, 1, -0.5f) == MS_EINVAL, "negative margin rejected");

    /* §9.6: z = [1, 2, 0, -1], A+ = {0}; s(z) = 1.1180339887 */
    const float z96[4] = { 1, 2, 0, -1 };
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_steer_std(iv, 0, 0, 0.5f) == 0, "steer-std 0:0:0.5 accepted");
    memcpy(z, z96, sizeof z);
    ms_route(&c, iv, 0, 1, z, p, ids, w);
    MT_CHECK(fabs(z[0] - 1.5590169944) < 1e-6 && z[1] == 2 && z[2] == 0 && z[3] == -1,
             "§9.6 soft λ 0.5: z' = [1.5590169944, 2, 0, -1] (got %.10f)", z[0]);
    MT_CHECK(ids[0] == 1 && ids[1] == 0 && fabs(w[0] - 0.608493) < 1e-6 && fabs(w[1] - 0.391507) < 1e-6,
             "§9.6 soft: top-2 (1, 0) with (0.608493, 0.391507)");
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_raise(iv, 0, 0, 0.0f) == 0, "raise 0:0:0 (hard, ε = 0) accepted");
    memcpy(z, z96, sizeof z);
    ms_route(&c, iv, 0, 1, z, p, ids, w);
    MT_CHECK(z[0] == 2 && ids[0] == 0 && ids[1] == 1 && fabs(w[0] - 0.5) < 1e-7 && fabs(w[1] - 0.5) < 1e-7,
             "§9.6 hard: z' = [2, 2, 0, -1], top-2 (0, 1) with (0.5, 0.5), tie to the lower index");
    MsError err;
    MT_CHECK(ms_intervention_parse(iv, "raise", "0:1:-1", &err) == MS_EINVAL && strstr(err.msg, "margin"),
             "parse: negative margin rejected (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "steer-std", "0:1", &err) == MS_EINVAL && strstr(err.msg, "LAMBDA"),
             "parse: steer-std needs a lambda (%s)", err.msg);
    MT_CHECK(ms_intervention_parse(iv, "lower", "0:0", &err) == 0 && (t = ms_intervention_to_string(iv)) &&
             !strcmp(t, "lower *:0:0.01"), "lower replaces an earlier raise of the expert");
    free(t);
    ms_intervention_clear(iv);
    MT_CHECK(ms_intervention_parse_text(iv, "raise 0:2; steer-std 0:1:-0.25", &err) == 0, "parse_text new kinds");
    t = ms_intervention_to_string(iv);
    MT_CHECK(t && !strcmp(t, "steer-std *:1:-0.25; raise *:2:0.01"), "canonical text '%s'", t ? t : "");
    free(t);
    ms_intervention_free(iv);
}

int main(void)
{
    test_groups();
    test_router();
    test_logit_operators();
    test_text();
    test_sampler();
    test_fuzz();
    test_reference();
    return mt_done();
}
