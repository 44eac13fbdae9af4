/* build-seq.c — per-sequence studies as typed results: the consistency
 * accumulator (SRP histograms and SCH simulations of one prompt at a time,
 * METHODS §3), per-prompt mean routing distributions (§9.1, §10.1), the
 * cross-lingual pairing, divergence and steer selection (§9) and pathways
 * (§10).  Pure (results.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "results.h"

/* ----------------------------------------------------------- consistency */

/* Per-worker scratch: its own simulators and sequence copies. */
typedef struct {
    MsSchSim *sim, *msim;
    int32_t *tmp, *gtmp;
    int *ntmp;
    size_t tmp_cap;
} ConsWork;

enum { CONS_WORKERS = 2 };

struct MsConsAcc {
    int lo, hi, S, E, k, nm, nc;
    int *ms, *cs;
    bool cold, model;
    int64_t **hist;          /* [slot-lo][mi]: E·(m+1) */
    double *sch_sum;         /* [(slot-lo)][mi][ci] sum of per-sequence ratios */
    int64_t *sch_n;          /* sequences counted, same index */
    double *msch_sum;        /* model level [mi][ci] */
    int64_t *msch_n;
    const MsCancel *cancel;  /* polled between simulations */
    ConsWork w[CONS_WORKERS];
};

void ms_cons_acc_set_cancel(MsConsAcc *a, const MsCancel *cancel)
{
    if (a) a->cancel = cancel;
}

MsConsAcc *ms_cons_acc_new(int n_slot, int n_expert, int k, int lo, int hi, const int *m, int n_m,
                           const int *C, int n_c, bool cold, bool model)
{
    if (n_slot < 1 || n_expert < 1 || k < 1 || lo < 0 || hi > n_slot || lo >= hi || n_m < 1 || n_c < 0)
        return NULL;
    MsConsAcc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->lo = lo; a->hi = hi; a->S = n_slot; a->E = n_expert; a->k = k;
    a->nm = n_m; a->nc = n_c; a->cold = cold; a->model = model;
    int ns = hi - lo;
    a->ms = malloc(sizeof(int) * (size_t)n_m);
    a->cs = malloc(sizeof(int) * ((size_t)n_c + 1));
    a->hist = calloc((size_t)ns * n_m, sizeof *a->hist);
    a->sch_sum = calloc((size_t)ns * n_m * n_c + 1, sizeof *a->sch_sum);
    a->sch_n = calloc((size_t)ns * n_m * n_c + 1, sizeof *a->sch_n);
    a->msch_sum = calloc((size_t)n_m * n_c + 1, sizeof *a->msch_sum);
    a->msch_n = calloc((size_t)n_m * n_c + 1, sizeof *a->msch_n);
    bool ok = a->ms && a->cs && a->hist && a->sch_sum && a->sch_n && a->msch_sum && a->msch_n;
    if (ok) {
        memcpy(a->ms, m, sizeof(int) * (size_t)n_m);
        if (n_c) memcpy(a->cs, C, sizeof(int) * (size_t)n_c);
    }
    for (int i = 0; ok && i < CONS_WORKERS; i++) {
        a->w[i].sim = ms_sch_sim_new(n_expert);
        a->w[i].msim = ms_sch_sim_new(n_expert * n_slot);
        ok = a->w[i].sim && a->w[i].msim;
    }
    for (int i = 0; ok && i < ns * n_m; i++)
        ok = (a->hist[i] = calloc((size_t)n_expert * (m[i % n_m] + 1), sizeof(int64_t))) != NULL;
    if (!ok) { ms_cons_acc_free(a); return NULL; }
    return a;
}

void ms_cons_acc_free(MsConsAcc *a)
{
    if (!a) return;
    for (int i = 0; a->hist && i < (a->hi - a->lo) * a->nm; i++) free(a->hist[i]);
    free(a->hist); free(a->sch_sum); free(a->sch_n); free(a->msch_sum); free(a->msch_n);
    free(a->ms); free(a->cs);
    for (int i = 0; i < CONS_WORKERS; i++) {
        ms_sch_sim_free(a->w[i].sim); ms_sch_sim_free(a->w[i].msim);
        free(a->w[i].tmp); free(a->w[i].gtmp); free(a->w[i].ntmp);
    }
    free(a);
}

static int cons_scratch(MsConsAcc *a, ConsWork *w, int T)
{
    size_t need = (size_t)T * a->S * a->k;
    if (need <= w->tmp_cap) return 0;
    free(w->tmp); free(w->gtmp); free(w->ntmp);
    w->tmp = malloc(sizeof(int32_t) * (size_t)T * a->k);
    w->gtmp = malloc(sizeof(int32_t) * need);
    w->ntmp = malloc(sizeof(int) * (size_t)T);
    w->tmp_cap = need;
    if (!w->tmp || !w->gtmp || !w->ntmp) { w->tmp_cap = 0; return MS_ENOMEM; }
    return 0;
}

/* One slot's SRP histograms and SCH simulations for the sequence. */
static int cons_layer(MsConsAcc *a, ConsWork *w, const int32_t *ids, const int *n, int T, int s)
{
    int S = a->S, k = a->k;
    for (int t = 0; t < T; t++) {
        memcpy(w->tmp + (size_t)t * k, ids + ((size_t)t * S + s) * k, sizeof(int32_t) * k);
        w->ntmp[t] = n[(size_t)t * S + s];
    }
    for (int mi = 0; mi < a->nm; mi++) {
        if (ms_cancel_requested(a->cancel)) return MS_ECANCELLED;
        int rc = ms_srp_hist_add(a->hist[(size_t)(s - a->lo) * a->nm + mi], a->E, a->ms[mi], w->tmp,
                                 w->ntmp, k, T);
        if (rc < 0) return rc;
        for (int ci = 0; ci < a->nc; ci++) {
            int64_t req = 0;
            int64_t h = ms_sch_sim_run(w->sim, w->tmp, T, k, a->ms[mi], a->cs[ci], a->cold, &req);
            if (h < 0) return (int)h;
            if (req == 0) continue;
            size_t ix = ((size_t)(s - a->lo) * a->nm + mi) * a->nc + ci;
            a->sch_sum[ix] += (double)h / (double)req;
            a->sch_n[ix]++;
        }
    }
    return 0;
}

/* The model-level cache: one stream per token, L·k requests, global id
 * slot·E + e, layer by layer. */
static int cons_model(MsConsAcc *a, ConsWork *w, const int32_t *ids, int T)
{
    int S = a->S, k = a->k, K = S * k;
    for (int t = 0; t < T; t++)
        for (int s = 0; s < S; s++)
            for (int j = 0; j < k; j++) {
                int32_t e = ids[((size_t)t * S + s) * k + j];
                w->gtmp[(size_t)t * K + (size_t)s * k + j] = e < 0 ? -1 : s * a->E + e;
            }
    for (int mi = 0; mi < a->nm; mi++)
        for (int ci = 0; ci < a->nc; ci++) {
            if (ms_cancel_requested(a->cancel)) return MS_ECANCELLED;
            int64_t req = 0;
            int64_t h = ms_sch_sim_run(w->msim, w->gtmp, T, K, a->ms[mi], a->cs[ci] * S, a->cold, &req);
            if (h < 0) return (int)h;
            if (req == 0) continue;
            a->msch_sum[(size_t)mi * a->nc + ci] += (double)h / (double)req;
            a->msch_n[(size_t)mi * a->nc + ci]++;
        }
    return 0;
}

int ms_cons_acc_add_seq(MsConsAcc *a, unsigned parts, int worker, const int32_t *ids, const int *n, int T)
{
    if (!a || worker < 0 || worker >= CONS_WORKERS || T < 0 || (T > 0 && (!ids || !n))) return MS_EINVAL;
    if (T == 0) return 0;
    ConsWork *w = &a->w[worker];
    int rc = cons_scratch(a, w, T);
    for (int s = a->lo; s < a->hi && rc >= 0 && (parts & MS_CONS_LAYERS); s++) rc = cons_layer(a, w, ids, n, T, s);
    if (rc >= 0 && a->model && (parts & MS_CONS_MODEL)) rc = cons_model(a, w, ids, T);
    return rc;
}

MsConsistencyResult *ms_cons_acc_result(const MsConsAcc *a, const MsAnHead *h, MsAnRole role,
                                        const int *slot_layer)
{
    int nm = a->nm, nc = a->nc, E = a->E, ns = a->hi - a->lo;
    MsConsistencyResult *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->head = *h;
    r->role = role;
    r->cold = a->cold;
    r->n_m = nm;
    r->n_c = nc;
    r->m = malloc(sizeof(int) * (size_t)nm);
    r->C = malloc(sizeof(int) * ((size_t)nc + 1));
    r->layers = calloc((size_t)ns + 1, sizeof *r->layers);
    int mmax = 0;
    for (int i = 0; i < nm; i++) mmax = MS_MAX(mmax, a->ms[i]);
    int64_t *pool = calloc((size_t)mmax + 1, sizeof *pool), *mpool = calloc((size_t)nm * (mmax + 1), sizeof *mpool);
    if (!r->m || !r->C || !r->layers || !pool || !mpool) goto oom;
    memcpy(r->m, a->ms, sizeof(int) * (size_t)nm);
    if (nc) memcpy(r->C, a->cs, sizeof(int) * (size_t)nc);
    r->n_layers = ns;
    for (int s = a->lo; s < a->hi; s++) {
        MsConsLayer *l = &r->layers[s - a->lo];
        l->layer = slot_layer[s];
        l->srp = malloc(sizeof(double) * (size_t)nm);
        l->rho_hat = malloc(sizeof(double) * (size_t)nm);
        l->act_r = malloc(sizeof(double) * (size_t)nm);
        l->sch = malloc(sizeof(double) * ((size_t)nm * nc + 1));
        l->expert_srp = malloc(sizeof(double) * (size_t)nm * E);
        l->expert_rho = malloc(sizeof(double) * (size_t)nm * E);
        l->expert_act_r = malloc(sizeof(double) * (size_t)nm * E);
        if (!l->srp || !l->rho_hat || !l->act_r || !l->sch || !l->expert_srp || !l->expert_rho || !l->expert_act_r)
            goto oom;
        for (int mi = 0; mi < nm; mi++) {
            int m = a->ms[mi];
            const int64_t *hh = a->hist[(size_t)(s - a->lo) * nm + mi];
            memset(pool, 0, sizeof *pool * (m + 1));
            for (int e = 0; e < E; e++) {
                const int64_t *he = hh + (size_t)e * (m + 1);
                for (int c = 0; c <= m; c++) pool[c] += he[c];
                MsSrp se = ms_srp_from_hist(he, m);
                l->expert_srp[(size_t)mi * E + e] = se.srp;
                l->expert_rho[(size_t)mi * E + e] = se.rho;
                l->expert_act_r[(size_t)mi * E + e] = se.act_r;
            }
            for (int c = 0; c <= m; c++) mpool[(size_t)mi * (mmax + 1) + c] += pool[c];
            MsSrp sl = ms_srp_from_hist(pool, m);
            l->srp[mi] = sl.windows ? sl.srp : NAN;
            l->rho_hat[mi] = sl.windows ? sl.rho : NAN;
            l->act_r[mi] = sl.act_r;
            for (int ci = 0; ci < nc; ci++) {
                size_t ix = ((size_t)(s - a->lo) * nm + mi) * nc + ci;
                l->sch[(size_t)mi * nc + ci] = a->sch_n[ix] ? a->sch_sum[ix] / (double)a->sch_n[ix] : NAN;
            }
        }
    }
    if (a->model) {
        r->has_model = true;
        r->model_srp = malloc(sizeof(double) * (size_t)nm);
        r->model_rho_hat = malloc(sizeof(double) * (size_t)nm);
        r->model_sch = malloc(sizeof(double) * ((size_t)nm * nc + 1));
        if (!r->model_srp || !r->model_rho_hat || !r->model_sch) goto oom;
        for (int mi = 0; mi < nm; mi++) {
            MsSrp sm = ms_srp_from_hist(mpool + (size_t)mi * (mmax + 1), a->ms[mi]);
            r->model_srp[mi] = sm.windows ? sm.srp : NAN;
            r->model_rho_hat[mi] = sm.windows ? sm.rho : NAN;
            for (int ci = 0; ci < nc; ci++) {
                size_t ix = (size_t)mi * nc + ci;
                r->model_sch[ix] = a->msch_n[ix] ? a->msch_sum[ix] / (double)a->msch_n[ix] : NAN;
            }
        }
    }
    free(pool);
    free(mpool);
    return r;
oom:
    free(pool);
    free(mpool);
    ms_consistency_result_free(r);
    return NULL;
}

/* ------------------------------------------- per-prompt mean distributions */

MsPromptMeans *ms_prompt_means_new(int n_prompt, int n_slot, int n_expert, bool sparse)
{
    MsPromptMeans *pm = calloc(1, sizeof *pm);
    if (!pm) return NULL;
    pm->n_prompt = n_prompt;
    pm->n_slot = n_slot;
    pm->n_expert = n_expert;
    pm->sparse = sparse;
    size_t cells = (size_t)n_prompt * n_slot * n_expert, ps = (size_t)n_prompt * n_slot;
    pm->q = calloc(cells + 1, sizeof *pm->q);
    pm->freq = calloc(cells + 1, sizeof *pm->freq);
    pm->nq = calloc(ps + 1, sizeof *pm->nq);
    pm->nf = calloc(ps + 1, sizeof *pm->nf);
    if (!pm->q || !pm->freq || !pm->nq || !pm->nf) { ms_prompt_means_free(pm); return NULL; }
    return pm;
}

void ms_prompt_means_free(MsPromptMeans *pm)
{
    if (!pm) return;
    free(pm->q); free(pm->freq); free(pm->nq); free(pm->nf);
    free(pm);
}

void ms_prompt_means_add_token(MsPromptMeans *pm, int p, const int32_t *ids, const float *w, const int *n, int k)
{
    if (p < 0 || p >= pm->n_prompt) return;
    for (int s = 0; s < pm->n_slot; s++) {
        size_t base = ((size_t)p * pm->n_slot + s) * pm->n_expert;
        pm->nf[(size_t)p * pm->n_slot + s]++;
        for (int j = 0; j < n[s]; j++) {
            int e = ids[(size_t)s * k + j];
            pm->freq[base + e] += 1;
            if (pm->sparse) {
                float x = w[(size_t)s * k + j];
                pm->q[base + e] += isfinite(x) ? x : 0;
            }
        }
        if (pm->sparse) pm->nq[(size_t)p * pm->n_slot + s]++;
    }
}

void ms_prompt_means_add_probs(MsPromptMeans *pm, int p, int slot, const float *probs)
{
    if (p < 0 || p >= pm->n_prompt || slot < 0 || slot >= pm->n_slot) return;
    size_t base = ((size_t)p * pm->n_slot + slot) * pm->n_expert;
    for (int e = 0; e < pm->n_expert; e++) pm->q[base + e] += probs[e];
    pm->nq[(size_t)p * pm->n_slot + slot]++;
}

void ms_prompt_means_finish(MsPromptMeans *pm)
{
    size_t ps = (size_t)pm->n_prompt * pm->n_slot;
    for (size_t i = 0; i < ps; i++)
        for (int e = 0; e < pm->n_expert; e++) {
            if (pm->nq[i]) pm->q[i * pm->n_expert + e] /= (double)pm->nq[i];
            if (pm->nf[i]) pm->freq[i * pm->n_expert + e] /= (double)pm->nf[i];
        }
}

/* ---------------------------------------------------------- crosslingual */

enum { CL_MAX_LANG = 64 };

int ms_crosslingual_result_build(const MsAnHead *h, const MsAnOptions *o, const MsPromptMeans *pm,
                                 const char *const *lang, const char *const *pair, const int *slot_layer,
                                 int lo, int hi, MsCrosslingualResult **out, MsError *err)
{
    *out = NULL;
    int P = pm->n_prompt, S = pm->n_slot, E = pm->n_expert;
    MsCrosslingualResult *r = calloc(1, sizeof *r);
    int *li = calloc((size_t)P + 1, sizeof *li);
    double *div = calloc((size_t)CL_MAX_LANG * S, sizeof *div), *ent = calloc((size_t)CL_MAX_LANG * S, sizeof *ent);
    int64_t *npair = calloc((size_t)CL_MAX_LANG * S, sizeof *npair), *nent = calloc((size_t)CL_MAX_LANG * S, sizeof *nent);
    double *fsum = calloc((size_t)CL_MAX_LANG * S * E, sizeof *fsum);
    int64_t *fn = calloc(CL_MAX_LANG, sizeof *fn);
    int rc = 0;
    if (!r || !li || !div || !ent || !npair || !nent || !fsum || !fn) goto oom;
    r->head = *h;
    r->lang_key = strdup(o->lang_key);
    r->pair_key = strdup(o->pair_key);
    r->ref_lang = strdup(o->ref_lang);
    r->tau = o->tau;
    r->lambda = o->cl_lambda;
    r->hard = o->cl_hard;
    r->sparse_weights = o->sparse_weights;
    r->languages = calloc(CL_MAX_LANG, sizeof *r->languages);
    if (!r->lang_key || !r->pair_key || !r->ref_lang || !r->languages) goto oom;
    /* languages in first-seen order (at most 64; prompts of others are left out) */
    int nl = 0;
    for (int p = 0; p < P; p++) {
        li[p] = -1;
        if (!lang[p][0]) continue;
        for (int j = 0; j < nl; j++)
            if (!strcmp(r->languages[j], lang[p])) li[p] = j;
        if (li[p] < 0 && nl < CL_MAX_LANG) {
            if (!(r->languages[nl] = strdup(lang[p]))) goto oom;
            li[p] = nl++;
            r->n_languages = nl;
        }
    }
    int ref = -1;
    for (int j = 0; j < nl; j++)
        if (!strcmp(r->languages[j], o->ref_lang)) ref = j;
    if (ref < 0) {
        rc = ms_error_set(err, MS_ENOTFOUND, "run %lld: no prompt labelled %s=%s (the reference language)",
                          (long long)h->run_id, o->lang_key, o->ref_lang);
        goto fail;
    }
    r->ref = ref;
    /* Div[lang][slot] = mean over pairs of D_HJS(q_ref, q_lang) */
    for (int p = 0; p < P; p++) {
        if (li[p] < 0) continue;
        fn[li[p]]++;
        for (int s = 0; s < S; s++) {
            const double *qp = pm->q + ((size_t)p * S + s) * E;
            for (int e = 0; e < E; e++)
                fsum[((size_t)li[p] * S + s) * E + e] += pm->freq[((size_t)p * S + s) * E + e];
            if (pm->nq[(size_t)p * S + s]) {
                ent[(size_t)li[p] * S + s] += ms_entropy_d(qp, E);
                nent[(size_t)li[p] * S + s]++;
            }
        }
        if (li[p] == ref || !pair[p][0]) continue;
        /* partner: the reference-language prompt with the same pair id */
        int q = -1;
        for (int x = 0; x < P && q < 0; x++)
            if (li[x] == ref && !strcmp(pair[x], pair[p])) q = x;
        if (q < 0) continue;
        for (int s = 0; s < S; s++) {
            if (!pm->nq[(size_t)p * S + s] || !pm->nq[(size_t)q * S + s]) continue;
            double dv = ms_dhjs(pm->q + ((size_t)q * S + s) * E, pm->q + ((size_t)p * S + s) * E, E);
            if (isnan(dv)) continue;
            div[(size_t)li[p] * S + s] += dv;
            npair[(size_t)li[p] * S + s]++;
        }
    }
    /* middle layers and the experts the reference language uses more (Δ > τ) */
    int mlo = o->mid_lo, mhi = o->mid_hi;
    if (mlo < 0 || mhi < 0) {
        mlo = slot_layer[S / 4];
        mhi = slot_layer[MS_MAX(S / 4, (3 * S) / 4 - 1)];
    }
    r->mid_lo = mlo;
    r->mid_hi = mhi;
    int ns = hi - lo;
    r->layers = calloc((size_t)ns + 1, sizeof *r->layers);
    r->rows = calloc((size_t)ns * nl + 1, sizeof *r->rows);
    r->steer = calloc((size_t)ns * E + 1, sizeof *r->steer);
    if (!r->layers || !r->rows || !r->steer) goto oom;
    MsIntervention *iv = ms_intervention_new(h->n_layer, E);
    for (int s = lo; s < hi; s++) {
        int L = slot_layer[s];
        MsClLayer *cl = &r->layers[r->n_layers++];
        cl->layer = L;
        cl->div = malloc(sizeof(double) * ((size_t)nl + 1));
        cl->entropy = malloc(sizeof(double) * ((size_t)nl + 1));
        cl->n_pairs = malloc(sizeof(int64_t) * ((size_t)nl + 1));
        if (!cl->div || !cl->entropy || !cl->n_pairs) { ms_intervention_free(iv); goto oom; }
        for (int j = 0; j < nl; j++) {
            size_t ix = (size_t)j * S + s;
            double dv = npair[ix] ? div[ix] / (double)npair[ix] : NAN;
            cl->div[j] = j == ref ? NAN : dv;
            cl->entropy[j] = nent[ix] ? ent[ix] / (double)nent[ix] : NAN;
            cl->n_pairs[j] = npair[ix];
            /* a language with no translation pairs (e.g. code) has no rows */
            if (j == ref || npair[ix] == 0) continue;
            r->rows[r->n_rows++] = (MsClRow){L, j, dv, npair[ix]};
        }
        if (L < mlo || L > mhi || fn[ref] == 0) continue;
        for (int e = 0; e < E; e++) {
            double fr = fsum[((size_t)ref * S + s) * E + e] / (double)fn[ref];
            double worst = NAN;
            for (int j = 0; j < nl; j++) {
                if (j == ref || fn[j] == 0) continue;
                double d = fr - fsum[((size_t)j * S + s) * E + e] / (double)fn[j];
                if (isnan(worst) || d > worst) worst = d;
            }
            if (!(worst > o->tau)) continue;
            r->steer[r->n_steer++] = (MsClSteer){L, e, worst};
            if (iv) {
                if (o->cl_hard) ms_intervention_raise(iv, L, e, 0.0f);
                else ms_intervention_steer_std(iv, L, e, (float)o->cl_lambda);
            }
        }
    }
    if (iv && r->n_steer > 0) r->plan = ms_intervention_to_string(iv);
    ms_intervention_free(iv);
    free(li); free(div); free(ent); free(npair); free(nent); free(fsum); free(fn);
    *out = r;
    return 0;
oom:
    rc = ms_error_set(err, MS_ENOMEM, "out of memory");
fail:
    free(li); free(div); free(ent); free(npair); free(nent); free(fsum); free(fn);
    ms_crosslingual_result_free(r);
    return rc;
}

/* -------------------------------------------------------------- pathways */

int ms_pathways_result_build(const MsAnHead *h, const MsAnOptions *o, const MsPromptMeans *pm,
                             const int *slot_layer, int lo, int hi, MsPathwaysResult **out, MsError *err)
{
    *out = NULL;
    int P = pm->n_prompt, S = pm->n_slot, E = pm->n_expert, nsl = hi - lo;
    MsPathwaysResult *r = calloc(1, sizeof *r);
    /* pathway lists: [prompt][slot] → up to E ids */
    int *lists = malloc(sizeof(int) * (size_t)P * nsl * E + 1), *lens = calloc((size_t)P * nsl + 1, sizeof(int));
    int **seqs = calloc((size_t)P + 1, sizeof *seqs), *seqlen = calloc((size_t)P + 1, sizeof(int));
    int *valid = calloc((size_t)P + 1, sizeof(int));
    double *lsum = calloc((size_t)nsl + 1, sizeof(double));
    int rc = 0, nvalid = 0;
    if (!r || !lists || !lens || !seqs || !seqlen || !valid || !lsum) goto oom;
    r->head = *h;
    r->tau = o->path_tau;
    r->token_level = o->token_level;
    r->sparse_weights = o->sparse_weights;
    r->max_pairs = o->n_pairs;
    r->seed = o->seed;
    r->samples = calloc((size_t)P + 1, sizeof *r->samples);
    r->layers = malloc(sizeof(int) * ((size_t)nsl + 1));
    r->layer_mean_distance = malloc(sizeof(double) * ((size_t)nsl + 1));
    if (!r->samples || !r->layers || !r->layer_mean_distance) goto oom;
    for (int p = 0; p < P; p++) {
        bool ok = true;
        const int *lp[256];
        for (int s = lo; s < hi; s++) {
            size_t ix = (size_t)p * nsl + (s - lo);
            if (!pm->nq[(size_t)p * S + s]) { ok = false; break; }
            lens[ix] = ms_pathway_layer(pm->q + ((size_t)p * S + s) * E, E, o->path_tau, lists + ix * E);
            lp[s - lo] = lists + ix * E;
        }
        if (!ok) continue;
        char *str = ms_pathway_string(lp, lens + (size_t)p * nsl, nsl);
        if (!str) goto oom;
        if (o->token_level) {
            int tot = nsl;
            for (int s = 0; s < nsl; s++) tot += lens[(size_t)p * nsl + s];
            seqs[p] = malloc(sizeof(int) * (size_t)tot);
            if (seqs[p]) seqlen[p] = ms_pathway_tokens(lp, lens + (size_t)p * nsl, nsl, seqs[p]);
        } else {
            seqlen[p] = (int)strlen(str);
            seqs[p] = malloc(sizeof(int) * (size_t)(seqlen[p] + 1));
            if (seqs[p])
                for (int i = 0; i < seqlen[p]; i++) seqs[p][i] = (unsigned char)str[i];
        }
        MsPathSample *x = &r->samples[r->n_samples++];
        x->prompt = p;
        x->pathway = str;
        x->length = seqlen[p];
        int tot = 0;
        for (int s = 0; s < nsl; s++) tot += lens[(size_t)p * nsl + s];
        x->lens = malloc(sizeof(int) * ((size_t)nsl + 1));
        x->experts = malloc(sizeof(int) * ((size_t)tot + 1));
        if (!seqs[p] || !x->lens || !x->experts) goto oom;
        for (int s = 0, at = 0; s < nsl; s++) {
            x->lens[s] = lens[(size_t)p * nsl + s];
            memcpy(x->experts + at, lp[s], sizeof(int) * (size_t)x->lens[s]);
            at += x->lens[s];
        }
        valid[nvalid++] = p;
    }
    /* pairs: all when few, else n_pairs sampled with the given seed */
    int64_t all = (int64_t)nvalid * (nvalid - 1) / 2;
    double dsum = 0;
    int64_t npairs = 0;
    uint64_t rs = o->seed ? o->seed : 1;
    int64_t want = all <= o->n_pairs ? all : o->n_pairs;
    for (int64_t q = 0; q < want; q++) {
        if ((q & 63) == 63 && ms_cancel_requested(o->cancel)) {
            rc = ms_error_set(err, MS_ECANCELLED, "cancelled");
            goto fail;
        }
        int a, b;
        if (all <= o->n_pairs) {
            /* q-th pair in (a < b) order */
            int64_t rem = q;
            a = 0;
            while (rem >= nvalid - 1 - a) { rem -= nvalid - 1 - a; a++; }
            b = a + 1 + (int)rem;
        } else {
            do {
                rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
                uint64_t v = rs * 2685821657736338717ULL;
                a = (int)((v >> 11) % (uint64_t)nvalid);
                rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
                v = rs * 2685821657736338717ULL;
                b = (int)((v >> 11) % (uint64_t)nvalid);
            } while (a == b);
        }
        int pa = valid[a], pb = valid[b];
        int dv = ms_levenshtein(seqs[pa], seqlen[pa], seqs[pb], seqlen[pb]);
        if (dv < 0) { rc = ms_error_set(err, dv, "out of memory"); goto fail; }
        dsum += dv;
        npairs++;
        /* layer-wise distance (token ids of that layer's list) */
        for (int s = 0; s < nsl; s++)
            lsum[s] += ms_levenshtein(lists + ((size_t)pa * nsl + s) * E, lens[(size_t)pa * nsl + s],
                                      lists + ((size_t)pb * nsl + s) * E, lens[(size_t)pb * nsl + s]);
    }
    r->n_layers = nsl;
    for (int s = 0; s < nsl; s++) {
        r->layers[s] = slot_layer[lo + s];
        r->layer_mean_distance[s] = npairs ? lsum[s] / (double)npairs : NAN;
    }
    r->mean_distance = npairs ? dsum / (double)npairs : NAN;
    r->n_pairs = npairs;
    goto done;
oom:
    rc = ms_error_set(err, MS_ENOMEM, "out of memory");
fail:
    ms_pathways_result_free(r);
    r = NULL;
done:
    for (int p = 0; seqs && p < P; p++) free(seqs[p]);
    free(seqs); free(seqlen); free(lists); free(lens); free(valid); free(lsum);
    *out = r;
    return rc < 0 ? rc : 0;
}
