/* test-intervene.c — interventions through the real engine: each operator's
 * exact effect on the routing of the first MoE layer (whose input is the same
 * with and without the intervention), compared with the un-intervened run of
 * the same tokens; that effects reach the output; and that clearing the set
 * restores the original output bit for bit.  Models: `synth` models of every
 * architecture (written here), the bundled default model, and the fixture
 * models of ../shared when it is present.
 *
 * Expected selections and weights are derived here from the baseline run's
 * router probabilities and logits by the documented rules (route.h), not
 * taken from the code under test's intervened output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "gguf.h"
#include "mtest.h"
#include "quant.h"
#include "synth.h"

#define NT 12 /* tokens per run */
#define MAXE 64

typedef struct {
    int n_layer, n_expert, n_vocab;
    int k[64];                     /* per layer, 0 = no event seen */
    int32_t ids[64][NT][MAXE];
    float w[64][NT][MAXE];
    float probs[64][NT][MAXE];
    float logits[64][NT][MAXE];
    float *out;                    /* [NT][n_vocab] model logits */
} Run;

static void on_routing(void *user, const MsRoutingEvent *ev)
{
    Run *r = user;
    if (ev->layer < 0 || ev->layer >= 64 || ev->k > MAXE || ev->n_expert != r->n_expert) return;
    r->k[ev->layer] = ev->k;
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0 || p >= NT) continue;
        memcpy(r->ids[ev->layer][p], ev->experts + (size_t)t * ev->k, sizeof(int32_t) * ev->k);
        memcpy(r->w[ev->layer][p], ev->weights + (size_t)t * ev->k, sizeof(float) * ev->k);
        memcpy(r->probs[ev->layer][p], ev->probs + (size_t)t * ev->n_expert, sizeof(float) * ev->n_expert);
        memcpy(r->logits[ev->layer][p], ev->logits + (size_t)t * ev->n_expert, sizeof(float) * ev->n_expert);
    }
}

/* Run NT tokens from an empty cache with iv (NULL = none). */
static int run(MsContext *c, const MsIntervention *iv, const int32_t *tok, Run *r, MsError *err)
{
    memset(r->k, 0, sizeof r->k);
    ms_context_reset(c);
    int rc = ms_context_set_intervention(c, iv, err);
    if (rc) return rc;
    MsObserver obs = { .on_routing = on_routing, .user = r };
    ms_context_set_observer(c, &obs);
    rc = ms_context_eval(c, tok, NT, r->out, true, err);
    ms_context_set_observer(c, NULL);
    return rc;
}

/* Top-n of scores over E with `skip` excluded and `first` (or -1) placed
 * first; descending, lower id on ties. */
static void rank(const float *s, int E, int n, int skip, int first, int *out)
{
    int j = 0;
    if (first >= 0) out[j++] = first;
    bool used[MAXE] = { false };
    if (first >= 0) used[first] = true;
    if (skip >= 0) used[skip] = true;
    for (; j < n; j++) {
        int b = -1;
        for (int e = 0; e < E; e++)
            if (!used[e] && (b < 0 || s[e] > s[b])) b = e;
        out[j] = b;
        used[b] = true;
    }
}

/* Expected weights for ids given probs, the arch's norm and scale. */
static void weights(const MsModelInfo *mi, const float *p, const int *ids, int k, double *w)
{
    double sum = 0;
    for (int j = 0; j < k; j++) sum += (w[j] = p[ids[j]]);
    for (int j = 0; j < k; j++) {
        if (mi->norm_w) w[j] /= sum;
        w[j] *= mi->w_scale;
    }
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

/* ids and weights at (layer, token) equal the expectation. */
static bool match(const Run *r, int L, int t, const int *ids, const double *w, int k)
{
    if (r->k[L] != k) return false;
    for (int j = 0; j < k; j++)
        if (r->ids[L][t][j] != ids[j] || !near(r->w[L][t][j], w[j])) return false;
    return true;
}

static void test_model(const char *path, const char *file)
{
    MsError err;
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", file, m ? "" : err.msg)) return;
    const MsModelInfo *mi = ms_model_info(m);
    const int E = mi->n_expert, K = mi->n_expert_used, NL = mi->n_layer;
    if (E > MAXE || NL > 64 || K >= E) {
        MT_CHECK(0, "%s: shape %d layers x %d experts beyond this test's limits", file, NL, E);
        ms_model_free(m);
        return;
    }
    int L0 = -1, L1 = -1;
    for (int l = 0; l < NL; l++) {
        if (!ms_model_layer_is_moe(m, l)) continue;
        if (L0 < 0) L0 = l;
        else if (L1 < 0) L1 = l;
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    MsContext *c = ms_context_new(m, &cp, &err);
    if (!MT_CHECK(c != NULL && L0 >= 0, "%s: context, first MoE layer %d", file, L0)) {
        ms_context_free(c);
        ms_model_free(m);
        return;
    }
    /* Byte tokens of a short text: ids are valid in every fixture vocabulary. */
    const char *text = "Route it, 42!";
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (unsigned char)text[i];

    Run *base = calloc(1, sizeof *base), *r = calloc(1, sizeof *r);
    base->n_expert = r->n_expert = E;
    base->out = malloc(sizeof(float) * NT * mi->n_vocab);
    r->out = malloc(sizeof(float) * NT * mi->n_vocab);
    MsIntervention *iv = ms_intervention_new(NL, E);
    size_t out_bytes = sizeof(float) * NT * mi->n_vocab;

    int rc = run(c, NULL, tok, base, &err);
    if (!MT_CHECK(rc == 0 && base->k[L0] == K, "%s: baseline run, k=%d at layer %d", file, K, L0)) goto out;

    /* baseline is self-consistent: top-k of its own probs, arch weights */
    bool ok = true;
    for (int t = 0; t < NT; t++) {
        int ids[MAXE];
        double w[MAXE];
        rank(base->probs[L0][t], E, K, -1, -1, ids);
        weights(mi, base->probs[L0][t], ids, K, w);
        ok &= match(base, L0, t, ids, w, K);
    }
    MT_CHECK(ok, "%s: baseline routing = top-%d of probs, weights by norm_w=%d scale=%g", file, K, mi->norm_w,
             mi->w_scale);

    /* The expert most tokens rank first, and the one ranked last for token 0. */
    int e_top = base->ids[L0][0][0], e_low;
    {
        int lo[MAXE];
        rank(base->probs[L0][0], E, E, -1, -1, lo);
        e_low = lo[E - 1];
    }

    /* silence */
    ms_intervention_clear(iv);
    ms_intervention_silence(iv, L0, e_top);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0;
    int changed_tokens = 0;
    for (int t = 0; t < NT && ok; t++) {
        int ids[MAXE];
        double w[MAXE];
        rank(base->probs[L0][t], E, K, e_top, -1, ids);
        weights(mi, base->probs[L0][t], ids, K, w);
        ok &= match(r, L0, t, ids, w, K) && memcmp(r->probs[L0][t], base->probs[L0][t], sizeof(float) * E) == 0;
        for (int j = 0; j < K; j++) changed_tokens += base->ids[L0][t][j] == e_top;
    }
    MT_CHECK(ok && changed_tokens > 0,
             "%s: silence %d:%d: set = old minus it plus next best, weights = probs of new set (%d tokens changed)",
             file, L0, e_top, changed_tokens);
    MT_CHECK(rc == 0 && memcmp(r->out, base->out, out_bytes) != 0, "%s: silence changes the output logits", file);
    if (L1 >= 0) {
        bool diff = false;
        for (int t = 0; t < NT; t++) diff |= memcmp(r->logits[L1][t], base->logits[L1][t], sizeof(float) * E) != 0;
        MT_CHECK(diff, "%s: silence at layer %d changes router inputs at layer %d", file, L0, L1);
    }

    /* clearing restores bit for bit */
    rc = run(c, NULL, tok, r, &err);
    MT_CHECK(rc == 0 && memcmp(r->out, base->out, out_bytes) == 0 &&
             memcmp(r->w[L0], base->w[L0], sizeof r->w[L0]) == 0,
             "%s: no intervention again: output identical bit for bit", file);
    ms_intervention_clear(iv);
    rc = run(c, iv, tok, r, &err);
    MT_CHECK(rc == 0 && memcmp(r->out, base->out, out_bytes) == 0, "%s: cleared (empty) set: output identical", file);

    /* drop */
    ms_intervention_clear(iv);
    ms_intervention_drop(iv, L0, e_top);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0 && r->k[L0] == K;
    for (int t = 0; t < NT && ok; t++)
        for (int j = 0; j < K; j++) {
            ok &= r->ids[L0][t][j] == base->ids[L0][t][j];
            ok &= r->w[L0][t][j] == (base->ids[L0][t][j] == e_top ? 0.0f : base->w[L0][t][j]);
        }
    MT_CHECK(ok, "%s: drop %d:%d: same ids, its weight 0, other weights unchanged", file, L0, e_top);
    MT_CHECK(rc == 0 && memcmp(r->out, base->out, out_bytes) != 0, "%s: drop changes the output", file);

    /* scale */
    ms_intervention_clear(iv);
    ms_intervention_scale(iv, L0, e_top, 0.5f);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0 && r->k[L0] == K;
    for (int t = 0; t < NT && ok; t++)
        for (int j = 0; j < K; j++) {
            float want = base->w[L0][t][j] * (base->ids[L0][t][j] == e_top ? 0.5f : 1.0f);
            ok &= r->ids[L0][t][j] == base->ids[L0][t][j] && r->w[L0][t][j] == want;
        }
    MT_CHECK(ok, "%s: scale %d:%d:0.5 halves its applied weight only", file, L0, e_top);

    /* force */
    ms_intervention_clear(iv);
    ms_intervention_force(iv, L0, e_low);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0;
    for (int t = 0; t < NT && ok; t++) {
        int ids[MAXE];
        double w[MAXE];
        rank(base->probs[L0][t], E, K, -1, e_low, ids);
        weights(mi, base->probs[L0][t], ids, K, w);
        ok &= match(r, L0, t, ids, w, K);
    }
    MT_CHECK(ok, "%s: force %d:%d: at rank 0, rest = top-%d of the others", file, L0, e_low, K - 1);

    /* top-k override at the first MoE layer only */
    ms_intervention_clear(iv);
    ms_intervention_top_k(iv, L0, K + 1);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0;
    for (int t = 0; t < NT && ok; t++) {
        int ids[MAXE];
        double w[MAXE];
        rank(base->probs[L0][t], E, K + 1, -1, -1, ids);
        weights(mi, base->probs[L0][t], ids, K + 1, w);
        ok &= match(r, L0, t, ids, w, K + 1);
    }
    MT_CHECK(ok, "%s: top-k %d:%d = top-%d of the baseline probs", file, L0, K + 1, K + 1);
    if (L1 >= 0) MT_CHECK(r->k[L1] == K, "%s: layer %d keeps k=%d", file, L1, K);
    ms_intervention_clear(iv);
    ms_intervention_top_k(iv, -1, 1);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0;
    for (int l = 0; l < NL; l++) ok &= !ms_model_layer_is_moe(m, l) || r->k[l] == 1;
    for (int t = 0; t < NT && ok; t++) ok &= r->ids[L0][t][0] == base->ids[L0][t][0];
    MT_CHECK(ok, "%s: global top-k 1 at every MoE layer, keeps the rank-0 expert", file);

    /* steering bias: probs follow softmax/sigmoid of the biased logits */
    ms_intervention_clear(iv);
    /* large enough to lift the least likely expert of token 0 to the top */
    float lmax = -INFINITY;
    for (int e = 0; e < E; e++) lmax = fmaxf(lmax, base->logits[L0][0][e]);
    const float delta = lmax - base->logits[L0][0][e_low] + 0.5f;
    ms_intervention_bias(iv, L0, e_low, delta);
    rc = run(c, iv, tok, r, &err);
    ok = rc == 0;
    int moved = 0;
    for (int t = 0; t < NT && ok; t++) {
        float lg[MAXE], p[MAXE];
        double mx = -INFINITY, s = 0;
        for (int e = 0; e < E; e++) {
            lg[e] = base->logits[L0][t][e] + (e == e_low ? delta : 0.0f);
            ok &= r->logits[L0][t][e] == lg[e];
            mx = fmax(mx, lg[e]);
        }
        for (int e = 0; e < E; e++) {
            if (mi->gating == MS_GATING_SIGMOID) p[e] = (float)(1.0 / (1.0 + exp(-(double)lg[e])));
            else s += exp((double)lg[e] - mx);
        }
        if (mi->gating != MS_GATING_SIGMOID)
            for (int e = 0; e < E; e++) p[e] = (float)(exp((double)lg[e] - mx) / s);
        for (int e = 0; e < E; e++) ok &= near(r->probs[L0][t][e], p[e]);
        int ids[MAXE];
        double w[MAXE];
        rank(r->probs[L0][t], E, K, -1, -1, ids);
        weights(mi, r->probs[L0][t], ids, K, w);
        ok &= match(r, L0, t, ids, w, K);
        for (int j = 0; j < K; j++) moved += r->ids[L0][t][j] == e_low;
    }
    MT_CHECK(ok && moved > 0,
             "%s: steer %d:%d:%+g: logits = raw + delta, probs = score(logits), top-k of them (%d selections gained)",
             file, L0, e_low, delta, moved);

    /* raise / lower (SteerMoE): the logit becomes max(z) + d / min(z) - d of
     * the token's unmodified logits, the rest as usual.  Without a
     * selection-only bias the raised expert is then first for every token and
     * the lowered one is never chosen. */
    char bias_name[64];
    snprintf(bias_name, sizeof bias_name, "blk.%d.exp_probs_b.bias", L0);
    const bool sel_bias = ms_gguf_find_tensor(ms_model_gguf(m), bias_name) != NULL;
    for (int op = 0; op < 2; op++) {
        const int e = op == 0 ? e_low : e_top;
        ms_intervention_clear(iv);
        rc = op == 0 ? ms_intervention_raise(iv, L0, e, 0.01f) : ms_intervention_lower(iv, L0, e, 0.01f);
        rc = rc ? rc : run(c, iv, tok, r, &err);
        ok = rc == 0 && r->k[L0] == K;
        int placed = 0;
        for (int t = 0; t < NT && ok; t++) {
            const float *z = base->logits[L0][t];
            float zmax = z[0], zmin = z[0];
            for (int x = 1; x < E; x++) {
                zmax = fmaxf(zmax, z[x]);
                zmin = fminf(zmin, z[x]);
            }
            const float want = op == 0 ? zmax + 0.01f : zmin - 0.01f;
            for (int x = 0; x < E; x++) ok &= x == e ? near(r->logits[L0][t][x], want) : r->logits[L0][t][x] == z[x];
            int ids[MAXE];
            double w[MAXE];
            rank(r->probs[L0][t], E, K, -1, -1, ids);
            weights(mi, r->probs[L0][t], ids, K, w);
            ok &= match(r, L0, t, ids, w, K);
            bool in = false;
            for (int j = 0; j < K; j++) in |= r->ids[L0][t][j] == e;
            placed += op == 0 ? r->ids[L0][t][0] == e : !in;
        }
        MT_CHECK(ok && (sel_bias || placed == NT),
                 "%s: %s %d:%d:0.01: its logit = %s(z) %s 0.01, top-k of the new probs; %s for %d of %d tokens", file,
                 op == 0 ? "raise" : "lower", L0, e, op == 0 ? "max" : "min", op == 0 ? "+" : "-",
                 op == 0 ? "ranked first" : "never chosen", placed, NT);
    }

    /* sets the engine must refuse: wrong shape, and more forced than k */
    MsIntervention *wrong = ms_intervention_new(NL + 1, E);
    ms_intervention_drop(wrong, 0, 0);
    ms_error_clear(&err);
    rc = ms_context_set_intervention(c, wrong, &err);
    MT_CHECK(rc < 0 && err.msg[0], "%s: set for another shape refused (%s)", file, err.msg);
    ms_intervention_free(wrong);
    ms_intervention_clear(iv);
    for (int e = 0; e <= K; e++) ms_intervention_force(iv, L0, e);
    ms_error_clear(&err);
    rc = ms_context_set_intervention(c, iv, &err);
    MT_CHECK(rc < 0 && err.msg[0], "%s: %d forced with k=%d refused (%s)", file, K + 1, K, err.msg);
    ms_context_set_intervention(c, NULL, NULL);

out:
    ms_intervention_free(iv);
    free(base->out);
    free(r->out);
    free(base);
    free(r);
    ms_context_free(c);
    ms_model_free(m);
}

/* A synth model of arch with two or more MoE layers (deepseek2: a dense lead). */
static void test_synth(const char *arch, int type, uint64_t seed)
{
    MsSynthParams p = ms_synth_default_params();
    p.arch = arch;
    p.n_layer = 3;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = strcmp(arch, "olmoe") && strcmp(arch, "deepseek2") ? 2 : 0;
    p.n_expert = 8;
    p.n_expert_used = 2;
    p.n_ff = 32;
    p.n_vocab = 300;
    p.type = type;
    p.seed = seed;
    p.n_threads = 2;
    char path[512], name[96];
    snprintf(name, sizeof name, "synth %s %s", arch, ms_type_name(type));
    snprintf(path, sizeof path, "%s/%s-%s.gguf", mt_tmpdir(), arch, ms_type_name(type));
    MsError err = { 0 };
    if (MT_CHECK(ms_synth_write(path, &p, &err) == 0, "%s: written (%s)", name, err.msg[0] ? err.msg : "ok")) test_model(path, name);
    remove(path);
}

/* The 2026 routers through the engine.  DeepSeek-V3's group limit: every
 * token's experts from at most n_group_used groups; silence and force as
 * docs/interventions.md says. */
static void test_groups(const char *path, const char *name)
{
    static Run base, r;
    MsError err = { 0 };
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", name, m ? "ok" : err.msg)) return;
    {
        const MsModelInfo *mi = ms_model_info(m);
        const int E = mi->n_expert, K = mi->n_expert_used, G = mi->n_expert_groups, gs = E / G, L1 = 1;
        MsContextParams cp = ms_context_default_params();
        cp.n_threads = 2;
        cp.n_ctx = 64;
        MsContext *c = ms_context_new(m, &cp, &err);
        int32_t tok[NT];
        for (int t = 0; t < NT; t++) tok[t] = (int32_t)((t * 131 + 7) % mi->n_vocab);
        base.n_expert = r.n_expert = E;
        base.out = malloc(sizeof(float) * NT * (size_t)mi->n_vocab);
        r.out = malloc(sizeof(float) * NT * (size_t)mi->n_vocab);
        int rc = run(c, NULL, tok, &base, &err);
        bool ok = rc == 0 && G > 1 && base.k[L1] == K;
        for (int t = 0; t < NT && ok; t++) {
            bool used[64] = { false };
            int ng = 0;
            for (int j = 0; j < K; j++) {
                int g = base.ids[L1][t][j] / gs;
                if (!used[g]) { used[g] = true; ng++; }
            }
            ok &= ng <= mi->n_group_used;
        }
        MT_CHECK(ok, "%s: every token's %d experts come from at most %d of %d groups", name, K, mi->n_group_used, G);
        /* silence each expert token 0 selected at L1 first: never selected, a full set */
        MsIntervention *iv = ms_intervention_new(mi->n_layer, E);
        int e0 = base.ids[L1][0][0];
        ms_intervention_silence(iv, L1, e0);
        rc = run(c, iv, tok, &r, &err);
        ok = rc == 0 && r.k[L1] == K;
        for (int t = 0; t < NT && ok; t++) {
            for (int j = 0; j < K; j++) ok &= r.ids[L1][t][j] != e0 && r.ids[L1][t][j] >= 0;
            for (int j = 0; j < K; j++)
                for (int jj = j + 1; jj < K; jj++) ok &= r.ids[L1][t][j] != r.ids[L1][t][jj];
        }
        MT_CHECK(ok, "%s: silenced expert %d never selected at block %d, every set still full", name, e0, L1);
        /* force an expert of the group token 0's router dropped */
        ms_intervention_clear(iv);
        int fe = -1;
        for (int e = 0; e < E && fe < 0; e++) {
            bool kept = false;
            for (int j = 0; j < K; j++) kept |= base.ids[L1][0][j] / gs == e / gs;
            if (!kept) fe = e;
        }
        ms_intervention_force(iv, L1, fe);
        rc = run(c, iv, tok, &r, &err);
        ok = rc == 0 && fe >= 0;
        for (int t = 0; t < NT && ok; t++) ok &= r.ids[L1][t][0] == fe;
        /* the other slots: token 0's router choices minus its last one */
        for (int j = 1; j < K && ok; j++) ok &= r.ids[L1][0][j] == base.ids[L1][0][j - 1];
        MT_CHECK(ok, "%s: forced expert %d (outside token 0's groups) takes rank 0 everywhere, the rest from the "
                 "router's own groups", name, fe);
        ms_intervention_free(iv);
        ms_context_free(c);
        free(base.out);
        free(r.out);
        ms_model_free(m);
    }
}

/* gpt-oss's weights: the softmax over the chosen biased logits, which probs
 * holds; a forced expert's weight from its own logit. */
static void test_softmax_topk(const char *path, const char *name)
{
    static Run base, r;
    MsError err = { 0 };
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", name, m ? "ok" : err.msg)) return;
    const MsModelInfo *mi = ms_model_info(m);
    const int E = mi->n_expert, K = mi->n_expert_used, L0 = 0;
    MsContextParams cp = ms_context_default_params();
    cp.n_threads = 2;
    cp.n_ctx = 64;
    MsContext *c = ms_context_new(m, &cp, &err);
    int32_t tok[NT];
    for (int t = 0; t < NT; t++) tok[t] = (int32_t)((t * 97 + 3) % mi->n_vocab);
    base.n_expert = r.n_expert = E;
    base.out = malloc(sizeof(float) * NT * (size_t)mi->n_vocab);
    r.out = malloc(sizeof(float) * NT * (size_t)mi->n_vocab);
    int rc = run(c, NULL, tok, &base, &err);
    bool ok = rc == 0;
    for (int t = 0; t < NT && ok; t++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < K; j++) mx = fmax(mx, base.probs[L0][t][base.ids[L0][t][j]]);
        for (int j = 0; j < K; j++) s += exp(base.probs[L0][t][base.ids[L0][t][j]] - mx);
        for (int j = 0; j < K; j++) ok &= near(base.w[L0][t][j], exp(base.probs[L0][t][base.ids[L0][t][j]] - mx) / s);
        for (int e = 0; e < E; e++) ok &= base.probs[L0][t][e] == base.logits[L0][t][e];
    }
    MT_CHECK(ok, "%s: probs are the router logits, weights the softmax over the %d chosen", name, K);
    MsIntervention *iv = ms_intervention_new(mi->n_layer, E);
    int fe = base.ids[L0][0][K - 1] == 0 ? 1 : 0;
    for (int e = 0; e < E; e++) {   /* an expert token 0 did not choose */
        bool chosen = false;
        for (int j = 0; j < K; j++) chosen |= base.ids[L0][0][j] == e;
        if (!chosen) { fe = e; break; }
    }
    ms_intervention_force(iv, L0, fe);
    rc = run(c, iv, tok, &r, &err);
    ok = rc == 0 && r.ids[L0][0][0] == fe;
    if (ok) {   /* token 0: fe, then its top K-1; weights = softmax over those K logits */
        const float *z = base.logits[L0][0];
        int ids[MAXE] = { fe };
        for (int j = 1; j < K; j++) ids[j] = base.ids[L0][0][j - 1];
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < K; j++) mx = fmax(mx, z[ids[j]]);
        for (int j = 0; j < K; j++) s += exp(z[ids[j]] - mx);
        for (int j = 0; j < K; j++) ok &= r.ids[L0][0][j] == ids[j] && near(r.w[L0][0][j], exp(z[ids[j]] - mx) / s);
    }
    MT_CHECK(ok, "%s: forced expert %d at rank 0, its weight from its own logit in the softmax", name, fe);
    ms_intervention_free(iv);
    ms_context_free(c);
    free(base.out);
    free(r.out);
    ms_model_free(m);
}

int main(void)
{
    static const char *archs[] = { "olmoe", "qwen2moe", "llama", "granitemoe", "deepseek2" };
    for (size_t i = 0; i < MS_ARRAY_LEN(archs); i++) test_synth(archs[i], MS_TYPE_F32, 11 + i);
    test_synth("qwen2moe", MS_TYPE_Q4_0, 5);

    const char *src = getenv("MS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
    test_model(path, "default model");

    /* the 2026 routers: gpt-oss (softmax over the chosen logits) and the
     * DeepSeek-V3 layout (8 experts in 4 groups, 2 used) */
    MsSynthParams p = ms_synth_default_params();
    p.arch = "gpt-oss"; p.n_layer = 2; p.n_embd = 64; p.n_head = 4; p.n_head_kv = 2; p.head_dim = 16;
    p.n_expert = 8; p.n_expert_used = 2; p.n_ff = 32; p.n_vocab = 300; p.seed = 21; p.n_threads = 2;
    MsError err = { 0 };
    snprintf(path, sizeof path, "%s/gpt-oss-router.gguf", mt_tmpdir());
    if (MT_CHECK(ms_synth_write(path, &p, &err) == 0, "synth gpt-oss: written (%s)", err.msg[0] ? err.msg : "ok"))
        test_softmax_topk(path, "synth gpt-oss");
    remove(path);
    p.arch = "deepseek2"; p.v3 = 1; p.n_layer = 3; p.n_head_kv = 0; p.head_dim = 0; p.seed = 22;
    snprintf(path, sizeof path, "%s/dsv3-router.gguf", mt_tmpdir());
    if (MT_CHECK(ms_synth_write(path, &p, &err) == 0, "synth deepseek2 V3 layout: written (%s)", err.msg[0] ? err.msg : "ok"))
        test_groups(path, "synth deepseek2 V3 layout");
    remove(path);

    const char *dir = mt_shared_dir();
    const char *models[] = { "olmoe-tiny.F32.gguf", "qwen2moe-tiny.F32.gguf", "deepseek2-tiny.F32.gguf",
                             "granitemoe-tiny.F32.gguf" };
    for (size_t i = 0; dir && i < MS_ARRAY_LEN(models); i++) {
        snprintf(path, sizeof path, "%s/fixtures/models/%s", dir, models[i]);
        test_model(path, models[i]);
    }
    if (dir) {
        snprintf(path, sizeof path, "%s/fixtures2/models/gpt-oss-tiny.F32.gguf", dir);
        test_softmax_topk(path, "gpt-oss-tiny.F32");
        snprintf(path, sizeof path, "%s/fixtures-dsv3/models/dsv3-tiny.F32.gguf", dir);
        test_groups(path, "dsv3-tiny.F32");
    }
    if (!dir) mt_skip("the same on the fixture models: %s", mt_shared_absent());
    return mt_done();
}
