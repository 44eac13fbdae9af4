/* test-conformance.c — every fixture model of ../shared against llama.cpp's
 * reference outputs (fixtures/README.md, "How to compare"): tokens, per-layer
 * expert sets (near-ties excepted), applied weights and router probabilities,
 * logits; plus prefill+decode through the KV cache against the one-batch run,
 * and 1 vs 2 threads bit-identical.  Three reference sets, each compared by
 * the first set's rules with the tolerances its own README states:
 * fixtures/ (llama.cpp Feb 2025), fixtures2/ (qwen3moe, gpt-oss, phimoe;
 * August 2026) and fixtures-dsv3/ (the DeepSeek-V3 layout; August 2026).
 * The engine-only part (synth models of every weight type and arch: KV path,
 * micro-batches, threads, F16 KV) runs without ../shared too.
 *
 * The near-tie margin is measured on what the router selects by: the
 * k-th minus the (k+1)-th largest selection score (probs plus any
 * selection bias, experts of groups the router did not keep excluded) and,
 * with group-limited routing, also the gap between the last kept and the
 * best dropped group score; a mismatch is allowed when either is below the
 * tolerance.  For gpt-oss `probs` are router logits, so its margins are in
 * logit units, as its README says.  With quantized weights a prompt is
 * compared in full up to its first rounding divergence (see
 * compare_routing), and decisions after one are bounded, not failed. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "mtest.h"
#include "quant.h"
#include "synth.h"

#define TMAX 1024

/* Routing captured from the observer, indexed by position. */
typedef struct {
    int n_layer, E, kmax;
    int *k;                    /* [n_layer], 0 = no event */
    int32_t *ids;              /* [n_layer][TMAX][kmax] */
    float *w;                  /* [n_layer][TMAX][kmax] */
    float *probs;              /* [n_layer][TMAX][E] */
    int events;
} Capture;

static void cap_init(Capture *c, int n_layer, int E, int kmax)
{
    c->n_layer = n_layer; c->E = E; c->kmax = kmax; c->events = 0;
    c->k = calloc((size_t)n_layer, sizeof(int));
    c->ids = calloc((size_t)n_layer * TMAX * kmax, sizeof(int32_t));
    c->w = calloc((size_t)n_layer * TMAX * kmax, sizeof(float));
    c->probs = calloc((size_t)n_layer * TMAX * E, sizeof(float));
}

static void cap_free(Capture *c) { free(c->k); free(c->ids); free(c->w); free(c->probs); }

static void on_routing(void *user, const MsRoutingEvent *ev)
{
    Capture *c = user;
    c->events++;
    if (ev->layer < 0 || ev->layer >= c->n_layer || ev->k > c->kmax) return;
    c->k[ev->layer] = ev->k;
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0 || p >= TMAX) continue;
        size_t o = ((size_t)ev->layer * TMAX + p);
        memcpy(c->ids + o * c->kmax, ev->experts + (size_t)t * ev->k, (size_t)ev->k * sizeof(int32_t));
        memcpy(c->w + o * c->kmax, ev->weights + (size_t)t * ev->k, (size_t)ev->k * sizeof(float));
        memcpy(c->probs + o * c->E, ev->probs + (size_t)t * ev->n_expert, (size_t)ev->n_expert * sizeof(float));
    }
}

static float *read_f32(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = malloc((size_t)sz + 4);
    if (!p || fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); fclose(f); return NULL; }
    fclose(f);
    *n = (size_t)sz / 4;
    return p;
}

/* k-th minus (k+1)-th largest of v[n] (k >= 1). */
static float margin_k(const float *v, int n, int k)
{
    float *s = malloc((size_t)n * sizeof *s);
    memcpy(s, v, (size_t)n * sizeof *s);
    for (int i = 0; i < n; i++)          /* partial selection sort: k+1 largest */
        for (int j = i + 1; j < n && i <= k; j++)
            if (s[j] > s[i]) { float t = s[i]; s[i] = s[j]; s[j] = t; }
    float m = k < n ? s[k - 1] - s[k] : INFINITY;
    free(s);
    return m;
}

static bool same_set(const int32_t *a, const int32_t *b, int k)
{
    for (int i = 0; i < k; i++) {
        bool found = false;
        for (int j = 0; j < k; j++) if (a[i] == b[j]) found = true;
        if (!found) return false;
    }
    return true;
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[b]) b = i;
    return b;
}

/* Routing decisions (layer, position < n) whose expert sets differ. */
static int route_diffs(const Capture *a, const Capture *b, int n)
{
    int d = 0;
    for (int l = 0; l < a->n_layer; l++)
        for (int t = 0; a->k[l] && t < n; t++) {
            size_t o = ((size_t)l * TMAX + t) * a->kmax;
            if (a->k[l] != b->k[l] || !same_set(a->ids + o, b->ids + o, a->k[l])) d++;
        }
    return d;
}

static MsContext *mkctx(const MsModel *m, int threads, Capture *cap)
{
    MsContextParams p = ms_context_default_params();
    p.n_threads = threads;
    p.n_ctx = 512;
    MsError err = {0};
    MsContext *c = ms_context_new(m, &p, &err);
    if (!c) { mt_diag("context: %s", err.msg); return NULL; }
    if (cap) {
        MsObserver o = { on_routing, NULL, cap };
        ms_context_set_observer(c, &o);
    }
    return c;
}

/* Tolerances by reference set and weight type, as each README states them. */
typedef struct {
    double logit, w, p, margin;
} Tol;

static Tol tolerances(const char *set, const MsModelInfo *I)
{
    const int t = I->weight_type;
    const bool logit_router = I->gating == MS_GATING_SOFTMAX_TOPK;
    if (!strcmp(set, "fixtures2")) {
        /* fixtures2/README.md, "How to compare" */
        if (t == MS_TYPE_F32) return logit_router ? (Tol){2e-4, 1e-5, 1e-4, 1e-5} : (Tol){1e-4, 1e-5, 1e-5, 1e-6};
        if (t == MS_TYPE_Q8_0) return (Tol){0.25, 5e-3, 5e-3, 1e-4};
        if (t == MS_TYPE_BF16) return (Tol){0.25, 2e-2, 0.1, 1e-2};
        if (t == MS_TYPE_MXFP4) return (Tol){0.5, 2e-2, 0.1, 1e-2};
        return (Tol){0.25, 2e-2, 0.1, 1e-2};
    }
    /* fixtures/README.md (fixtures-dsv3 follows its rules): 1e-4 for F32;
     * "about 0.05" for F16 and Q8_0, 0.25 for the rest.  For Q8_0 the
     * README's own implementation of the activation conversion measured
     * 0.06 (rounding from floats that differ in the last bits, amplified at
     * an int8 step); we measure 0.057 on one token of one prompt of
     * qwen2moe-tiny with identical routing, so Q8_0 gets that 0.06. */
    if (t == MS_TYPE_F32) return (Tol){1e-4, 1e-5, 1e-5, 1e-6};
    return (Tol){t == MS_TYPE_F16 ? 0.05 : t == MS_TYPE_Q8_0 ? 0.06 : 0.25, 5e-3, 5e-3, 1e-4};
}

/* Selection margin of one token (see the file comment): probs [E] as the
 * reference reports them, sel_bias [E] or NULL. */
static float sel_margin(const MsModelInfo *I, const float *probs, const float *sel_bias, int k)
{
    const int E = I->n_expert, G = I->n_expert_groups > 1 ? I->n_expert_groups : 1, gs = E / G;
    float s[4096];
    for (int e = 0; e < E; e++) s[e] = probs[e] + (sel_bias ? sel_bias[e] : 0.0f);
    float gmargin = INFINITY;
    if (G > 1) {
        float gsc[64];
        for (int g = 0; g < G; g++) {
            float a = -INFINITY, b = -INFINITY;
            for (int e = g * gs; e < (g + 1) * gs; e++) {
                if (s[e] > a) { b = a; a = s[e]; } else if (s[e] > b) b = s[e];
            }
            gsc[g] = a + b;
        }
        gmargin = margin_k(gsc, G, I->n_group_used);
        /* drop the experts of groups below the kept ones */
        float kept_min = INFINITY;
        float sorted[64];
        memcpy(sorted, gsc, sizeof(float) * (size_t)G);
        for (int i = 0; i < G; i++)
            for (int j = i + 1; j < G; j++)
                if (sorted[j] > sorted[i]) { float x = sorted[i]; sorted[i] = sorted[j]; sorted[j] = x; }
        kept_min = sorted[I->n_group_used - 1];
        for (int g = 0; g < G; g++)
            if (gsc[g] < kept_min)
                for (int e = g * gs; e < (g + 1) * gs; e++) s[e] = -INFINITY;
    }
    return fminf(margin_k(s, E, k), gmargin);
}

/* The model's selection-only bias of one layer (exp_probs_b), or NULL. */
static const float *sel_bias(const MsModel *m, int layer)
{
    char nm[64];
    snprintf(nm, sizeof nm, "blk.%d.exp_probs_b.bias", layer);
    const MsGgufTensor *t = ms_gguf_find_tensor(ms_model_gguf(m), nm);
    return t && t->type == MS_TYPE_F32 ? t->data : NULL;
}

typedef struct {
    double logit_max, logit_ss; size_t logit_n;
    double w_max, p_max;
    int argmax_ok, argmax_n, argmax_all_ok, argmax_all_n;
    int route_mismatch, route_neartie, route_excused, route_n, divergences;
    double kv_logit_max; int kv_route_mismatch, kv_excused, kv_n;
} Stats;

/* One prompt's routing (ours) against a reference capture (llama.cpp's, or
 * our own one-batch run for the KV path).
 *
 * The divergence is the first (position, block) in (position, block) order
 * where the expert sets differ (at any margin) or, with quantized weights,
 * the router probabilities differ by more than the probs tolerance.  Before
 * it everything is compared: weights and probs within their tolerances (and
 * the logits, by the caller, up to its position).  A set that differs at a
 * near-tie is allowed.  One that differs beyond the near-tie margin fails,
 * unless (quantized weights only) the router probabilities had already moved
 * beyond tolerance at or before it: with 8-bit activations an input that lies
 * within a float rounding of a quantisation step rounds differently here
 * and in llama.cpp (whose CPU kernels sum in other orders and use their own
 * SIMD exp), and the step moves that token's hidden state — in a tiny random
 * model enough to move later routing.  Such excused decisions are counted;
 * the caller bounds them at 1 % of the decisions, as the fixture READMEs
 * report for implementations that reproduce the activation conversion
 * (fixtures-dsv3: 921 of 927 decisions agree). */
typedef struct {
    int n, neartie, mismatch, excused;
    int div_t, div_l;          /* divergence (n, L when none) */
    double w_max, p_max;       /* before the divergence */
} RouteCmp;

static RouteCmp compare_routing(const MsModelInfo *I, const MsModel *m, const Capture *ours, const Capture *ref,
                                int n, const Tol *tol, bool quant, const char *file, size_t pi, bool verbose)
{
    const int L = I->n_layer, E = I->n_expert;
    RouteCmp r = { .div_t = n, .div_l = L };
    int pd_t = n, pd_l = L;    /* first probs divergence */
    for (int t = 0; t < n; t++)
        for (int layer = 0; layer < L; layer++) {
            if (!ref->k[layer]) continue;
            const int k = ref->k[layer];
            size_t o = (size_t)layer * TMAX + t;
            const int32_t *oid = ours->ids + o * E, *rid = ref->ids + o * E;
            const float *op = ours->probs + o * E, *rp = ref->probs + o * E;
            bool before = t < r.div_t || (t == r.div_t && layer < r.div_l);
            double pdiff = 0;
            for (int e = 0; e < E; e++) pdiff = fmax(pdiff, fabs((double)op[e] - rp[e]));
            if (quant && pdiff > tol->p && pd_t == n) { pd_t = t; pd_l = layer; }
            r.n++;
            if (!same_set(rid, oid, k)) {
                float mg = sel_margin(I, rp, sel_bias(m, layer), k);
                bool diverged = pd_t < t || (pd_t == t && pd_l <= layer);
                if (mg < tol->margin) r.neartie++;
                else if (diverged) r.excused++;
                else {
                    r.mismatch++;
                    if (verbose) mt_diag("%s p%zu L%d t%d: experts differ (margin %.3g)", file, pi, layer, t, mg);
                }
                if (before) { r.div_t = t; r.div_l = layer; }
                continue;
            }
            if (quant && pdiff > tol->p && before) { r.div_t = t; r.div_l = layer; continue; }
            if (!before) continue;
            for (int j = 0; j < k; j++)
                for (int jj = 0; jj < k; jj++)
                    if (oid[jj] == rid[j]) r.w_max = fmax(r.w_max, fabs((double)ours->w[o * E + jj] - ref->w[o * E + j]));
            r.p_max = fmax(r.p_max, pdiff);
        }
    return r;
}

/* One model (a GGUF file or a Hugging Face checkpoint directory) against
 * the reference JSON jpath of set `set`; file labels the diagnostics. */
static void test_model_at(const char *file, const char *path, const char *jpath, const char *dir, const char *set)
{
    json_error_t jerr;
    json_t *root = json_load_file(jpath, 0, &jerr);
    if (!root) { mt_diag("%s: no reference (%s), skipped", file, jerr.text); return; }

    MsError err = {0};
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", file, m ? "ok" : err.msg)) { json_decref(root); return; }
    const MsModelInfo *I = ms_model_info(m);
    const Tol tol = tolerances(set, I);
    const bool quant = I->weight_type != MS_TYPE_F32;
    const double tol_logit = tol.logit, tol_w = tol.w, tol_p = tol.p;
    const double tol_kv = tol_logit;
    MT_CHECK(I->n_vocab == (int)json_integer_value(json_object_get(root, "n_vocab"))
             && I->n_layer == (int)json_integer_value(json_object_get(root, "n_layer"))
             && I->n_expert == (int)json_integer_value(json_object_get(root, "n_expert"))
             && I->n_expert_used == (int)json_integer_value(json_object_get(root, "n_expert_used")),
             "%s: hyper-parameters match the reference", file);

    const int E = I->n_expert, V = I->n_vocab, L = I->n_layer;
    Capture cap, cap1, capkv;
    cap_init(&cap, L, E, E); cap_init(&cap1, L, E, E); cap_init(&capkv, L, E, E);
    MsContext *c2 = mkctx(m, 2, &cap), *c1 = mkctx(m, 1, &cap1), *ckv = mkctx(m, 2, &capkv);
    if (!MT_CHECK(c2 && c1 && ckv, "%s: contexts", file)) goto out;

    Stats st = {0};
    bool thread_ok = true, tok_ok = true;
    json_t *prompts = json_object_get(root, "prompts");
    for (size_t pi = 0; pi < json_array_size(prompts); pi++) {
        json_t *pr = json_array_get(prompts, pi);
        const char *text = json_string_value(json_object_get(pr, "text"));
        json_t *jt = json_object_get(pr, "tokens");
        int n = (int)json_array_size(jt);
        if (n < 1 || n > TMAX) continue;
        int32_t *ref = malloc((size_t)n * sizeof *ref);
        for (int i = 0; i < n; i++) ref[i] = (int32_t)json_integer_value(json_array_get(jt, i));

        int32_t *ours = NULL;
        int nt = ms_tokenizer_encode(ms_model_tokenizer(m), text, strlen(text), true, &ours, &err);
        bool same = nt == n && memcmp(ours, ref, (size_t)n * sizeof *ref) == 0;
        if (!same) {
            tok_ok = false;
            mt_diag("%s p%zu: tokens differ (%d vs %d reference)%s%s", file, pi, nt, n,
                    nt < 0 ? ": " : "", nt < 0 ? err.msg : "");
        }
        free(ours);

        /* One batch, all logits. */
        float *lg = malloc((size_t)n * V * sizeof *lg), *lg1 = malloc((size_t)n * V * sizeof *lg1);
        float *lkv = malloc((size_t)n * V * sizeof *lkv);
        ms_context_reset(c2); ms_context_reset(c1); ms_context_reset(ckv);
        int rc = ms_context_eval(c2, ref, n, lg, true, &err);
        if (!MT_CHECK(rc == 0, "%s p%zu: eval (%s)", file, pi, rc ? err.msg : "ok")) {
            free(ref); free(lg); free(lg1); free(lkv); continue;
        }
        rc = ms_context_eval(c1, ref, n, lg1, true, &err);
        if (rc || memcmp(lg, lg1, (size_t)n * V * sizeof *lg) != 0
            || memcmp(cap.ids, cap1.ids, (size_t)L * TMAX * E * sizeof(int32_t)) != 0
            || memcmp(cap.w, cap1.w, (size_t)L * TMAX * E * sizeof(float)) != 0)
            thread_ok = false;

        /* Prefill half, decode the rest one token at a time. */
        int h = n / 2;
        rc = h > 0 ? ms_context_eval(ckv, ref, h, lkv, true, &err) : 0;
        for (int i = h; rc == 0 && i < n; i++) rc = ms_context_eval(ckv, ref + i, 1, lkv + (size_t)i * V, false, &err);
        MT_CHECK(rc == 0, "%s p%zu: prefill + decode (%s)", file, pi, rc ? err.msg : "ok");

        /* The reference's routing as a capture (layers it lists). */
        Capture rc_ref;
        cap_init(&rc_ref, L, E, E);
        json_t *routing = json_object_get(pr, "routing");
        for (size_t ri = 0; ri < json_array_size(routing); ri++) {
            json_t *rl = json_array_get(routing, ri);
            int layer = (int)json_integer_value(json_object_get(rl, "layer"));
            json_t *jx = json_object_get(rl, "experts"), *jw = json_object_get(rl, "weights"),
                   *jp = json_object_get(rl, "probs");
            if (layer < 0 || layer >= L || cap.k[layer] != I->n_expert_used) {
                MT_CHECK(0, "%s p%zu: layer %d routed with k %d (want %d)", file, pi, layer,
                         layer >= 0 && layer < L ? cap.k[layer] : -1, I->n_expert_used);
                continue;
            }
            const int k = I->n_expert_used;
            rc_ref.k[layer] = k;
            for (int t = 0; t < n; t++) {
                size_t o = (size_t)layer * TMAX + t;
                for (int j = 0; j < k; j++) {
                    rc_ref.ids[o * E + j] = (int32_t)json_integer_value(json_array_get(json_array_get(jx, t), j));
                    rc_ref.w[o * E + j] = (float)json_number_value(json_array_get(json_array_get(jw, t), j));
                }
                for (int e = 0; e < E; e++)
                    rc_ref.probs[o * E + e] = (float)json_number_value(json_array_get(json_array_get(jp, t), e));
            }
        }
        RouteCmp rcmp = compare_routing(I, m, &cap, &rc_ref, n, &tol, quant, file, pi, true);
        st.route_n += rcmp.n;
        st.route_neartie += rcmp.neartie;
        st.route_mismatch += rcmp.mismatch;
        st.route_excused += rcmp.excused;
        st.divergences += rcmp.div_t < n;
        st.w_max = fmax(st.w_max, rcmp.w_max);
        st.p_max = fmax(st.p_max, rcmp.p_max);
        cap_free(&rc_ref);

        /* Logits vs reference up to the divergence; argmax over every position. */
        char lpath[1024];
        snprintf(lpath, sizeof lpath, "%s/%s/reference/%s", dir, set,
                 json_string_value(json_object_get(pr, "logits")));
        size_t nref = 0;
        float *rl = read_f32(lpath, &nref);
        if (MT_CHECK(rl && nref == (size_t)n * V, "%s p%zu: reference logits readable", file, pi)) {
            for (int t = 0; t < n; t++) {
                bool same_top = argmax(lg + (size_t)t * V, V) == argmax(rl + (size_t)t * V, V);
                st.argmax_all_n++;
                st.argmax_all_ok += same_top;
                if (t >= rcmp.div_t) continue;
                for (int v = 0; v < V; v++) {
                    double d = fabs((double)lg[(size_t)t * V + v] - rl[(size_t)t * V + v]);
                    if (!(d <= st.logit_max)) st.logit_max = isnan(d) ? INFINITY : d;
                    st.logit_ss += d * d;
                    st.logit_n++;
                }
                st.argmax_n++;
                st.argmax_ok += same_top;
            }
        }
        free(rl);

        /* KV path vs the one-batch run, by the same rules. */
        RouteCmp kcmp = compare_routing(I, m, &capkv, &cap, n, &tol, quant, file, pi, false);
        st.kv_route_mismatch += kcmp.mismatch;
        st.kv_excused += kcmp.excused;
        st.kv_n += kcmp.n;
        for (int t = 0; t < kcmp.div_t; t++)
            for (int v = 0; v < V; v++)
                st.kv_logit_max = fmax(st.kv_logit_max, fabs((double)lg[(size_t)t * V + v] - lkv[(size_t)t * V + v]));
        free(ref); free(lg); free(lg1); free(lkv);
    }

    double rms = st.logit_n ? sqrt(st.logit_ss / (double)st.logit_n) : 0;
    mt_diag("%s: logits max %.3g rms %.3g (tol %.3g); weights max %.3g (tol %.3g) probs max %.3g (tol %.3g); "
            "argmax %.1f%% (all positions %.1f%%); routing %d mismatches, %d near-ties, %d after a rounding "
            "divergence (%d prompts) of %d; kv-path logits max %.3g, %d routing diffs (%d after a divergence)",
            file, st.logit_max, rms, tol_logit, st.w_max, tol_w, st.p_max, tol_p,
            st.argmax_n ? 100.0 * st.argmax_ok / st.argmax_n : 0.0,
            st.argmax_all_n ? 100.0 * st.argmax_all_ok / st.argmax_all_n : 0.0, st.route_mismatch, st.route_neartie,
            st.route_excused, st.divergences, st.route_n, st.kv_logit_max, st.kv_route_mismatch, st.kv_excused);
    MT_CHECK(tok_ok, "%s: tokenization identical to llama.cpp", file);
    MT_CHECK(st.route_mismatch == 0, "%s: expert sets identical (except near-ties and after a rounding divergence)", file);
    MT_CHECK(st.route_excused * 100 <= st.route_n && st.argmax_all_ok * 100 >= 98 * st.argmax_all_n,
             "%s: routing decisions after rounding divergences <= 1%% (%d of %d), argmax on >= 98%% of all positions",
             file, st.route_excused, st.route_n);
    MT_CHECK(st.w_max <= tol_w && st.p_max <= tol_p, "%s: weights within %.g, probs within %.g", file, tol_w, tol_p);
    MT_CHECK(st.logit_n > 0 && st.logit_max <= tol_logit, "%s: logits within %.g", file, tol_logit);
    MT_CHECK(st.kv_route_mismatch == 0 && st.kv_excused * 100 <= st.kv_n && st.kv_logit_max <= tol_kv,
             "%s: prefill+decode matches one batch (logits %.3g <= %.g)", file, st.kv_logit_max, tol_kv);
    MT_CHECK(thread_ok, "%s: 1 and 2 threads bit-identical", file);
out:
    ms_context_free(c2); ms_context_free(c1); ms_context_free(ckv);
    cap_free(&cap); cap_free(&cap1); cap_free(&capkv);
    ms_model_free(m);
    json_decref(root);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_model(const char *dir, const char *set, const char *file)
{
    char path[1024], jpath[1024];
    char base[256];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(file) - 5), file);
    snprintf(path, sizeof path, "%s/%s/models/%s", dir, set, file);
    snprintf(jpath, sizeof jpath, "%s/%s/reference/%s.json", dir, set, base);
    test_model_at(file, path, jpath, dir, set);
}

/* A checkpoint directory and the GGUF it was made from give the same
 * tokens, routing and logits, bit for bit: the loader hands the forward
 * pass the same weights and hyper-parameters. */
static void hf_vs_gguf(const char *name, const char *hf_path, const char *gguf_path, const char *jpath)
{
    json_error_t jerr;
    json_t *root = json_load_file(jpath, 0, &jerr);
    MsError err = { 0 }, err2 = { 0 };
    MsModel *a = ms_model_load(hf_path, &err), *b = ms_model_load(gguf_path, &err2);
    if (!MT_CHECK(root && a && b, "%s: directory and GGUF load (%s / %s)", name, a ? "ok" : err.msg, b ? "ok" : err2.msg)) {
        ms_model_free(a); ms_model_free(b); json_decref(root);
        return;
    }
    const MsModelInfo *I = ms_model_info(a);
    const int E = I->n_expert, V = I->n_vocab, L = I->n_layer;
    const MsModelInfo *J = ms_model_info(b);
    MT_CHECK(I->arch == J->arch && I->n_layer == J->n_layer && I->n_expert == J->n_expert
             && I->n_expert_used == J->n_expert_used && I->n_embd == J->n_embd && I->n_head == J->n_head
             && I->n_head_kv == J->n_head_kv && I->head_dim_k == J->head_dim_k && I->head_dim_v == J->head_dim_v
             && I->n_rot == J->n_rot && I->n_ff_exp == J->n_ff_exp && I->n_ff_shexp == J->n_ff_shexp
             && I->n_vocab == J->n_vocab && I->n_ctx_train == J->n_ctx_train && I->gating == J->gating
             && I->rope_base == J->rope_base && I->rms_eps == J->rms_eps && I->n_swa == J->n_swa
             && I->w_scale == J->w_scale && I->norm_w == J->norm_w && I->weight_type == J->weight_type,
             "%s: same hyper-parameters", name);
    Capture ca, cb;
    cap_init(&ca, L, E, E); cap_init(&cb, L, E, E);
    MsContext *xa = mkctx(a, 2, &ca), *xb = mkctx(b, 2, &cb);
    bool tok_same = true, logit_same = true, route_same = true;
    int prompts = 0;
    json_t *pr_all = json_object_get(root, "prompts");
    for (size_t pi = 0; xa && xb && pi < json_array_size(pr_all); pi++) {
        const char *text = json_string_value(json_object_get(json_array_get(pr_all, pi), "text"));
        int32_t *ta = NULL, *tb = NULL;
        int na = ms_tokenizer_encode(ms_model_tokenizer(a), text, strlen(text), true, &ta, &err);
        int nb = ms_tokenizer_encode(ms_model_tokenizer(b), text, strlen(text), true, &tb, &err);
        if (na != nb || na < 1 || memcmp(ta, tb, (size_t)na * sizeof *ta)) tok_same = false;
        if (nb >= 1 && nb <= TMAX) {
            float *la = malloc((size_t)nb * V * sizeof *la), *lb = malloc((size_t)nb * V * sizeof *lb);
            ms_context_reset(xa); ms_context_reset(xb);
            memset(ca.ids, 0xff, (size_t)L * TMAX * E * sizeof(int32_t));
            memset(cb.ids, 0xff, (size_t)L * TMAX * E * sizeof(int32_t));
            int r1 = ms_context_eval(xa, tb, nb, la, true, &err), r2 = ms_context_eval(xb, tb, nb, lb, true, &err2);
            if (r1 || r2 || memcmp(la, lb, (size_t)nb * V * sizeof *la)) logit_same = false;
            if (memcmp(ca.ids, cb.ids, (size_t)L * TMAX * E * sizeof(int32_t))
                || memcmp(ca.w, cb.w, (size_t)L * TMAX * E * sizeof(float)) || ca.events == 0)
                route_same = false;
            prompts++;
            free(la); free(lb);
        }
        free(ta); free(tb);
    }
    MT_CHECK(prompts > 0 && tok_same, "%s: directory and GGUF tokenize %d prompts identically", name, prompts);
    MT_CHECK(prompts > 0 && route_same, "%s: directory and GGUF route identically (experts and weights, bit for bit)", name);
    MT_CHECK(prompts > 0 && logit_same, "%s: directory and GGUF give bit-identical logits", name);
    ms_context_free(xa); ms_context_free(xb);
    cap_free(&ca); cap_free(&cb);
    ms_model_free(a); ms_model_free(b);
    json_decref(root);
}

/* Every checkpoint of fixtures-hf/ against the reference of the GGUF it
 * holds (found by name in the three sets), by the same rules, and against
 * that GGUF through moescope. */
static void test_hf(const char *dir, const char *only)
{
    char hdir[1024];
    snprintf(hdir, sizeof hdir, "%s/fixtures-hf", dir);
    DIR *d = opendir(hdir);
    if (!d) { mt_skip("Hugging Face checkpoints: %s absent", hdir); return; }
    char *names[64];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 64)
        if (de->d_name[0] != '.' && de->d_type == DT_DIR) names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    if (!only) MT_CHECK(nn >= 8, "found %d checkpoints in fixtures-hf", nn);
    static const char *const sets[] = { "fixtures", "fixtures2", "fixtures-dsv3" };
    for (int i = 0; i < nn; i++) {
        if (only && !strstr(names[i], only)) { free(names[i]); continue; }
        char path[1400], jpath[1400], gpath[1400], label[300];
        snprintf(path, sizeof path, "%s/%s", hdir, names[i]);
        snprintf(label, sizeof label, "hf/%s", names[i]);
        const char *set = NULL;
        for (size_t k = 0; k < sizeof sets / sizeof sets[0] && !set; k++) {
            snprintf(jpath, sizeof jpath, "%s/%s/reference/%s.json", dir, sets[k], names[i]);
            FILE *f = fopen(jpath, "r");
            if (f) { fclose(f); set = sets[k]; }
        }
        if (MT_CHECK(set != NULL, "%s: has a reference", label)) {
            snprintf(gpath, sizeof gpath, "%s/%s/models/%s.gguf", dir, set, names[i]);
            test_model_at(label, path, jpath, dir, set);
            hf_vs_gguf(label, path, gpath, jpath);
        }
        free(names[i]);
    }
}

/* ---- synthetic models of every weight type and architecture, and the
 * bundled default model: no reference.  Checks what holds without llama.cpp: finite logits, prefill+decode equal
 * to one batch (routing identical, logits close), micro-batching (n_batch 5)
 * equal to one batch, 1/2/3 threads bit-identical, F16 KV cache close to F32.
 * deepseek2 with 27 blocks takes llama.cpp's "lite" path (no q LoRA). */
static void engine_case(const char *path, const char *what, bool f16kv)
{
    MsError err = {0};
    MsModel *m = ms_model_load(path, &err);
    if (!MT_CHECK(m != NULL, "%s: loads (%s)", what, m ? "ok" : err.msg)) return;
    const MsModelInfo *I = ms_model_info(m);
    const int type = I->weight_type;
    const int V = I->n_vocab, L = I->n_layer, E = I->n_expert, n = 23;
    int32_t toks[23];
    for (int i = 0; i < n; i++) toks[i] = (int32_t)((i * 7919 + 13) % V);
    Capture ca, cb;
    cap_init(&ca, L, E, E); cap_init(&cb, L, E, E);
    float *la = malloc((size_t)n * V * sizeof(float)), *lb = malloc((size_t)n * V * sizeof(float));
    MsContextParams p = ms_context_default_params();
    p.n_ctx = 64; p.n_threads = 2;
    MsContext *c = ms_context_new(m, &p, &err);
    MsObserver oa = { on_routing, NULL, &ca }, ob = { on_routing, NULL, &cb };
    bool ok = c && ms_context_eval((ms_context_set_observer(c, &oa), c), toks, n, la, true, &err) == 0;
    bool finite = ok;
    for (size_t i = 0; ok && i < (size_t)n * V; i++) finite &= isfinite(la[i]) != 0;
    MT_CHECK(ok && finite, "%s: one batch runs, logits finite (%s)", what, ok ? "ok" : err.msg);
    /* prefill 9 + decode */
    ms_context_reset(c);
    ms_context_set_observer(c, &ob);
    ok = ms_context_eval(c, toks, 9, lb, true, &err) == 0;
    for (int i = 9; ok && i < n; i++) ok = ms_context_eval(c, toks + i, 1, lb + (size_t)i * V, false, &err) == 0;
    double d = 0;
    for (size_t i = 0; ok && i < (size_t)n * V; i++) d = fmax(d, fabs((double)la[i] - lb[i]));
    int n_dec = 0;
    for (int l = 0; l < L; l++) n_dec += ca.k[l] ? n : 0;
    int rdiff = route_diffs(&ca, &cb, n);
    bool same_route = rdiff == 0;
    /* F32: identical routing.  Quantised: a few decisions may flip (see below). */
    const int max_rdiff = type == MS_TYPE_F32 ? 0 : n_dec / 20;
    /* Quantised weights amplify last-bit differences of the F32 parts (BLAS
     * blocking differs with the batch shape) through activation rounding;
     * KV-cache or position bugs give O(1) errors and routing changes. */
    double tol = type == MS_TYPE_F32 ? 1e-4 : 1.0;
    MT_CHECK(ok && (d <= tol || !same_route), "%s: prefill+decode logits within %.2g of one batch (%.3g)", what, tol, d);
    MT_CHECK(ok && rdiff <= max_rdiff, "%s: prefill+decode routing: %d of %d decisions differ (max %d)",
             what, rdiff, n_dec, max_rdiff);
    ms_context_free(c);
    /* thread counts and micro-batches: bit-identical */
    int cfg[3][2] = { {1, 512}, {3, 512}, {2, 5} };
    for (int k = 0; k < 3; k++) {
        p.n_threads = cfg[k][0]; p.n_batch = cfg[k][1];
        c = ms_context_new(m, &p, &err);
        memset(cb.ids, 0, (size_t)L * TMAX * E * sizeof(int32_t));
        if (c) ms_context_set_observer(c, &ob);
        ok = c && ms_context_eval(c, toks, n, lb, true, &err) == 0;
        bool same = ok && memcmp(la, lb, (size_t)n * V * sizeof(float)) == 0
                    && memcmp(ca.ids, cb.ids, (size_t)L * TMAX * E * sizeof(int32_t)) == 0;
        if (cfg[k][1] == 512)
            MT_CHECK(same, "%s: %d threads bit-identical to 2", what, cfg[k][0]);
        else {
            double dd = 0;
            for (size_t i = 0; ok && i < (size_t)n * V; i++) dd = fmax(dd, fabs((double)la[i] - lb[i]));
            int rd = route_diffs(&ca, &cb, n);
            MT_CHECK(ok && (dd <= tol || rd > 0), "%s: micro-batches of 5 within %.2g (%.3g)", what, tol, dd);
            MT_CHECK(ok && rd <= max_rdiff, "%s: micro-batches of 5: %d of %d routing decisions differ (max %d)",
                     what, rd, n_dec, max_rdiff);
        }
        ms_context_free(c);
    }
    if (f16kv) {
        p.n_threads = 2; p.n_batch = 0; p.kv_type = MS_KV_F16;
        c = ms_context_new(m, &p, &err);
        memset(cb.ids, 0, (size_t)L * TMAX * E * sizeof(int32_t));
        if (c) ms_context_set_observer(c, &ob);
        ok = c && ms_context_eval(c, toks, n, lb, true, &err) == 0;
        d = 0;
        for (size_t i = 0; ok && i < (size_t)n * V; i++) d = fmax(d, fabs((double)la[i] - lb[i]));
        same_route = memcmp(ca.ids, cb.ids, (size_t)L * TMAX * E * sizeof(int32_t)) == 0;
        /* F32 weights: within 0.05 (synth olmoe measures 0.003).  Quantised
         * weights amplify the F16 rounding of K/V through activation rounding
         * as they do the last-bit differences above (Q8_0 synth models and
         * the default model measure 0.12-0.15), so they get the same bound. */
        const double tol16 = type == MS_TYPE_F32 ? 0.05 : tol;
        MT_CHECK(ok && (!same_route || (d > 0 && d < tol16)), "%s: F16 KV cache close to F32 (%.3g, bound %g%s)", what,
                 d, tol16, same_route ? "" : "; routing differs, so not bounded");
        ms_context_free(c);
    }
    free(la); free(lb);
    cap_free(&ca); cap_free(&cb);
    ms_model_free(m);
}

static void synth_case_ex(const char *arch, int type, int n_layer, int embd, int ff, bool f16kv, int head_dim, int v3,
                          int window)
{
    MsSynthParams sp = ms_synth_default_params();
    sp.arch = arch; sp.type = type; sp.n_layer = n_layer; sp.n_embd = embd; sp.n_ff = ff;
    sp.head_dim = head_dim; sp.v3 = v3; sp.n_swa = window;
    sp.n_head = 4; sp.n_head_kv = strcmp(arch, "olmoe") == 0 || strcmp(arch, "deepseek2") == 0 ? 4 : 2;
    sp.n_expert = 8; sp.n_expert_used = 3; sp.n_vocab = 300; sp.seed = 7;
    char path[512], what[96];
    snprintf(what, sizeof what, "synth %s%s %s L%d%s", arch, v3 ? " (V3 layout)" : "", ms_type_name(type), n_layer,
             window ? " window" : "");
    snprintf(path, sizeof path, "%s/%s-%s-%d-%d.gguf", mt_tmpdir(), arch, ms_type_name(type), n_layer, v3);
    MsError err = {0};
    if (MT_CHECK(ms_synth_write(path, &sp, &err) == 0, "%s: written (%s)", what, err.msg[0] ? err.msg : "ok"))
        engine_case(path, what, f16kv);
    remove(path);
}

static void synth_case(const char *arch, int type, int n_layer, int embd, int ff, bool f16kv)
{
    synth_case_ex(arch, type, n_layer, embd, ff, f16kv, 0, 0, 0);
}


/* Every model of one reference set; returns how many there were. */
static int test_set(const char *dir, const char *set, const char *only)
{
    char mdir[1024];
    snprintf(mdir, sizeof mdir, "%s/%s/models", dir, set);
    DIR *d = opendir(mdir);
    if (!MT_CHECK(d != NULL, "%s opens", mdir)) return 0;
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".gguf") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    for (int i = 0; i < nn; i++) {
        if (!only || strstr(names[i], only)) test_model(dir, set, names[i]);
        free(names[i]);
    }
    return nn;
}

/* Every fixture model of the three reference sets. */
static void test_fixtures(const char *only)
{
    const char *dir = mt_shared_dir();
    if (!dir) {
        mt_skip("fixture models vs llama.cpp's reference outputs: %s", mt_shared_absent());
        return;
    }
    static const char *const sets[] = { "fixtures", "fixtures2", "fixtures-dsv3" };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        int n = test_set(dir, sets[i], only);
        if (!only) MT_CHECK(n > 0, "found %d models in %s", n, sets[i]);
    }
    test_hf(dir, only);
}

/* meson runs this twice (mtest.h, mt_parts): "conformance" = --reference,
 * "engine-consistency" = --own. */
int main(int argc, char **argv)
{
    const int parts = mt_parts(argc, argv);
    const char *only = getenv("MS_CONFORMANCE_ONLY");   /* debugging aid: one fixture model, no synth */
    if (parts & MT_REFERENCE) test_fixtures(only);
    if ((parts & MT_OWN) && !only) {
        const int types[] = { MS_TYPE_F16, MS_TYPE_BF16, MS_TYPE_Q8_0, MS_TYPE_Q4_0, MS_TYPE_Q4_1, MS_TYPE_Q5_0,
                              MS_TYPE_Q5_1, MS_TYPE_Q2_K, MS_TYPE_Q3_K, MS_TYPE_Q4_K, MS_TYPE_Q5_K, MS_TYPE_Q6_K };
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            synth_case(i % 2 ? "qwen2moe" : "llama", types[i], 2, 256, 256, false);
        synth_case("olmoe", MS_TYPE_F32, 2, 64, 32, true);
        synth_case("granitemoe", MS_TYPE_Q8_0, 2, 256, 256, false);
        synth_case("deepseek2", MS_TYPE_F32, 27, 64, 32, true);
        synth_case("deepseek2", MS_TYPE_Q4_K, 3, 256, 256, false);
        const char *src = getenv("MS_SOURCE_DIR");
        char path[1024];
        snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
        engine_case(path, "default model", true);
        /* the 2026 architectures: head widths of their own, a sliding window
         * of 8 that the 23 tokens (prefill 9, then decode) run past, MXFP4 and
         * IQ4_NL experts, the DeepSeek-V3 layout's K-only cache and groups */
        synth_case_ex("qwen3moe", MS_TYPE_Q8_0, 2, 128, 64, false, 64, 0, 0);
        synth_case_ex("qwen3moe", MS_TYPE_F32, 2, 64, 32, true, 32, 0, 0);
        synth_case_ex("gpt-oss", MS_TYPE_F32, 2, 64, 32, true, 32, 0, 8);
        synth_case_ex("gpt-oss", MS_TYPE_MXFP4, 2, 64, 64, false, 32, 0, 8);
        synth_case_ex("phimoe", MS_TYPE_IQ4_NL, 2, 128, 64, false, 0, 0, 0);
        synth_case_ex("deepseek2", MS_TYPE_F32, 3, 64, 32, true, 0, 1, 0);
        synth_case_ex("deepseek2", MS_TYPE_Q8_0, 3, 128, 64, false, 0, 1, 0);
    }
    return mt_done();
}
