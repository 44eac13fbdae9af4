/* run-seq.c — per-sequence modules over a stored run: consistency
 * (SRP/SCH, METHODS §3), crosslingual divergence (§9) and pathways (§10).
 * A prompt is one sequence; its tokens are buffered (memory O(longest
 * prompt · L · k)).  The studies themselves are pure
 * (analysis/build-seq.c). */
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

/* ----------------------------------------------------------- consistency */

/* One pass over the run: the layer part, the model part or both.  Each
 * part owns its accumulators, so the two can run on separate threads. */
static int cons_pass(MsTraceDb *db, const AnRun *r, MsAnRole role, MsConsAcc *a, int worker, unsigned parts,
                     MsError *err)
{
    SeqBuf b = {0, 0, r->n_slot, r->k, NULL, NULL, 0, -1};
    AnStream *st = an_stream_new(db, r, role != MS_AN_ROLE_ALL, 0, err);
    int rc = st ? 0 : err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (t.first_of_prompt && b.T > 0) {
            if ((rc = ms_cons_acc_add_seq(a, parts, worker, b.ids, b.n, b.T)) < 0) break;
            b.T = 0;
        }
        if (!an_role_ok(role, &t)) continue;
        if ((rc = seq_push(&b, &t)) < 0) break;
    }
    if (rc >= 0 && b.T > 0) rc = ms_cons_acc_add_seq(a, parts, worker, b.ids, b.n, b.T);
    if (rc == MS_ENOMEM) ms_error_set(err, rc, "out of memory");
    if (rc == MS_ECANCELLED) an_poll(r, err);
    an_stream_free(st);
    free(b.ids); free(b.n);
    return rc < 0 ? rc : 0;
}

typedef struct {
    AnRun r;                 /* the caller's run, not counted in the progress */
    MsConsAcc *a;
    MsError err;
    int rc;
} ConsJob;

static void *cons_model_thread(void *p)
{
    ConsJob *j = p;
    j->rc = cons_pass(NULL, &j->r, MS_AN_ROLE_ALL, j->a, 1, MS_CONS_MODEL, &j->err);
    return NULL;
}

int an_consistency(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsAnRole role;
    if ((rc = ms_an_role_parse(o->role, MS_AN_ROLE_ALL, &role, err)) < 0) return rc;
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
    bool model = o->layer < 0;
    MsConsAcc *a = ms_cons_acc_new(r->n_slot, r->E, r->k, lo, hi, o->segments, nm, cs, nc, o->cold, model);
    if (!a) return ms_error_set(err, MS_ENOMEM, "out of memory");
    ms_cons_acc_set_cancel(a, r->cancel);
    /* From the decoded cache (no SQLite needed) the model-level cache runs
     * on a second thread over its own stream, the layers on this one. */
    bool split = r->cache && model && role == MS_AN_ROLE_ALL;
    pthread_t th;
    ConsJob job = {*r, a, {0}, 0};
    job.r.meter = NULL;
    if (split && pthread_create(&th, NULL, cons_model_thread, &job) != 0) split = false;
    rc = cons_pass(db, r, role, a, 0, split ? MS_CONS_LAYERS : MS_CONS_LAYERS | MS_CONS_MODEL, err);
    if (split) {
        pthread_join(th, NULL);
        if (rc >= 0 && job.rc < 0) {
            rc = job.rc;
            if (err) *err = job.err;
        }
    }
    if (rc >= 0) {
        MsAnHead h = an_head(r, o);
        out->consistency = ms_cons_acc_result(a, &h, role, r->slot_layer);
        if (!out->consistency) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    ms_cons_acc_free(a);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------- per-prompt mean distributions */

int an_prompt_means(MsTraceDb *db, const AnRun *r, bool sparse, MsPromptMeans **out, MsError *err)
{
    *out = NULL;
    MsPromptMeans *pm = ms_prompt_means_new(r->n_prompt, r->n_slot, r->E, sparse);
    if (!pm) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc;
    AnStream *st = an_stream_new(db, r, false, sparse ? AN_NEED_W : 0, err);
    if (!st) { ms_prompt_means_free(pm); return err ? err->code : MS_EDB; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1) {
        if (t.prompt_index < 0) continue;
        ms_prompt_means_add_token(pm, t.prompt_index, t.ids, t.w, t.n, r->k);
    }
    an_stream_free(st);
    if (rc >= 0 && !sparse) {
        if (!r->info.has_probs) {
            rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no router probabilities (trace with probs on, "
                              "or use --sparse-weights)", ms_trace_path(db), (long long)r->run_id);
        } else {
            MsTraceCursor *pc = ms_trace_probs(db, r->run_id, 0, err);
            if (!pc) rc = err ? err->code : MS_EDB;
            MsTraceProbs p;
            AnPass pass = {0};
            int64_t last_pid = -1;
            int32_t last_pos = -1;
            int pi = -1;
            /* gpt-oss stores logits: means of the router's distribution */
            float *dist = malloc(sizeof(float) * (size_t)r->E);
            if (!dist) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            while (rc >= 0 && (rc = ms_trace_probs_next(pc, &p, err)) == 1) {
                if ((p.prompt_id != last_pid || p.pos != last_pos) && (rc = an_pass_tick(r, &pass, err)) < 0) break;
                last_pos = p.pos;
                if (p.prompt_id != last_pid) {
                    pi = an_run_prompt_index(r, p.prompt_id);
                    last_pid = p.prompt_id;
                }
                if (p.layer < 0 || p.layer >= r->n_layer || r->layer_slot[p.layer] < 0 || !p.probs ||
                    p.n_expert != r->E)
                    continue;
                if (pi < 0) continue;
                ms_prompt_means_add_probs(pm, pi, r->layer_slot[p.layer],
                                          ms_router_distribution(r->info.model.score_func, p.probs, r->E, dist));
            }
            free(dist);
            ms_trace_cursor_free(pc);
            if (rc >= 0) an_pass_end(r, &pass);
        }
    }
    if (rc < 0) {
        ms_prompt_means_free(pm);
        return rc;
    }
    ms_prompt_means_finish(pm);
    *out = pm;
    return 0;
}

/* ---------------------------------------------------------- crosslingual */

int an_crosslingual(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsPromptMeans *pm;
    if ((rc = an_prompt_means(db, r, o->sparse_weights, &pm, err)) < 0) return rc;
    /* languages and pairs from prompt labels (values cut to 63 bytes) */
    int P = r->n_prompt;
    char (*lang)[64] = calloc((size_t)P + 1, sizeof *lang), (*pair)[64] = calloc((size_t)P + 1, sizeof *pair);
    const char **lp = calloc((size_t)P + 1, sizeof *lp), **pp = calloc((size_t)P + 1, sizeof *pp);
    if (!lang || !pair || !lp || !pp) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    } else {
        for (int p = 0; p < P; p++) {
            lp[p] = an_label(r, p, o->lang_key, lang[p], sizeof lang[p]);
            pp[p] = an_label(r, p, o->pair_key, pair[p], sizeof pair[p]);
        }
        MsAnHead h = an_head(r, o);
        rc = ms_crosslingual_result_build(&h, o, pm, lp, pp, r->slot_layer, lo, hi, &out->crosslingual, err);
    }
    free(lang); free(pair); free(lp); free(pp);
    ms_prompt_means_free(pm);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- pathways */

int an_pathways(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsPromptMeans *pm;
    if ((rc = an_prompt_means(db, r, o->sparse_weights, &pm, err)) < 0) return rc;
    MsAnHead h = an_head(r, o);
    MsAnOptions oc = *o;
    oc.cancel = r->cancel;
    rc = ms_pathways_result_build(&h, &oc, pm, r->slot_layer, lo, hi, &out->pathways, err);
    ms_prompt_means_free(pm);
    return rc < 0 ? rc : 0;
}
