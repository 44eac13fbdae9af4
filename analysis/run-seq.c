/* run-seq.c — per-sequence modules: consistency (SRP/SCH, METHODS §3),
 * crosslingual divergence (§9) and pathways (§10).  A prompt is one
 * sequence; its tokens are buffered (memory O(longest prompt · L · k)). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run-internal.h"

/* One prompt's routing, all slots: ids[t][slot][k]. */
typedef struct {
    int T, cap, S, k;
    int32_t *ids;
    int *n;          /* [t][slot] */
    int64_t prompt_id;
    int prompt_index;
} SeqBuf;

static int seq_push(SeqBuf *b, const AnTok *t)
{
    if (b->T == b->cap) {
        int cap = b->cap ? b->cap * 2 : 256;
        int32_t *ids = realloc(b->ids, sizeof *ids * (size_t)cap * b->S * b->k);
        if (!ids) return MS_ENOMEM;
        b->ids = ids;
        int *n = realloc(b->n, sizeof *n * (size_t)cap * b->S);
        if (!n) return MS_ENOMEM;
        b->n = n;
        b->cap = cap;
    }
    memcpy(b->ids + (size_t)b->T * b->S * b->k, t->ids, sizeof(int32_t) * (size_t)b->S * b->k);
    memcpy(b->n + (size_t)b->T * b->S, t->n, sizeof(int) * (size_t)b->S);
    b->T++;
    return 0;
}

static int parse_role(const MsAnOptions *o, const char *dflt, const char **role, MsError *err)
{
    *role = o->role ? o->role : dflt;
    if (strcmp(*role, "all") && strcmp(*role, "prompt") && strcmp(*role, "generated"))
        return ms_error_set(err, MS_EINVAL, "--role must be all, prompt or generated (got '%s')", *role);
    return 0;
}

/* ----------------------------------------------------------- consistency */

/* Per-worker scratch: its own simulators and sequence copies. */
typedef struct {
    MsSchSim *sim, *msim;
    int32_t *tmp, *gtmp;
    int *ntmp;
    size_t tmp_cap;
} ConsWork;

enum { CONS_THREADS = 2 };

typedef struct {
    int lo, hi, S, E, k, nm, nc;
    const int *ms, *cs;
    bool cold, model;
    int64_t **hist;          /* [slot-lo][mi]: E·(m+1) */
    double *sch_sum;         /* [(slot-lo)][mi][ci] sum of per-sequence ratios */
    int64_t *sch_n;          /* sequences counted, same index */
    double *msch_sum;        /* model level [mi][ci] */
    int64_t *msch_n;
    ConsWork w[CONS_THREADS];   /* [0] layers, [1] model level when split */
} ConsAcc;

static int cons_scratch(ConsAcc *a, ConsWork *w, int T)
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
static int cons_layer(ConsAcc *a, ConsWork *w, const SeqBuf *b, int s)
{
    int T = b->T, S = a->S, k = a->k;
    for (int t = 0; t < T; t++) {
        memcpy(w->tmp + (size_t)t * k, b->ids + ((size_t)t * S + s) * k, sizeof(int32_t) * k);
        w->ntmp[t] = b->n[(size_t)t * S + s];
    }
    for (int mi = 0; mi < a->nm; mi++) {
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
static int cons_model(ConsAcc *a, ConsWork *w, const SeqBuf *b)
{
    int T = b->T, S = a->S, k = a->k, K = S * k;
    for (int t = 0; t < T; t++)
        for (int s = 0; s < S; s++)
            for (int j = 0; j < k; j++) {
                int32_t e = b->ids[((size_t)t * S + s) * k + j];
                w->gtmp[(size_t)t * K + (size_t)s * k + j] = e < 0 ? -1 : s * a->E + e;
            }
    for (int mi = 0; mi < a->nm; mi++)
        for (int ci = 0; ci < a->nc; ci++) {
            int64_t req = 0;
            int64_t h = ms_sch_sim_run(w->msim, w->gtmp, T, K, a->ms[mi], a->cs[ci] * S, a->cold, &req);
            if (h < 0) return (int)h;
            if (req == 0) continue;
            a->msch_sum[(size_t)mi * a->nc + ci] += (double)h / (double)req;
            a->msch_n[(size_t)mi * a->nc + ci]++;
        }
    return 0;
}

enum { CONS_LAYERS = 1, CONS_MODEL = 2 };

static int cons_process(ConsAcc *a, ConsWork *w, const SeqBuf *b, unsigned which)
{
    if (b->T == 0) return 0;
    int rc = cons_scratch(a, w, b->T);
    for (int s = a->lo; s < a->hi && rc >= 0 && (which & CONS_LAYERS); s++) rc = cons_layer(a, w, b, s);
    if (rc >= 0 && a->model && (which & CONS_MODEL)) rc = cons_model(a, w, b);
    return rc;
}

/* One pass over the run: the layer part, the model part or both.  Each
 * part owns its accumulators, so the two can run on separate threads. */
static int cons_pass(MsTraceDb *db, const AnRun *r, const char *role, ConsAcc *a, ConsWork *w,
                     unsigned which, MsError *err)
{
    SeqBuf b = {0, 0, r->n_slot, r->k, NULL, NULL, 0, -1};
    AnStream *st = an_stream_new(db, r, strcmp(role, "all") != 0, 0, err);
    int rc = st ? 0 : err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (t.first_of_prompt && b.T > 0) {
            if ((rc = cons_process(a, w, &b, which)) < 0) break;
            b.T = 0;
        }
        if (!an_role_ok(role, &t)) continue;
        if ((rc = seq_push(&b, &t)) < 0) break;
    }
    if (rc >= 0 && b.T > 0) rc = cons_process(a, w, &b, which);
    if (rc == MS_ENOMEM) ms_error_set(err, rc, "out of memory");
    an_stream_free(st);
    free(b.ids); free(b.n);
    return rc < 0 ? rc : 0;
}

typedef struct {
    const AnRun *r;
    ConsAcc *a;
    MsError err;
    int rc;
} ConsJob;

static void *cons_model_thread(void *p)
{
    ConsJob *j = p;
    j->rc = cons_pass(NULL, j->r, "all", j->a, &j->a->w[1], CONS_MODEL, &j->err);
    return NULL;
}

int an_consistency(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                   MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    const char *role;
    if ((rc = parse_role(o, "all", &role, err)) < 0) return rc;
    int cs_def[MS_AN_MAX_LIST * 4], nc = o->n_cache;
    const int *cs = o->cache;
    if (nc == 0) {
        /* METHODS §3.2 default: ρ = 1/k … E/k, i.e. every C in 1..E */
        nc = MS_MIN(r->E, (int)MS_ARRAY_LEN(cs_def));
        for (int c = 0; c < nc; c++) cs_def[c] = c + 1;
        cs = cs_def;
    }
    int nm = o->n_segments;
    if (nm < 1) return ms_error_set(err, MS_EINVAL, "consistency: no segment lengths");
    for (int i = 0; i < nm; i++)
        if (o->segments[i] < 1 || o->segments[i] > 1 << 20)
            return ms_error_set(err, MS_EINVAL, "--segments: bad length %d", o->segments[i]);
    for (int i = 0; i < nc; i++)
        if (cs[i] < 1) return ms_error_set(err, MS_EINVAL, "--cache: bad size %d", cs[i]);
    json_object_set_new(params, "role", json_string(role));
    json_object_set_new(params, "sch_start", json_string(o->cold ? "cold" : "warm"));
    json_object_set_new(params, "segments", json_array());
    json_object_set_new(params, "cache", json_array());
    for (int i = 0; i < nm; i++) json_array_append_new(json_object_get(params, "segments"), json_integer(o->segments[i]));
    for (int i = 0; i < nc; i++) json_array_append_new(json_object_get(params, "cache"), json_integer(cs[i]));
    json_object_set_new(params, "model_cache", json_string("C * number of MoE layers (same ratio rho = C/k)"));
    json_object_set_new(params, "sch_average", json_string("mean over sequences of per-sequence hit rates"));

    ConsAcc a;
    memset(&a, 0, sizeof a);
    a.lo = lo; a.hi = hi; a.S = r->n_slot; a.E = r->E; a.k = r->k;
    a.nm = nm; a.nc = nc; a.ms = o->segments; a.cs = cs; a.cold = o->cold;
    a.model = o->layer < 0;
    int ns = hi - lo;
    a.hist = calloc((size_t)ns * nm, sizeof *a.hist);
    a.sch_sum = calloc((size_t)ns * nm * nc, sizeof *a.sch_sum);
    a.sch_n = calloc((size_t)ns * nm * nc, sizeof *a.sch_n);
    a.msch_sum = calloc((size_t)nm * nc, sizeof *a.msch_sum);
    a.msch_n = calloc((size_t)nm * nc, sizeof *a.msch_n);
    bool ok = a.hist && a.sch_sum && a.sch_n && a.msch_sum && a.msch_n;
    for (int i = 0; i < CONS_THREADS; i++) {
        a.w[i].sim = ms_sch_sim_new(r->E);
        a.w[i].msim = ms_sch_sim_new(r->E * r->n_slot);
        ok = ok && a.w[i].sim && a.w[i].msim;
    }
    for (int i = 0; ok && i < ns * nm; i++)
        ok = (a.hist[i] = calloc((size_t)r->E * (o->segments[i % nm] + 1), sizeof(int64_t))) != NULL;
    if (!ok) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    /* From the decoded cache (no SQLite needed) the model-level cache runs
     * on a second thread over its own stream, the layers on this one. */
    bool split = rc >= 0 && r->cache && a.model && !strcmp(role, "all");
    pthread_t th;
    ConsJob job = {r, &a, {0}, 0};
    if (split && pthread_create(&th, NULL, cons_model_thread, &job) != 0) split = false;
    if (rc >= 0) rc = cons_pass(db, r, role, &a, &a.w[0], split ? CONS_LAYERS : CONS_LAYERS | CONS_MODEL, err);
    if (split) {
        pthread_join(th, NULL);
        if (rc >= 0 && job.rc < 0) {
            rc = job.rc;
            if (err) *err = job.err;
        }
    }
    if (rc < 0) goto done;

    json_t *layers = json_array(), *rows = json_array(), *erows = json_array();
    int mmax = 0;
    for (int i = 0; i < nm; i++) mmax = MS_MAX(mmax, o->segments[i]);
    int64_t *pool = calloc((size_t)mmax + 1, sizeof *pool), *mpool = calloc((size_t)nm * (mmax + 1), sizeof *mpool);
    char key[32], key2[32];
    for (int s = lo; s < hi && pool && mpool; s++) {
        int L = r->slot_layer[s];
        json_t *jl = json_object(), *jsrp = json_object(), *jrho = json_object(), *jsch = json_object(),
               *jact = json_object();
        for (int mi = 0; mi < nm; mi++) {
            int m = o->segments[mi];
            const int64_t *h = a.hist[(size_t)(s - lo) * nm + mi];
            memset(pool, 0, sizeof *pool * (m + 1));
            for (int e = 0; e < r->E; e++) {
                const int64_t *he = h + (size_t)e * (m + 1);
                for (int c = 0; c <= m; c++) pool[c] += he[c];
                MsSrp se = ms_srp_from_hist(he, m);
                json_t *er = json_object();
                json_object_set_new(er, "layer", json_integer(L));
                json_object_set_new(er, "expert", json_integer(e));
                json_object_set_new(er, "m", json_integer(m));
                json_object_set_new(er, "srp", an_real(se.srp));
                json_object_set_new(er, "rho", an_real(se.rho));
                json_object_set_new(er, "act_r", an_real(se.act_r));
                json_array_append_new(erows, er);
            }
            for (int c = 0; c <= m; c++) mpool[(size_t)mi * (mmax + 1) + c] += pool[c];
            MsSrp sl = ms_srp_from_hist(pool, m);
            snprintf(key, sizeof key, "%d", m);
            json_object_set_new(jsrp, key, an_real(sl.windows ? sl.srp : NAN));
            json_object_set_new(jrho, key, an_real(sl.windows ? sl.rho : NAN));
            json_object_set_new(jact, key, an_real(sl.act_r));
            json_t *jm = json_object();
            for (int ci = 0; ci < nc; ci++) {
                size_t ix = ((size_t)(s - lo) * nm + mi) * nc + ci;
                double v = a.sch_n[ix] ? a.sch_sum[ix] / (double)a.sch_n[ix] : NAN;
                snprintf(key2, sizeof key2, "%d", cs[ci]);
                json_object_set_new(jm, key2, an_real(v));
                json_t *row = json_object();
                json_object_set_new(row, "layer", json_integer(L));
                json_object_set_new(row, "m", json_integer(m));
                json_object_set_new(row, "C", json_integer(cs[ci]));
                json_object_set_new(row, "srp", an_real(sl.windows ? sl.srp : NAN));
                json_object_set_new(row, "rho_hat", an_real(sl.windows ? sl.rho : NAN));
                json_object_set_new(row, "sch", an_real(v));
                json_array_append_new(rows, row);
            }
            json_object_set_new(jsch, key, jm);
        }
        json_object_set_new(jl, "layer", json_integer(L));
        json_object_set_new(jl, "srp", jsrp);
        json_object_set_new(jl, "sch", jsch);
        json_object_set_new(jl, "rho_hat", jrho);
        json_object_set_new(jl, "act_r", jact);
        json_array_append_new(layers, jl);
    }
    out->doc = json_object();
    json_object_set_new(out->doc, "layers", layers);
    if (a.model && pool && mpool) {
        json_t *jm = json_object(), *jsrp = json_object(), *jsch = json_object(), *jrho = json_object();
        for (int mi = 0; mi < nm; mi++) {
            int m = o->segments[mi];
            MsSrp sm = ms_srp_from_hist(mpool + (size_t)mi * (mmax + 1), m);
            snprintf(key, sizeof key, "%d", m);
            json_object_set_new(jsrp, key, an_real(sm.windows ? sm.srp : NAN));
            json_object_set_new(jrho, key, an_real(sm.windows ? sm.rho : NAN));
            json_t *jc = json_object();
            for (int ci = 0; ci < nc; ci++) {
                size_t ix = (size_t)mi * nc + ci;
                double v = a.msch_n[ix] ? a.msch_sum[ix] / (double)a.msch_n[ix] : NAN;
                snprintf(key2, sizeof key2, "%d", cs[ci]);
                json_object_set_new(jc, key2, an_real(v));
                json_t *row = json_object();
                json_object_set_new(row, "layer", json_null());
                json_object_set_new(row, "m", json_integer(m));
                json_object_set_new(row, "C", json_integer(cs[ci]));
                json_object_set_new(row, "srp", an_real(sm.windows ? sm.srp : NAN));
                json_object_set_new(row, "rho_hat", an_real(sm.windows ? sm.rho : NAN));
                json_object_set_new(row, "sch", an_real(v));
                json_array_append_new(rows, row);
            }
            json_object_set_new(jsch, key, jc);
        }
        json_object_set_new(jm, "srp", jsrp);
        json_object_set_new(jm, "sch", jsch);
        json_object_set_new(jm, "rho_hat", jrho);
        json_object_set_new(out->doc, "model", jm);
    }
    if (!pool || !mpool) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    free(pool);
    free(mpool);
    out->rows = rows;
    if (rc >= 0 && o->write)
        rc = an_write_rows(db, r, "consistency", params, "an_consistency_experts", erows, err);
    json_decref(erows);
done:
    for (int i = 0; a.hist && i < ns * nm; i++) free(a.hist[i]);
    free(a.hist); free(a.sch_sum); free(a.sch_n); free(a.msch_sum); free(a.msch_n);
    for (int i = 0; i < CONS_THREADS; i++) {
        ms_sch_sim_free(a.w[i].sim); ms_sch_sim_free(a.w[i].msim);
        free(a.w[i].tmp); free(a.w[i].gtmp); free(a.w[i].ntmp);
    }
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------- per-prompt mean distributions */

/* Mean router distribution per prompt and MoE slot (q_i of §9.1, ḡ of §10.1)
 * and relative activation frequency a_i/L_i (§9.2).  Arrays [prompt][slot][E]. */
typedef struct {
    int P, S, E;
    double *q, *freq;
    int64_t *nq, *nf;   /* [prompt][slot] tokens */
} PromptMeans;

static void pm_free(PromptMeans *pm)
{
    free(pm->q); free(pm->freq); free(pm->nq); free(pm->nf);
}

static int prompt_means(MsTraceDb *db, const AnRun *r, bool sparse, PromptMeans *pm, MsError *err)
{
    pm->P = r->n_prompt;
    pm->S = r->n_slot;
    pm->E = r->E;
    size_t cells = (size_t)pm->P * pm->S * pm->E, ps = (size_t)pm->P * pm->S;
    pm->q = calloc(cells + 1, sizeof *pm->q);
    pm->freq = calloc(cells + 1, sizeof *pm->freq);
    pm->nq = calloc(ps + 1, sizeof *pm->nq);
    pm->nf = calloc(ps + 1, sizeof *pm->nf);
    if (!pm->q || !pm->freq || !pm->nq || !pm->nf) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc;
    AnStream *st = an_stream_new(db, r, false, sparse ? AN_NEED_W : 0, err);
    if (!st) return err ? err->code : MS_EDB;
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1) {
        if (t.prompt_index < 0) continue;
        for (int s = 0; s < pm->S; s++) {
            size_t base = ((size_t)t.prompt_index * pm->S + s) * pm->E;
            pm->nf[(size_t)t.prompt_index * pm->S + s]++;
            for (int j = 0; j < t.n[s]; j++) {
                int e = t.ids[(size_t)s * r->k + j];
                pm->freq[base + e] += 1;
                if (sparse) {
                    float w = t.w[(size_t)s * r->k + j];
                    pm->q[base + e] += isfinite(w) ? w : 0;
                }
            }
            if (sparse) pm->nq[(size_t)t.prompt_index * pm->S + s]++;
        }
    }
    an_stream_free(st);
    if (rc < 0) return rc;
    if (!sparse) {
        if (!r->info.has_probs)
            return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no router probabilities (trace with probs on, "
                                "or use --sparse-weights)", ms_trace_path(db), (long long)r->run_id);
        MsTraceCursor *pc = ms_trace_probs(db, r->run_id, 0, err);
        if (!pc) return err ? err->code : MS_EDB;
        MsTraceProbs p;
        int64_t last_pid = -1;
        int pi = -1;
        while ((rc = ms_trace_probs_next(pc, &p, err)) == 1) {
            if (p.layer < 0 || p.layer >= r->n_layer || r->layer_slot[p.layer] < 0 || !p.probs ||
                p.n_expert != r->E)
                continue;
            if (p.prompt_id != last_pid) {
                pi = an_run_prompt_index(r, p.prompt_id);
                last_pid = p.prompt_id;
            }
            if (pi < 0) continue;
            int s = r->layer_slot[p.layer];
            size_t base = ((size_t)pi * pm->S + s) * pm->E;
            for (int e = 0; e < pm->E; e++) pm->q[base + e] += p.probs[e];
            pm->nq[(size_t)pi * pm->S + s]++;
        }
        ms_trace_cursor_free(pc);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < ps; i++)
        for (int e = 0; e < pm->E; e++) {
            if (pm->nq[i]) pm->q[i * pm->E + e] /= (double)pm->nq[i];
            if (pm->nf[i]) pm->freq[i * pm->E + e] /= (double)pm->nf[i];
        }
    return 0;
}

/* ---------------------------------------------------------- crosslingual */

int an_crosslingual(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                    MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    json_object_set_new(params, "lang_key", json_string(o->lang_key));
    json_object_set_new(params, "pair_key", json_string(o->pair_key));
    json_object_set_new(params, "ref_lang", json_string(o->ref_lang));
    json_object_set_new(params, "tau", json_real(o->tau));
    json_object_set_new(params, "operator", json_string(o->cl_hard ? "hard: logit := max (raise, margin 0)"
                                                                   : "soft: logit += lambda * std (steer-std)"));
    if (!o->cl_hard) json_object_set_new(params, "lambda", json_real(o->cl_lambda));
    json_object_set_new(params, "distribution", json_string(o->sparse_weights ? "top-k weights" : "router probabilities"));
    PromptMeans pm = {0};
    if ((rc = prompt_means(db, r, o->sparse_weights, &pm, err)) < 0) { pm_free(&pm); return rc; }
    /* languages and pairs from prompt labels */
    int P = r->n_prompt, S = r->n_slot, E = r->E;
    char (*lang)[64] = calloc((size_t)P + 1, sizeof *lang), (*pair)[64] = calloc((size_t)P + 1, sizeof *pair);
    char langs[64][64];
    int nl = 0, *li = calloc((size_t)P + 1, sizeof *li);
    if (!lang || !pair || !li) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    for (int p = 0; p < P; p++) {
        an_label(r, p, o->lang_key, lang[p], sizeof lang[p]);
        an_label(r, p, o->pair_key, pair[p], sizeof pair[p]);
        li[p] = -1;
        if (!lang[p][0]) continue;
        for (int j = 0; j < nl; j++)
            if (!strcmp(langs[j], lang[p])) li[p] = j;
        if (li[p] < 0 && nl < 64) {
            snprintf(langs[nl], sizeof langs[nl], "%s", lang[p]);
            li[p] = nl++;
        }
    }
    int ref = -1;
    for (int j = 0; j < nl; j++)
        if (!strcmp(langs[j], o->ref_lang)) ref = j;
    if (ref < 0) {
        rc = ms_error_set(err, MS_ENOTFOUND, "run %lld: no prompt labelled %s=%s (the reference language)",
                          (long long)r->run_id, o->lang_key, o->ref_lang);
        goto done;
    }
    /* Div[lang][slot] = mean over pairs of D_HJS(q_en, q_lang) */
    double *div = calloc((size_t)nl * S, sizeof *div), *ent = calloc((size_t)nl * S, sizeof *ent);
    int64_t *npair = calloc((size_t)nl * S, sizeof *npair), *nent = calloc((size_t)nl * S, sizeof *nent);
    double *fsum = calloc((size_t)nl * S * E, sizeof *fsum);
    int64_t *fn = calloc((size_t)nl, sizeof *fn);
    if (!div || !ent || !npair || !nent || !fsum || !fn) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        free(div); free(ent); free(npair); free(nent); free(fsum); free(fn);
        goto done;
    }
    for (int p = 0; p < P; p++) {
        if (li[p] < 0) continue;
        fn[li[p]]++;
        for (int s = 0; s < S; s++) {
            const double *qp = pm.q + ((size_t)p * S + s) * E;
            for (int e = 0; e < E; e++) fsum[((size_t)li[p] * S + s) * E + e] += pm.freq[((size_t)p * S + s) * E + e];
            if (pm.nq[(size_t)p * S + s]) {
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
            if (!pm.nq[(size_t)p * S + s] || !pm.nq[(size_t)q * S + s]) continue;
            double dv = ms_dhjs(pm.q + ((size_t)q * S + s) * E, pm.q + ((size_t)p * S + s) * E, E);
            if (isnan(dv)) continue;
            div[(size_t)li[p] * S + s] += dv;
            npair[(size_t)li[p] * S + s]++;
        }
    }
    /* middle layers and the experts the reference language uses more (Δ > τ) */
    int mlo = o->mid_lo, mhi = o->mid_hi;
    if (mlo < 0 || mhi < 0) {
        mlo = r->slot_layer[S / 4];
        mhi = r->slot_layer[MS_MAX(S / 4, (3 * S) / 4 - 1)];
    }
    json_t *layers = json_array(), *rows = json_array(), *steer = json_array();
    MsIntervention *iv = ms_intervention_new(r->n_layer, E);
    int nsteer = 0;
    for (int s = lo; s < hi; s++) {
        int L = r->slot_layer[s];
        json_t *jl = json_object(), *jd = json_object(), *je = json_object();
        for (int j = 0; j < nl; j++) {
            size_t ix = (size_t)j * S + s;
            double dv = npair[ix] ? div[ix] / (double)npair[ix] : NAN;
            if (j != ref) json_object_set_new(jd, langs[j], an_real(dv));
            json_object_set_new(je, langs[j], an_real(nent[ix] ? ent[ix] / (double)nent[ix] : NAN));
            if (j == ref) continue;
            /* a language with no translation pairs (e.g. code) has no rows;
             * its NaN stays in the per-layer "div" object */
            if (npair[ix] == 0) continue;
            json_t *row = json_object();
            json_object_set_new(row, "layer", json_integer(L));
            json_object_set_new(row, "lang", json_string(langs[j]));
            json_object_set_new(row, "div", an_real(dv));
            json_object_set_new(row, "n_pairs", json_integer(npair[ix]));
            json_array_append_new(rows, row);
        }
        json_object_set_new(jl, "layer", json_integer(L));
        json_object_set_new(jl, "div", jd);
        json_object_set_new(jl, "entropy", je);
        json_array_append_new(layers, jl);
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
            json_t *x = json_object();
            json_object_set_new(x, "layer", json_integer(L));
            json_object_set_new(x, "expert", json_integer(e));
            json_object_set_new(x, "delta", json_real(worst));
            json_array_append_new(steer, x);
            if (iv) {
                if (o->cl_hard) ms_intervention_raise(iv, L, e, 0.0f);
                else ms_intervention_steer_std(iv, L, e, (float)o->cl_lambda);
            }
            nsteer++;
        }
    }
    json_t *jlang = json_array();
    for (int j = 0; j < nl; j++) json_array_append_new(jlang, json_string(langs[j]));
    out->doc = json_object();
    json_object_set_new(out->doc, "languages", jlang);
    json_object_set_new(out->doc, "ref", json_string(o->ref_lang));
    json_object_set_new(out->doc, "layers", layers);
    json_t *js = json_object();
    json_object_set_new(js, "layers", json_pack("[ii]", mlo, mhi));
    json_object_set_new(js, "tau", json_real(o->tau));
    json_object_set_new(js, "experts", steer);
    json_object_set_new(js, "operator", json_string(o->cl_hard ? "hard" : "soft"));
    if (!o->cl_hard) json_object_set_new(js, "lambda", json_real(o->cl_lambda));
    json_object_set_new(out->doc, "steer", js);
    out->rows = rows;
    if (iv && nsteer > 0) {
        out->plan = ms_intervention_to_string(iv);
        if (out->plan) rc = an_store_plan(db, r, "crosslingual", params, out->plan, o->plan_out, o->write, err);
    }
    ms_intervention_free(iv);
    free(div); free(ent); free(npair); free(nent); free(fsum); free(fn);
done:
    free(lang); free(pair); free(li);
    pm_free(&pm);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- pathways */

int an_pathways(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    json_object_set_new(params, "tau_path", json_real(o->path_tau));
    json_object_set_new(params, "granularity", json_string(o->token_level ? "token" : "char"));
    json_object_set_new(params, "weights", json_string(o->sparse_weights ? "top-k weights" : "router probabilities"));
    json_object_set_new(params, "pairs", json_integer(o->n_pairs));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    PromptMeans pm = {0};
    if ((rc = prompt_means(db, r, o->sparse_weights, &pm, err)) < 0) { pm_free(&pm); return rc; }
    int P = r->n_prompt, S = r->n_slot, E = r->E, nsl = hi - lo;
    /* pathway lists: [prompt][slot] → up to E ids */
    int *lists = malloc(sizeof(int) * (size_t)P * nsl * E + 1), *lens = calloc((size_t)P * nsl + 1, sizeof(int));
    int **seqs = calloc((size_t)P + 1, sizeof *seqs), *seqlen = calloc((size_t)P + 1, sizeof(int));
    json_t *samples = json_array(), *rows = json_array();
    if (!lists || !lens || !seqs || !seqlen) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    int nvalid = 0, *valid = calloc((size_t)P + 1, sizeof(int));
    if (!valid) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    for (int p = 0; p < P; p++) {
        bool ok = true;
        const int *lp[MS_TRACE_MAX_LAYER];
        for (int s = lo; s < hi; s++) {
            size_t ix = (size_t)p * nsl + (s - lo);
            if (!pm.nq[(size_t)p * S + s]) { ok = false; break; }
            lens[ix] = ms_pathway_layer(pm.q + ((size_t)p * S + s) * E, E, o->path_tau, lists + ix * E);
            lp[s - lo] = lists + ix * E;
        }
        if (!ok) continue;
        char *str = ms_pathway_string(lp, lens + (size_t)p * nsl, nsl);
        if (!str) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done2; }
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
        if (!seqs[p]) { free(str); rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done2; }
        json_t *x = json_object();
        json_object_set_new(x, "prompt", json_integer(p));
        json_object_set_new(x, "pathway", json_string(str));
        json_object_set_new(x, "length", json_integer(seqlen[p]));
        json_array_append(samples, x);
        json_array_append_new(rows, x);
        free(str);
        valid[nvalid++] = p;
    }
    /* pairs: all when few, else n_pairs sampled with the given seed */
    int64_t all = (int64_t)nvalid * (nvalid - 1) / 2;
    double dsum = 0, *lsum = calloc((size_t)nsl + 1, sizeof(double));
    int64_t npairs = 0;
    uint64_t rs = o->seed ? o->seed : 1;
    if (!lsum) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done2; }
    int64_t want = all <= o->n_pairs ? all : o->n_pairs;
    for (int64_t q = 0; q < want; q++) {
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
        if (dv < 0) { rc = ms_error_set(err, dv, "out of memory"); goto done2; }
        dsum += dv;
        npairs++;
        /* layer-wise distance (token ids of that layer's list) */
        for (int s = 0; s < nsl; s++)
            lsum[s] += ms_levenshtein(lists + ((size_t)pa * nsl + s) * E, lens[(size_t)pa * nsl + s],
                                      lists + ((size_t)pb * nsl + s) * E, lens[(size_t)pb * nsl + s]);
    }
    json_t *jl = json_array();
    for (int s = 0; s < nsl; s++) {
        json_t *x = json_object();
        json_object_set_new(x, "layer", json_integer(r->slot_layer[lo + s]));
        json_object_set_new(x, "mean_distance", an_real(npairs ? lsum[s] / (double)npairs : NAN));
        json_array_append_new(jl, x);
    }
    out->doc = json_object();
    json_object_set_new(out->doc, "samples", samples);
    samples = NULL;
    json_object_set_new(out->doc, "mean_distance", an_real(npairs ? dsum / (double)npairs : NAN));
    json_object_set_new(out->doc, "n_pairs", json_integer(npairs));
    json_object_set_new(out->doc, "granularity", json_string(o->token_level ? "token" : "char"));
    json_object_set_new(out->doc, "layers", jl);
    json_object_set_new(out->doc, "consistency",
                        json_string("needs router weight matrices: not computed from a trace (library: "
                                    "ms_pathway_consistency)"));
    out->rows = rows;
    rows = NULL;
    free(lsum);
done2:
    free(valid);
done:
    json_decref(samples);
    json_decref(rows);
    for (int p = 0; seqs && p < P; p++) free(seqs[p]);
    free(seqs); free(seqlen); free(lists); free(lens);
    pm_free(&pm);
    return rc < 0 ? rc : 0;
}
