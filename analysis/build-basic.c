/* build-basic.c — typed results of load, coactivation, affinity and super
 * experts from their accumulators (METHODS.md §1, §2, §4): per-layer
 * statistics, dead/cold lists, top transitions, the super-expert ranking
 * and the massive-activation profile.  Pure (results.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"

static void *dup_mem(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

/* ------------------------------------------------------------------ load */

MsLoadResult *ms_load_result_build(const MsAnHead *h, MsAnRole role, MsLoadAcc *const *acc, const int *layers,
                                   int n)
{
    MsLoadResult *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->head = *h;
    r->role = role;
    r->layers = calloc((size_t)n + 1, sizeof *r->layers);
    if (!r->layers) { free(r); return NULL; }
    r->n_layers = n;
    int E = h->n_expert;
    size_t ne = (size_t)E;
    for (int i = 0; i < n; i++) {
        MsLoadStats S;
        ms_load_acc_stats(acc[i], &S);
        MsLoadLayer *l = &r->layers[i];
        l->layer = layers[i];
        l->n_tokens = S.n_tokens;
        l->n_selections = S.n_selections;
        l->counts = dup_mem(S.counts, ne * sizeof *S.counts);
        l->share = dup_mem(S.share, ne * sizeof *S.share);
        l->coverage = dup_mem(S.coverage, ne * sizeof *S.coverage);
        l->dead = malloc(ne * sizeof *l->dead);
        l->cold = malloc(ne * sizeof *l->cold);
        if (!l->counts || !l->share || !l->coverage || !l->dead || !l->cold) goto oom;
        l->entropy = S.entropy;
        l->entropy_norm = S.entropy_norm;
        l->exp_entropy = S.exp_entropy;
        l->kl_uniform = S.kl_uniform;
        l->gini = S.gini;
        l->cv = S.cv;
        l->max_over_mean = S.max_over_mean;
        l->maxvio = S.maxvio;
        /* r_e = c_e/M below 0.1 · (mean selections per token) / E */
        for (int e = 0; e < E; e++) {
            if (S.counts[e] == 0) l->dead[l->n_dead++] = e;
            if (S.n_tokens > 0 && (double)S.counts[e] / (double)S.n_tokens <
                                      0.1 * ((double)S.n_selections / (double)S.n_tokens) / E)
                l->cold[l->n_cold++] = e;
        }
        l->jaccard_adjacent = S.jaccard_mean;
        l->n_prob_tokens = S.n_prob_tokens;
        l->token_entropy_mean = S.token_entropy_mean;
        l->token_entropy_std = S.token_entropy_std;
        l->top1_margin_mean = S.top1_margin_mean;
        l->importance_cv2 = S.importance_cv2;
        l->laux = S.laux;
        if (S.n_prob_tokens > 0) {
            l->pbar = dup_mem(S.pbar, ne * sizeof *S.pbar);
            l->importance = dup_mem(S.importance, ne * sizeof *S.importance);
            if (!l->pbar || !l->importance) goto oom;
        }
    }
    return r;
oom:
    ms_load_result_free(r);
    return NULL;
}

/* ---------------------------------------------------------- coactivation */

MsCoactivationResult *ms_coactivation_result_build(const MsAnHead *h, MsAnRole role, MsCoactAcc *const *acc,
                                                   const int *layers, int n)
{
    MsCoactivationResult *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->head = *h;
    r->role = role;
    r->layers = calloc((size_t)n + 1, sizeof *r->layers);
    if (!r->layers) { free(r); return NULL; }
    r->n_layers = n;
    size_t EE = (size_t)h->n_expert * h->n_expert;
    for (int i = 0; i < n; i++) {
        MsCoactLayer *l = &r->layers[i];
        l->layer = layers[i];
        l->N = malloc(EE * sizeof *l->N);
        l->coact = malloc(EE * sizeof *l->coact);
        l->jaccard = malloc(EE * sizeof *l->jaccard);
        l->lift = malloc(EE * sizeof *l->lift);
        if (!l->N || !l->coact || !l->jaccard || !l->lift) {
            ms_coactivation_result_free(r);
            return NULL;
        }
        ms_coact_acc_result(acc[i], l->N, l->coact, l->jaccard, l->lift, &l->n_tokens);
    }
    return r;
}

/* -------------------------------------------------------------- affinity */

typedef struct { double c; int i, j; } Trans;

static int cmp_trans(const void *x, const void *y)
{
    const Trans *a = x, *b = y;
    if (a->c != b->c) return a->c > b->c ? -1 : 1;
    if (a->i != b->i) return a->i - b->i;
    return a->j - b->j;
}

MsAffinityResult *ms_affinity_result_build(const MsAnHead *h, MsAnRole role, int distance, MsAffVariant v,
                                           int top, MsAffAcc *const *acc, const int *from, const int *to, int n)
{
    MsAffinityResult *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->head = *h;
    r->role = role;
    r->distance = distance;
    r->variant = v;
    r->pairs = calloc((size_t)n + 1, sizeof *r->pairs);
    int E = h->n_expert;
    size_t EE = (size_t)E * E, mb = EE * sizeof(double);
    Trans *tr = malloc(sizeof *tr * EE);
    if (!r->pairs || !tr) goto oom;
    r->n_pairs = n;
    for (int p = 0; p < n; p++) {
        MsAffPair *x = &r->pairs[p];
        x->from = from[p];
        x->to = to[p];
        /* each result call overwrites the last one's arrays: copy first */
        MsAffResult R;
        ms_aff_acc_result(acc[p], MS_AFF_TOP1, &R);
        x->concentration_top1 = R.concentration;
        x->nmi_top1 = R.nmi;
        if (v != MS_AFF_TOPK) {
            ms_aff_acc_result(acc[p], v, &R);
            x->var_C = dup_mem(R.C, mb);
            x->var_Q = dup_mem(R.Q, mb);
            x->var_concentration = R.concentration;
            if (!x->var_C || !x->var_Q) goto oom;
        }
        ms_aff_acc_result(acc[p], MS_AFF_TOPK, &R);
        x->C = dup_mem(R.C, mb);
        x->P = dup_mem(R.P, mb);
        x->Q = dup_mem(R.Q, mb);
        x->lift = dup_mem(R.lift, mb);
        x->n = dup_mem(R.n, (size_t)E * sizeof(double));
        x->concentration = R.concentration;
        x->n_tokens = R.n_tokens;
        if (!x->C || !x->P || !x->Q || !x->lift || !x->n) goto oom;
        for (size_t i = 0; i < EE; i++) tr[i] = (Trans){x->C[i], (int)(i / E), (int)(i % E)};
        qsort(tr, EE, sizeof *tr, cmp_trans);
        int nt = 0;
        while (nt < top && (size_t)nt < EE && tr[nt].c > 0) nt++;
        x->top = malloc(sizeof *x->top * ((size_t)nt + 1));
        if (!x->top) goto oom;
        for (int i = 0; i < nt; i++) {
            size_t ix = (size_t)tr[i].i * E + tr[i].j;
            x->top[i] = (MsAffPath){tr[i].i, tr[i].j, tr[i].c, x->P[ix], x->Q[ix], x->lift[ix]};
        }
        x->n_top = nt;
    }
    free(tr);
    return r;
oom:
    free(tr);
    ms_affinity_result_free(r);
    return NULL;
}

/* ---------------------------------------------------------- super experts */

int ms_superexperts_result_build(const MsAnHead *h, MsSeRule rule, double include_frac, const double *a,
                                 const int64_t *n_routed, const int *prompt, const int *pos,
                                 const int *slot_layer, int n_slots, MsSuperExpertsResult **out, MsError *err)
{
    *out = NULL;
    if (!ms_se_rule_name(rule)) return ms_error_set(err, MS_EINVAL, "bad super-expert rule");
    int E = h->n_expert;
    size_t n = (size_t)n_slots * E;
    MsSuperExpertsResult *r = calloc(1, sizeof *r);
    int *layer = malloc((n + 1) * sizeof *layer);
    bool *used = calloc(n + 1, 1);
    if (!r || !layer || !used) goto oom;
    r->head = *h;
    r->rule = rule;
    r->include_frac = include_frac;
    r->n_slots = n_slots;
    r->slot_layer = dup_mem(slot_layer, (size_t)n_slots * sizeof *slot_layer);
    r->a = dup_mem(a, n * sizeof *a);
    r->is_se = calloc(n + 1, sizeof *r->is_se);
    if (!r->slot_layer || !r->a || !r->is_se) goto oom;
    for (size_t i = 0; i < n; i++) layer[i] = slot_layer[i / E];
    int nse = ms_superexperts(a, layer, (int)n, h->n_layer, include_frac, rule, r->is_se, &r->info);
    if (nse < 0) {
        free(layer); free(used);
        ms_superexperts_result_free(r);
        return ms_error_set(err, nse, "super experts: bad options");
    }
    r->se = calloc((size_t)nse + 1, sizeof *r->se);
    if (!r->se) goto oom;
    /* rank by value, descending (ties → lower layer, expert) */
    for (int c = 0; c < nse; c++) {
        size_t b = n;
        for (size_t i = 0; i < n; i++)
            if (r->is_se[i] && !used[i] && (b == n || a[i] > a[b])) b = i;
        used[b] = 1;
        r->se[c] = (MsSuperExpert){c + 1, layer[b], (int)(b % E), a[b], n_routed[b], prompt[b], pos[b], -1};
    }
    r->n_se = nse;
    free(layer);
    free(used);
    *out = r;
    return 0;
oom:
    free(layer);
    free(used);
    ms_superexperts_result_free(r);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}

int ms_superexperts_set_massive(MsSuperExpertsResult *r, const double *hmax, const double *hsum,
                                const int64_t *hn, const int *prompt, const int *pos, const int *channel,
                                int n_layer)
{
    free(r->massive);
    r->n_massive = 0;
    r->massive = calloc((size_t)n_layer + 1, sizeof *r->massive);
    if (!r->massive) return MS_ENOMEM;
    for (int l = 0; l < n_layer; l++) {
        if (!hn[l]) continue;
        double mean = hsum[l] / (double)hn[l];
        r->massive[r->n_massive++] = (MsMassiveAct){l, hmax[l], mean, hmax[l] / (hsum[l] / (double)hn[l]),
                                                    prompt[l], pos[l], channel[l]};
    }
    return 0;
}
