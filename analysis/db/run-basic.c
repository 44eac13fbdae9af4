/* run-basic.c — load, coactivation, affinity and super experts over a
 * stored run (METHODS.md §1, §2, §4): stream the run into the pure
 * accumulators, build the typed result (analysis/build-basic.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run-internal.h"

/* ------------------------------------------------------------------ load */

int an_load(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsAnRole role;
    if ((rc = ms_an_role_parse(o->role, MS_AN_ROLE_ALL, &role, err)) < 0) return rc;
    int ns = hi - lo;
    MsLoadAcc **acc = calloc((size_t)ns, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int s = 0; s < ns; s++)
        if (!(acc[s] = ms_load_acc_new(r->E, r->k))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 ? NULL : an_stream_new(db, r, role != MS_AN_ROLE_ALL, 0, err);
    if (!st && rc >= 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int s = lo; s < hi; s++) {
            if (t.first_of_prompt) ms_load_acc_begin_seq(acc[s - lo]);
            rc = ms_load_acc_add(acc[s - lo], t.ids + (size_t)s * r->k, t.n[s]);
            if (rc < 0) break;
        }
    }
    an_stream_free(st);
    /* per-token routing entropy from the stored router distributions */
    if (rc >= 0 && r->info.has_probs && role == MS_AN_ROLE_ALL) {
        MsTraceCursor *pc = ms_trace_probs(db, r->run_id, 0, err);
        if (!pc) rc = err ? err->code : MS_EDB;
        MsTraceProbs p;
        AnPass pass = {0};
        int64_t lpid = -1;
        int32_t lpos = -1;
        /* gpt-oss stores logits: entropies of the router's distribution */
        float *dist = malloc(sizeof(float) * (size_t)r->E);
        if (!dist) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        while (rc >= 0 && (rc = ms_trace_probs_next(pc, &p, err)) == 1) {
            if ((p.prompt_id != lpid || p.pos != lpos) && (rc = an_pass_tick(r, &pass, err)) < 0) break;
            lpid = p.prompt_id;
            lpos = p.pos;
            if (p.layer < 0 || p.layer >= r->n_layer || !p.probs || p.n_expert != r->E) continue;
            int s = r->layer_slot[p.layer];
            if (s >= lo && s < hi)
                ms_load_acc_add_probs(acc[s - lo], ms_router_distribution(r->info.model.score_func, p.probs, r->E, dist));
        }
        free(dist);
        ms_trace_cursor_free(pc);
        if (rc >= 0) an_pass_end(r, &pass);
    }
    if (rc >= 0) {
        MsAnHead h = an_head(r, o);
        MsLoadResult *res = ms_load_result_build(&h, role, acc, r->slot_layer + lo, ns);
        if (!res) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        out->load = res;
    }
    for (int s = 0; s < ns; s++) ms_load_acc_free(acc[s]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- coactivation */

int an_coactivation(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsAnRole role;
    if ((rc = ms_an_role_parse(o->role, MS_AN_ROLE_ALL, &role, err)) < 0) return rc;
    int ns = hi - lo, E = r->E;
    MsCoactAcc **acc = calloc((size_t)ns, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int s = 0; s < ns; s++)
        if (!(acc[s] = ms_coact_acc_new(E))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 ? NULL : an_stream_new(db, r, role != MS_AN_ROLE_ALL, 0, err);
    if (!st && rc >= 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int s = lo; s < hi && rc >= 0; s++)
            rc = ms_coact_acc_add(acc[s - lo], t.ids + (size_t)s * r->k, t.n[s]);
    }
    an_stream_free(st);
    if (rc >= 0) {
        MsAnHead h = an_head(r, o);
        out->coactivation = ms_coactivation_result_build(&h, role, acc, r->slot_layer + lo, ns);
        if (!out->coactivation) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int s = 0; s < ns; s++) ms_coact_acc_free(acc[s]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- affinity */

int an_affinity(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    int d = o->distance;
    if (d < 1) return ms_error_set(err, MS_EINVAL, "--distance must be >= 1 (got %d)", d);
    const char *variant = o->variant ? o->variant : "topk";
    MsAffVariant var = MS_AFF_TOPK;
    if (!strcmp(variant, "top1")) var = MS_AFF_TOP1;
    else if (!strcmp(variant, "weighted")) var = MS_AFF_WEIGHTED;
    else if (strcmp(variant, "topk")) return ms_error_set(err, MS_EINVAL, "--variant must be topk, top1 or weighted");
    MsAnRole role;
    if ((rc = ms_an_role_parse(o->role, MS_AN_ROLE_ALL, &role, err)) < 0) return rc;
    /* pairs (s, s+d) with s in [lo, hi) */
    int from_hi = MS_MIN(hi, r->n_slot - d);
    int np = from_hi > lo ? from_hi - lo : 0;
    MsAffAcc **acc = calloc((size_t)np + 1, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int p = 0; p < np; p++)
        if (!(acc[p] = ms_aff_acc_new(r->E))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 || np == 0 ? NULL : an_stream_new(db, r, role != MS_AN_ROLE_ALL,
                                                           var == MS_AFF_WEIGHTED ? AN_NEED_W : 0, err);
    if (!st && rc >= 0 && np > 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (st && rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int p = 0; p < np && rc >= 0; p++) {
            int s = lo + p;
            size_t a = (size_t)s * r->k, b = (size_t)(s + d) * r->k;
            rc = ms_aff_acc_add(acc[p], t.ids + a, var == MS_AFF_WEIGHTED ? t.w + a : NULL, t.n[s],
                                t.ids + b, var == MS_AFF_WEIGHTED ? t.w + b : NULL, t.n[s + d]);
        }
    }
    an_stream_free(st);
    if (rc >= 0) {
        MsAnHead h = an_head(r, o);
        out->affinity = ms_affinity_result_build(&h, role, d, var, o->top > 0 ? o->top : 10, acc,
                                                 r->slot_layer + lo, r->slot_layer + lo + d, np);
        if (!out->affinity) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int p = 0; p < np; p++) ms_aff_acc_free(acc[p]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- super experts */

/* Channel of the max |output| of expert e at (prompt, pos, layer), from the
 * stored row: >= 0, −1 when the row has no channels (traced before schema
 * version 3), or MS_E*. */
static int expert_channel(MsTraceDb *db, const AnRun *r, int64_t pid, int32_t pos, int layer, int e, MsError *err)
{
    MsTraceCursor *c = ms_trace_routing_range(db, r->run_id, pid, pid, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceRoutePacked row;
    int rc, ch = -1;
    while ((rc = ms_trace_routing_next_packed(c, &row, err)) == 1) {
        if (row.pos != pos || row.layer != layer) continue;
        for (int j = 0; j < row.k; j++)
            if ((int)an_le_u16(row.experts + 2 * j) == e && row.argmax) ch = (int)an_le_u16(row.argmax + 2 * j);
        break;
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : ch;
}

int an_superexperts(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    if (!r->info.has_stats)
        return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no expert output stats (trace with stats on)",
                            ms_trace_path(db), (long long)r->run_id);
    if (!ms_se_rule_name(o->se_rule)) return ms_error_set(err, MS_EINVAL, "bad super-expert rule");
    int E = r->E, ns = r->n_slot;
    size_t n = (size_t)ns * E;
    double *a = malloc(n * sizeof *a);
    int64_t *apid = malloc(n * sizeof *apid), *ntok = calloc(n, sizeof *ntok);
    int32_t *apos = malloc(n * sizeof *apos);
    int *aprompt = malloc(n * sizeof *aprompt), *apos_i = malloc(n * sizeof *apos_i);
    /* massive activations: per block, max and mean of the token residual max */
    double *hmax = malloc(sizeof(double) * (size_t)r->n_layer), *hsum = calloc((size_t)r->n_layer, sizeof(double));
    int64_t *hn = calloc((size_t)r->n_layer, sizeof(int64_t)), *hpid = calloc((size_t)r->n_layer, sizeof(int64_t));
    int *hpos = calloc((size_t)r->n_layer, sizeof(int)), *hch = calloc((size_t)r->n_layer, sizeof(int));
    int *hprompt = calloc((size_t)r->n_layer, sizeof(int));
    MsSuperExpertsResult *res = NULL;
    int rc = 0;
    if (!a || !apid || !ntok || !apos || !aprompt || !apos_i || !hmax || !hsum || !hn || !hpid || !hpos || !hch ||
        !hprompt) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;   /* never routed → contributes 0 (§4.6) */
        apid[i] = 0;
        apos[i] = -1;
    }
    AnStream *st = an_stream_new(db, r, false, AN_NEED_MX, err);
    if (!st) { rc = err ? err->code : MS_EDB; goto done; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1)
        for (int s = 0; s < ns; s++)
            for (int j = 0; j < t.n[s]; j++) {
                size_t ix = (size_t)s * E + t.ids[(size_t)s * r->k + j];
                float v = t.maxabs[(size_t)s * r->k + j];
                ntok[ix]++;
                if (isfinite(v) && v > a[ix]) {
                    a[ix] = v;
                    apid[ix] = t.prompt_id;
                    apos[ix] = t.pos;
                }
            }
    an_stream_free(st);
    if (rc < 0) goto done;
    for (size_t i = 0; i < n; i++) {
        aprompt[i] = an_run_prompt_index(r, apid[i]);
        apos_i[i] = apos[i];
    }
    MsAnHead h = an_head(r, o);
    rc = ms_superexperts_result_build(&h, o->se_rule, o->include_frac, a, ntok, aprompt, apos_i, r->slot_layer, ns,
                                      &res, err);
    if (rc < 0) goto done;
    /* evidence: where each SE's maximum is, in the token and in the output */
    for (int i = 0; i < res->n_se && rc >= 0; i++) {
        MsSuperExpert *x = &res->se[i];
        if (x->pos < 0 || (rc = an_poll(r, err)) < 0) continue;
        size_t b = (size_t)r->layer_slot[x->layer] * E + x->expert;
        int ch = expert_channel(db, r, apid[b], apos[b], x->layer, x->expert, err);
        if (ch < -1) rc = ch;
        else x->channel = ch;
    }
    if (rc < 0) goto done;
    /* residual massive-activation profile */
    for (int l = 0; l < r->n_layer; l++) hmax[l] = NAN;
    MsTraceCursor *hc = ms_trace_hidden(db, r->run_id, 0, err);
    if (!hc) rc = err ? err->code : MS_EDB;
    MsTraceHidden hb[4096];
    AnPass pass = {0};
    int64_t lpid = -1;
    int32_t lpos = -1;
    int got;
    while (rc >= 0 && (got = ms_trace_hidden_next(hc, hb, 4096, err)) != 0) {
        if (got < 0) { rc = got; break; }
        for (int i = 0; i < got && rc >= 0; i++) {
            if ((hb[i].prompt_id != lpid || hb[i].pos != lpos) && (rc = an_pass_tick(r, &pass, err)) < 0) break;
            lpid = hb[i].prompt_id;
            lpos = hb[i].pos;
            int l = hb[i].layer;
            if (l < 0 || l >= r->n_layer || !isfinite(hb[i].maxabs)) continue;
            hsum[l] += hb[i].maxabs;
            hn[l]++;
            if (isnan(hmax[l]) || hb[i].maxabs > hmax[l]) {
                hmax[l] = hb[i].maxabs;
                hpid[l] = hb[i].prompt_id;
                hpos[l] = hb[i].pos;
                hch[l] = hb[i].channel;
            }
        }
    }
    ms_trace_cursor_free(hc);
    if (rc < 0) goto done;
    an_pass_end(r, &pass);
    for (int l = 0; l < r->n_layer; l++) hprompt[l] = an_run_prompt_index(r, hpid[l]);
    if (ms_superexperts_set_massive(res, hmax, hsum, hn, hprompt, hpos, hch, r->n_layer) < 0)
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
done:
    if (rc >= 0) out->superexperts = res;
    else ms_superexperts_result_free(res);
    free(a); free(apid); free(ntok); free(apos); free(aprompt); free(apos_i);
    free(hmax); free(hsum); free(hn); free(hpid); free(hpos); free(hch); free(hprompt);
    return rc < 0 ? rc : 0;
}
